"""HighLevel OAuth for practices with `crm_auth: oauth`: the marketplace app's client and the token service.

The Cherry Sync marketplace app is installed at agency (Company) level. The agency's token pair (a refresh token that
is single-use: every refresh returns the next one) lives encrypted in the sync store; each location's access token is
minted from the company token (`POST /oauth/locationToken`) and stored too. Nothing else holds a token.

- `OAuthApp`: the client of `/oauth/token`, `/oauth/locationToken` and `/oauth/installedLocations`, an `ApiHook` on the
  app's Airflow connection (`cherry_sync_highlevel_app`: host = CRM base URL, login (or extra `client_id`) =
  client id, password = client secret, extras `company_id`, `app_id`, optional `redirect_uri` and
  `token_margin_seconds`), so it paces, times out, retries and never logs a body like every other call.
- `TokenService`: `location_token(location_id)` (the stored token while it has more than the margin left, else a
  new one), `rejected(location_id, token)` (a 401 came back: a new token unless another worker already replaced
  it), `connect(code)` (onboarding: store the agency's pair from an authorization code) and `installed_locations()`.
  Every mint and refresh runs under the subject's row lock in the store (`store.oauth_tokens`), so across threads,
  processes and hosts one worker rotates and the others use its result; a refresh token is only ever presented by
  the lock holder, which is what keeps a single-use refresh token from being spent twice.
- `LocationCredentials`: what `AesthetixCrmHook(credentials=...)` asks per attempt.

Failures a person must act on: `OAuthGrantRevoked` (the agency install is revoked, or the app is not installed on
the location: reason `auth_failed`) and `LocationInactive` (the location is suspended: `location_inactive`, that
practice alone). Tokens and the client secret go to Airflow's secrets masker as soon as they are read or received;
no message, repr or log line carries one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from cherry_sync.context import OAUTH_APP_CONN_ID, TOKEN_KEY_CONN_ID
from cherry_sync.errors import CherrySyncError, Disposition
from cherry_sync.hooks import errors
from cherry_sync.hooks.base import PROBE_RETRY, ApiHook, RetrySettings, _mask
from cherry_sync.hooks.crm import API_VERSION, error_details, is_location_inactive
from cherry_sync.hooks.pacing import Pacer
from cherry_sync.hooks.paging import OffsetPaging
from cherry_sync.reasons import ReasonCode
from cherry_sync.store.oauth_tokens import COMPANY, LOCATION, OAuthTokenQueries, StoredToken, TokenCipher

DEFAULT_MARGIN_SECONDS = 300.0  # a token with less life left than this is replaced before use
# A short-lived token (a test's time-scaled sandbox) is replaced once this share of its life is left, not 300 s.
MARGIN_SHARE = 0.25
INSTALLED_PAGE_LIMIT = 100
_AGENCY_ACTION = (
    "reinstall the Cherry Sync marketplace app for the agency, then run the cherry_onboard DAG with the new "
    "authorization code"
)


# -- failures ------------------------------------------------------------------------------------------------------


class OAuthGrantRevoked(CherrySyncError):
    """The app's access is gone: the agency install was revoked (the company refresh token is refused), nothing was
    ever connected, or the app is not installed on a location. The message is one sentence naming what to do."""

    reason_code = ReasonCode.AUTH_FAILED
    disposition = Disposition.FAIL

    def __init__(self, message: str, location_id: str | None = None) -> None:
        self.location_id = location_id
        super().__init__(message)

    def __reduce__(self) -> tuple[type[OAuthGrantRevoked], tuple[object, ...]]:
        return (type(self), (str(self), self.location_id))

    def ledger_details(self) -> dict[str, Any]:
        details = super().ledger_details()
        if self.location_id:
            details["location_id"] = self.location_id
        return details

    @classmethod
    def agency(cls) -> OAuthGrantRevoked:
        return cls(
            f"The agency's authorization of the Cherry Sync marketplace app is revoked or lapsed: {_AGENCY_ACTION}."
        )

    @classmethod
    def not_connected(cls) -> OAuthGrantRevoked:
        return cls(
            "No agency authorization of the Cherry Sync marketplace app is stored yet: install the Cherry Sync "
            "marketplace app for the agency, then run the cherry_onboard DAG with its authorization code."
        )

    @classmethod
    def not_installed(cls, location_id: str) -> OAuthGrantRevoked:
        return cls(
            f"The Cherry Sync marketplace app is not installed on CRM location {location_id}: reinstall the Cherry "
            f"Sync marketplace app for the agency (including location {location_id}), then run the cherry_onboard "
            "DAG with the new authorization code.",
            location_id,
        )

    @classmethod
    def code_refused(cls) -> OAuthGrantRevoked:
        return cls(
            "The authorization code was not accepted (unknown, already used, or older than 10 minutes): install the "
            "Cherry Sync marketplace app for the agency again, then run the cherry_onboard DAG with the new "
            "authorization code at once."
        )


class LocationInactive(errors.ApiError):
    """The CRM location is suspended (HighLevel: 400 "Location is not active"): that practice fails, no retries."""

    reason_code = ReasonCode.LOCATION_INACTIVE
    disposition = Disposition.FAIL

    def __init__(self, location_id: str, operation: str) -> None:
        self.location_id = location_id
        super().__init__(operation, "Location is not active", 400)

    def __reduce__(self) -> tuple[type[LocationInactive], tuple[object, ...]]:
        return (type(self), (self.location_id, self.operation))

    def describe(self) -> str:
        return (
            f"CRM location {self.location_id} is not active (suspended in HighLevel): reactivate it, or disable the "
            f"practice in the registry; other practices are not affected [{self.operation}]"
        )

    def ledger_details(self) -> dict[str, Any]:
        return {**super().ledger_details(), "location_id": self.location_id}


# -- the app's client ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenGrant:
    """What `/oauth/token` or `/oauth/locationToken` answered. Token fields never show in a repr."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_in: float
    user_type: str | None = None
    company_id: str | None = None
    location_id: str | None = None
    approved_locations: tuple[str, ...] = ()


class _NoBearer:
    """The app client's own credentials: none on the session (the token endpoint authenticates with the client id
    and secret in the form body; the company bearer is passed per call)."""

    def bearer(self) -> str | None:
        return None

    def rejected(self, token: str) -> str | None:
        return None


class OAuthApp(ApiHook):
    """Client of HighLevel's OAuth endpoints for the Cherry Sync marketplace app (see the module docstring)."""

    service = "crm"
    conn_name_attr = "app_conn_id"
    default_conn_name = OAUTH_APP_CONN_ID
    version_header = API_VERSION

    def __init__(self, app_conn_id: str = OAUTH_APP_CONN_ID, **kwargs: Any) -> None:
        kwargs.setdefault("credentials", _NoBearer())
        super().__init__(app_conn_id, **kwargs)

    # -- the connection ------------------------------------------------------------------------

    def _required(self, value: Any, what: str) -> str:
        if not value:
            raise errors.ValidationError("connection", f"connection {self.conn_id} has no {what}")
        return str(value)

    @property
    def client_id(self) -> str:
        # The connection form hides the login field: the form's client_id field lands in the extras instead.
        return self._required(self.connection.login or self.extra.get("client_id"), "login (the app's client id)")

    @property
    def client_secret(self) -> str:
        return self._required(self.connection.password, "password (the app's client secret)")

    @property
    def company_id(self) -> str:
        return self._required(self.extra.get("company_id"), "company_id extra (the agency's company id)")

    @property
    def app_id(self) -> str:
        return self._required(self.extra.get("app_id"), "app_id extra (the marketplace app's id)")

    @property
    def redirect_uri(self) -> str | None:
        return self.extra.get("redirect_uri") or None

    @property
    def margin_seconds(self) -> float:
        return float(self.extra.get("token_margin_seconds", DEFAULT_MARGIN_SECONDS))

    @property
    def pace_key(self) -> str:
        return f"crm-oauth-{self.company_id}"

    def ping(self) -> None:
        """Present a refresh token that cannot exist: HighLevel answers invalid_grant (400) when the client id and
        secret are right, invalid_client (401) when not. Nothing is spent or changed."""
        try:
            self._grant({"grant_type": "refresh_token", "refresh_token": "cherry-sync-probe"}, retry=PROBE_RETRY)
        except errors.ValidationError as exc:
            if exc.api_code != "invalid_grant":
                raise

    # -- grants --------------------------------------------------------------------------------

    def exchange_code(self, code: str) -> TokenGrant:
        """`authorization_code` grant for the agency (user type Company): the company token pair."""
        _mask(code)
        form = {"grant_type": "authorization_code", "code": code}
        if self.redirect_uri:
            form["redirect_uri"] = self.redirect_uri
        return self._grant(form)

    def refresh(self, refresh_token: str) -> TokenGrant:
        """`refresh_token` grant: the next company pair (the presented refresh token is spent)."""
        return self._grant({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _grant(self, form: dict[str, str], retry: RetrySettings | None = None) -> TokenGrant:
        op = "POST /oauth/token"
        body = self.request(
            "POST",
            "/oauth/token",
            op=op,
            data={**form, "client_id": self.client_id, "client_secret": self.client_secret, "user_type": "Company"},
            # Not repeated when the outcome is unknown: a refresh token is single-use, and an authorization code too.
            idempotent=False,
            retry=retry,
        )
        return _grant_from(body, op, refresh=True)

    def mint_location_token(self, company_token: str, location_id: str) -> TokenGrant:
        """`POST /oauth/locationToken`: an access token for one location, from the company token."""
        op = "POST /oauth/locationToken"
        body = self.request(
            "POST",
            "/oauth/locationToken",
            op=op,
            data={"companyId": self.company_id, "locationId": location_id},
            headers={"Authorization": f"Bearer {company_token}"},
            idempotent=True,  # minting again only mints another token
        )
        return _grant_from(body, op, refresh=False)

    def installed_locations(
        self, company_token: str, *, is_installed: bool | None = True, query: str | None = None
    ) -> Iterator[dict]:
        """`GET /oauth/installedLocations`, every page: `{_id, name, address, isInstalled, installedAt}` each."""
        params: dict[str, Any] = {"companyId": self.company_id, "appId": self.app_id}
        if is_installed is not None:
            params["isInstalled"] = "true" if is_installed else "false"
        if query:
            params["query"] = query
        paging = OffsetPaging(params, INSTALLED_PAGE_LIMIT, "locations", offset_param="skip")
        op = "GET /oauth/installedLocations"
        bearer = {"Authorization": f"Bearer {company_token}"}
        token = None
        while True:  # `paginate` sends no per-call headers, and the company bearer is one
            body = self.request("GET", "/oauth/installedLocations", op=op, headers=bearer, **paging.request(token))
            page, token = paging.read(body, token, op)
            yield from page.items
            if token is None:
                return

    # -- error shape ----------------------------------------------------------------------------

    def _error_details(self, response: requests.Response) -> tuple[str | None, str]:
        """RFC 6749 errors (`error`, `error_description`) and HighLevel's (`statusCode`, `message`, `error`)."""
        return error_details(response, ("error_description", "message"))


def _grant_from(body: Any, op: str, *, refresh: bool) -> TokenGrant:
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise errors.MalformedResponseError(op, "no access_token in the response")
    _mask(body["access_token"])
    refresh_token = body.get("refresh_token") if isinstance(body.get("refresh_token"), str) else None
    if refresh_token:
        _mask(refresh_token)
    if refresh and not refresh_token:
        raise errors.MalformedResponseError(op, "no refresh_token in the response")
    expires_in = body.get("expires_in")
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0:
        raise errors.MalformedResponseError(op, "no positive expires_in in the response")
    approved = body.get("approvedLocations") or ()
    return TokenGrant(
        access_token=body["access_token"],
        refresh_token=refresh_token,
        expires_in=float(expires_in),
        user_type=body.get("userType"),
        company_id=body.get("companyId"),
        location_id=body.get("locationId"),
        approved_locations=tuple(str(a) for a in approved if isinstance(a, str)),
    )


# -- tokens ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectedAgency:
    """What `TokenService.connect` stored: which agency, and the locations the install approved (ids only)."""

    company_id: str
    approved_locations: tuple[str, ...]


@dataclass(frozen=True)
class _Held:
    """A token this process holds (plaintext, in memory only) and when it must be replaced."""

    token: str = field(repr=False)
    replace_at: datetime


class TokenService:
    """The one place OAuth tokens are read, minted, refreshed and stored (see the module docstring).

    Build it with `TokenService.from_connections(store)` in a task (the app and key connections by their ids), or
    from an `OAuthApp`, the store and a `TokenCipher`. One service may serve several threads and hooks at once.
    """

    def __init__(
        self,
        app: OAuthApp,
        store: OAuthTokenQueries,
        cipher: TokenCipher,
        *,
        margin_seconds: float | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self._cipher = cipher
        self.margin = timedelta(seconds=app.margin_seconds if margin_seconds is None else margin_seconds)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._held: dict[tuple[str, str], _Held] = {}
        self._lock = threading.Lock()
        self._subject_locks: dict[tuple[str, str], threading.Lock] = {}

    def __repr__(self) -> str:
        return f"TokenService(app={self.app.conn_id!r})"

    @classmethod
    def from_connections(
        cls,
        store: OAuthTokenQueries,
        *,
        pacer: Pacer | None = None,
        retry: RetrySettings | None = None,
        app_conn_id: str = OAUTH_APP_CONN_ID,
        key_conn_id: str = TOKEN_KEY_CONN_ID,
        app_connection: Any | None = None,
        key_connection: Any | None = None,
        margin_seconds: float | None = None,
    ) -> TokenService:
        """The service on the marketplace app's connection and the token key connection (resolved now, unless
        given as objects), over `store`; the app's calls are paced through `pacer`."""
        app = OAuthApp(app_conn_id, connection=app_connection, pacer=pacer, retry=retry)
        if key_connection is None:
            from airflow.sdk import BaseHook

            key_connection = BaseHook.get_connection(key_conn_id)
        keys = key_connection.password or ""
        for key in [keys, *keys.split(",")]:
            if key.strip():
                _mask(key.strip())
        cipher = TokenCipher(keys, source=f"connection {key_conn_id!r}")
        return cls(app, store, cipher, margin_seconds=margin_seconds)

    @property
    def company_id(self) -> str:
        return self.app.company_id

    def credentials(self, location_id: str) -> LocationCredentials:
        """What a CRM hook for this location asks for its bearer token on every attempt."""
        return LocationCredentials(self, location_id)

    # -- the public operations ---------------------------------------------------------------------------------

    def location_token(self, location_id: str) -> str:
        """A valid access token for the location: the one held or stored while it has more than the margin left,
        else a new one minted from the company token (refreshed first when it is near its end)."""
        held = self._holding(LOCATION, location_id)
        if held is not None:
            return held
        usable = self._usable(LOCATION, location_id, self.store.oauth_token(LOCATION, location_id))
        if usable is not None:
            return usable
        return self._mint(location_id)

    def rejected(self, location_id: str, token: str) -> str | None:
        """The CRM answered 401 for `token`: the token to retry with (another worker's newer one, or a new mint)."""
        self._drop(LOCATION, location_id, token)
        return self._mint(location_id, rejected=token)

    def company_token(self) -> str:
        """A valid company access token (refreshed under the row lock when it is near its end)."""
        return self._company(rejected=None)

    def connect(self, code: str) -> ConnectedAgency:
        """Exchange the agency's authorization code for the company token pair and store it (replacing any stored
        pair); the location tokens minted under an earlier install are dropped, to be minted again on use."""
        try:
            grant = self.app.exchange_code(code)
        except errors.ValidationError as exc:
            if exc.api_code == "invalid_grant":
                raise OAuthGrantRevoked.code_refused() from None
            raise
        company_id = self.company_id
        if grant.company_id and grant.company_id != company_id:
            raise OAuthGrantRevoked(
                f"The authorization code is for company {grant.company_id}, but connection {self.app.conn_id!r} "
                f"names company {company_id}: fix the connection's company_id extra, then run the cherry_onboard DAG "
                "with a new authorization code."
            )
        with self._subject_lock(COMPANY, company_id), self.store.locked_oauth_token(COMPANY, company_id) as lock:
            self._save(lock, grant, keep_refresh=None)
        self.store.forget_oauth_tokens(LOCATION)
        with self._lock:
            for key in [k for k in self._held if k[0] == LOCATION]:
                del self._held[key]
        return ConnectedAgency(company_id, grant.approved_locations)

    def installed_locations(self, *, is_installed: bool | None = True) -> list[dict]:
        """The app's installed locations for the agency, every page (`_id`, `name`, ... each)."""
        token = self._company(rejected=None)
        try:
            return list(self.app.installed_locations(token, is_installed=is_installed))
        except errors.AuthError:
            token = self._company(rejected=token)
            return list(self.app.installed_locations(token, is_installed=is_installed))

    # -- minting and refreshing ------------------------------------------------------------------------------

    def _mint(self, location_id: str, rejected: str | None = None) -> str:
        with self._subject_lock(LOCATION, location_id):
            held = self._holding(LOCATION, location_id, rejected)
            if held is not None:
                return held  # another thread of this process minted while this one waited
            company_rejected: str | None = None
            refused: errors.AuthError | None = None
            for _ in range(2):
                company = self._company(rejected=company_rejected)
                # The location's lock is left before the company's is taken (next round): locks never nest, so two
                # workers can never wait on each other.
                with self.store.locked_oauth_token(LOCATION, location_id) as lock:
                    usable = self._usable(LOCATION, location_id, lock.current, rejected)
                    if usable is not None:
                        return usable  # another worker minted while this one waited for the lock
                    try:
                        grant = self.app.mint_location_token(company, location_id)
                    except errors.AuthError as exc:
                        company_rejected, refused = company, exc  # the company token itself was refused
                        continue
                    except errors.ValidationError as exc:
                        raise _location_refusal(exc, location_id) from None
                    return self._save(lock, grant, keep_refresh=None)
            assert refused is not None
            raise refused

    def _company(self, rejected: str | None) -> str:
        company_id = self.company_id
        held = self._holding(COMPANY, company_id, rejected)
        if held is not None:
            return held
        with self._subject_lock(COMPANY, company_id):
            held = self._holding(COMPANY, company_id, rejected)
            if held is not None:
                return held
            stored = self.store.oauth_token(COMPANY, company_id)
            usable = self._usable(COMPANY, company_id, stored, rejected)
            if usable is not None:
                return usable
            if stored is None or stored.refresh_token is None:
                raise OAuthGrantRevoked.not_connected()
            with self.store.locked_oauth_token(COMPANY, company_id) as lock:
                used = lock.current
                usable = self._usable(COMPANY, company_id, used, rejected)
                if usable is not None:
                    return usable  # another worker refreshed while this one waited for the lock
                if used.refresh_token is None:
                    raise OAuthGrantRevoked.not_connected()
                try:
                    grant = self.app.refresh(self._decrypt(used.refresh_token))
                except errors.ValidationError as exc:
                    if exc.api_code != "invalid_grant":
                        raise
                    # Refused: unless the row moved on meanwhile (a writer outside this lock, e.g. a re-connect that
                    # raced it), the agency's grant is gone.
                    again = lock.reread()
                    if again.generation != used.generation:
                        usable = self._usable(COMPANY, company_id, again, rejected)
                        if usable is not None:
                            return usable
                    raise OAuthGrantRevoked.agency() from None
                return self._save(lock, grant, keep_refresh=used.refresh_token)

    # -- held and stored tokens --------------------------------------------------------------------------------

    def _save(self, lock, grant: TokenGrant, keep_refresh: str | None) -> str:
        """Store a grant under the lock (ciphertext), hold it in memory and return its access token."""
        now = self._clock()
        expires_at = now + timedelta(seconds=grant.expires_in)
        refresh = self._cipher.encrypt(grant.refresh_token) if grant.refresh_token else keep_refresh
        stored = lock.save(self._cipher.encrypt(grant.access_token), refresh, expires_at)
        self._hold(lock.subject_type, lock.subject_id, grant.access_token, expires_at, stored.updated_at)
        return grant.access_token

    def _usable(
        self, subject_type: str, subject_id: str, stored: StoredToken | None, rejected: str | None = None
    ) -> str | None:
        """The stored token if it is not the refused one and has more than the margin left (then held)."""
        if stored is None or stored.access_token is None or stored.expires_at is None:
            return None
        token = self._decrypt(stored.access_token)
        if token == rejected:
            return None
        replace_at = self._replace_at(stored.expires_at, stored.updated_at)
        if replace_at <= self._clock():
            return None
        self._hold(subject_type, subject_id, token, stored.expires_at, stored.updated_at)
        return token

    def _replace_at(self, expires_at: datetime, issued_at: datetime) -> datetime:
        lifetime = max(timedelta(0), expires_at - issued_at)
        return expires_at - min(self.margin, lifetime * MARGIN_SHARE)

    def _hold(self, subject_type: str, subject_id: str, token: str, expires_at: datetime, issued_at: datetime) -> None:
        with self._lock:
            self._held[(subject_type, subject_id)] = _Held(token, self._replace_at(expires_at, issued_at))

    def _holding(self, subject_type: str, subject_id: str, rejected: str | None = None) -> str | None:
        with self._lock:
            held = self._held.get((subject_type, subject_id))
        if held is None or held.token == rejected or held.replace_at <= self._clock():
            return None
        return held.token

    def _drop(self, subject_type: str, subject_id: str, token: str) -> None:
        with self._lock:
            held = self._held.get((subject_type, subject_id))
            if held is not None and held.token == token:
                del self._held[(subject_type, subject_id)]

    def _decrypt(self, ciphertext: str) -> str:
        token = self._cipher.decrypt(ciphertext)
        _mask(token)
        return token

    def _subject_lock(self, subject_type: str, subject_id: str) -> threading.Lock:
        with self._lock:
            return self._subject_locks.setdefault((subject_type, subject_id), threading.Lock())


def _location_refusal(exc: errors.ValidationError, location_id: str) -> Exception:
    """What a 400 from `/oauth/locationToken` means for the practice."""
    if is_location_inactive(exc):
        return LocationInactive(location_id, exc.operation)
    if "not installed" in (exc.api_message or "").lower():
        return OAuthGrantRevoked.not_installed(location_id)
    return exc


class LocationCredentials:
    """A CRM location's bearer token, per attempt, from the `TokenService` (`hooks.base.Credentials`)."""

    def __init__(self, service: TokenService, location_id: str) -> None:
        self._service = service
        self.location_id = location_id

    def __repr__(self) -> str:
        return f"LocationCredentials(location_id={self.location_id!r})"

    def bearer(self) -> str | None:
        return self._service.location_token(self.location_id)

    def rejected(self, token: str) -> str | None:
        return self._service.rejected(self.location_id, token)
