"""HighLevel OAuth as the sandbox plays it: one marketplace app installed at agency (Company) level.

`OAuthState` holds the app's credentials, which locations the app is installed on, the outstanding
authorization codes and the issued access / refresh tokens, behind one lock. Everything that changes a
grant (code exchange, refresh rotation, location-token mint, uninstall, revoke) happens whole under that
lock, so two concurrent refreshes with one refresh token give exactly one new pair and one invalid_grant.

Tokens are opaque random strings (`secrets`, never the seed: two grants must not collide across runs or
resets); the app's credentials come from the seed, so a run is reproducible. Expiry uses the monotonic
clock, so wall-clock jumps on the test machine do not expire or revive tokens.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sandbox.crm.ids import IdFactory

COMPANY_ID = "sandboxAgencyCompany0"
ACCESS_PREFIX = "sbx-oat-"
REFRESH_PREFIX = "sbx-ort-"
CODE_PREFIX = "sbx-code-"
DEFAULT_ACCESS_TTL_SECONDS = 86399.0
CODE_TTL_SECONDS = 600.0
REDIRECT_URI = "http://127.0.0.1/oauth/callback"
# The scopes Cherry Sync's marketplace app asks for (docs/oauth/Scopes.md names).
SCOPE = " ".join(
    (
        "contacts.readonly",
        "contacts.write",
        "locations.readonly",
        "locations/customFields.readonly",
        "locations/customFields.write",
        "opportunities.readonly",
        "opportunities.write",
        "medias.readonly",
        "medias.write",
        "conversations/message.readonly",
        "conversations/message.write",
        "oauth.readonly",
        "oauth.write",
    )
)

UserType = Literal["Company", "Location"]


class OAuthError(Exception):
    """An RFC 6749 token-endpoint error (`invalid_grant`, `invalid_client`, ...)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class NotInstalled(Exception):
    """The app is not installed on the location (or the location is unknown)."""


@dataclass(frozen=True)
class App:
    """The marketplace app's registration."""

    client_id: str
    client_secret: str
    app_id: str
    user_id: str
    company_id: str = COMPANY_ID
    redirect_uri: str = REDIRECT_URI

    def render(self) -> dict:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "app_id": self.app_id,
            "company_id": self.company_id,
            "redirect_uri": self.redirect_uri,
        }


@dataclass
class AccessToken:
    """An issued access token: whose it is and until when (monotonic seconds)."""

    user_type: UserType
    location_id: str | None
    expires_at: float


@dataclass(frozen=True)
class Grant:
    """What a refresh token or an authorization code stands for."""

    user_type: UserType
    location_id: str | None  # Location grants only


@dataclass(frozen=True)
class AuthCode:
    grant: Grant
    expires_at: float


@dataclass
class OAuthState:
    """The app, its installs and every live code and token. Reachable as `app.state.crm.oauth`."""

    app: App
    access_token_ttl_seconds: float = DEFAULT_ACCESS_TTL_SECONDS
    lock: threading.Lock = field(default_factory=threading.Lock)
    installed: dict[str, str] = field(default_factory=dict)  # location id -> installedAt (ISO 8601)
    install_to_future_locations: bool = False
    codes: dict[str, AuthCode] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    counters: Counter = field(default_factory=Counter)
    # Every token and code ever issued, live or not: what a leak scan looks for (in-process access only).
    issued: list[str] = field(default_factory=list)

    @classmethod
    def seeded(cls, seed: int, access_token_ttl_seconds: float = DEFAULT_ACCESS_TTL_SECONDS) -> OAuthState:
        ids = IdFactory(seed, "oauth")
        app_id = ids.uuid().replace("-", "")[:24]
        client_id = f"{app_id}-{ids.record_id()[:8].lower()}"
        app = App(client_id=client_id, client_secret=ids.uuid(), app_id=app_id, user_id=ids.record_id())
        return cls(app=app, access_token_ttl_seconds=access_token_ttl_seconds)

    # --- installs (the consent screen and the agency's app settings) -------------------------------

    def install(self, location_ids: list[str], user_type: UserType, all_locations: bool) -> str:
        """The named locations become installed; returns an authorization code valid once for 10 minutes."""
        now = _iso_now()
        with self.lock:
            for location_id in location_ids:
                self.installed.setdefault(location_id, now)
            if all_locations:
                self.install_to_future_locations = True
            grant = Grant(user_type, location_ids[0] if user_type == "Location" else None)
            code = CODE_PREFIX + secrets.token_urlsafe(24)
            self.issued.append(code)
            self.codes[code] = AuthCode(grant, time.monotonic() + CODE_TTL_SECONDS)
            return code

    def location_added(self, location_id: str) -> None:
        """A new location of the agency: installed too when the install covers future locations."""
        with self.lock:
            if self.install_to_future_locations:
                self.installed.setdefault(location_id, _iso_now())

    def uninstall(self, location_id: str) -> bool:
        """Remove the app from one location: its tokens die with it. False if it was not installed."""
        with self.lock:
            was = self.installed.pop(location_id, None) is not None
            self._drop_location_tokens(location_id)
            return was

    def revoke(self) -> None:
        """The agency revoked the whole install: every code and token is void, nothing stays installed."""
        with self.lock:
            self.installed.clear()
            self.install_to_future_locations = False
            self.codes.clear()
            self.refresh_tokens.clear()
            self.access_tokens.clear()

    def is_installed(self, location_id: str) -> bool:
        return location_id in self.installed

    # --- the token endpoint -------------------------------------------------------------------------

    def check_client(self, client_id: str, client_secret: str) -> None:
        if not (
            secrets.compare_digest(client_id, self.app.client_id)
            and secrets.compare_digest(client_secret, self.app.client_secret)
        ):
            self.count("invalid_client")
            raise OAuthError(401, "invalid_client", "Invalid client credentials")

    def exchange_code(self, code: str, user_type: str | None, redirect_uri: str | None) -> dict:
        """authorization_code grant: the code is spent whether or not the exchange succeeds."""
        with self.lock:
            found = self.codes.pop(code, None)
            if found is None or found.expires_at <= time.monotonic():
                raise self._invalid_grant("Invalid or expired authorization code")
            if redirect_uri is not None and redirect_uri != self.app.redirect_uri:
                raise self._invalid_grant("redirect_uri does not match the authorization request")
            self._check_user_type(found.grant, user_type)
            self.counters["grant:authorization_code"] += 1
            return self._issue_pair(found.grant)

    def refresh(self, refresh_token: str, user_type: str | None) -> dict:
        """refresh_token grant: single use; the old token is gone the moment the new pair exists."""
        with self.lock:
            grant = self.refresh_tokens.get(refresh_token)
            if grant is None:
                raise self._invalid_grant("Invalid refresh token")
            self._check_user_type(grant, user_type)
            if grant.location_id is not None and not self.is_installed(grant.location_id):
                del self.refresh_tokens[refresh_token]
                raise self._invalid_grant("This app is not installed on the location")
            del self.refresh_tokens[refresh_token]
            self.counters["grant:refresh_token"] += 1
            return self._issue_pair(grant)

    def mint_location_token(self, location_id: str) -> tuple[str, float]:
        """A location access token from the agency install (caller has checked the company token)."""
        with self.lock:
            if not self.is_installed(location_id):
                raise NotInstalled(location_id)
            token, ttl = self._new_access_token(AccessToken("Location", location_id, 0.0))
            self.counters["location_tokens"] += 1
            return token, ttl

    # --- access tokens on API calls -----------------------------------------------------------------

    def access_token(self, token: str) -> AccessToken | None:
        """The live access token `token`, or None when unknown, revoked or expired."""
        found = self.access_tokens.get(token)
        if found is None or found.expires_at <= time.monotonic():
            return None
        return found

    def expire_all(self) -> int:
        """Every access token issued so far expires now; returns how many were still live."""
        now = time.monotonic()
        with self.lock:
            live = [t for t in self.access_tokens.values() if t.expires_at > now]
            for t in live:
                t.expires_at = now
            return len(live)

    def set_ttl(self, seconds: float) -> None:
        with self.lock:
            self.access_token_ttl_seconds = seconds

    # --- counters -----------------------------------------------------------------------------------

    def count(self, name: str) -> None:
        with self.lock:
            self.counters[name] += 1

    def stats(self) -> dict:
        with self.lock:
            c = self.counters
            return {
                "token_grants": {
                    "authorization_code": c["grant:authorization_code"],
                    "refresh_token": c["grant:refresh_token"],
                },
                "invalid_grant": c["invalid_grant"],
                "invalid_client": c["invalid_client"],
                "location_tokens": c["location_tokens"],
                "expired_token_401": c["expired_token_401"],
                "installed_locations_calls": c["installed_locations_calls"],
            }

    # --- internals (lock held) ----------------------------------------------------------------------

    def _invalid_grant(self, description: str) -> OAuthError:
        self.counters["invalid_grant"] += 1
        return OAuthError(400, "invalid_grant", description)

    def _check_user_type(self, grant: Grant, user_type: str | None) -> None:
        if user_type is not None and user_type != grant.user_type:
            raise self._invalid_grant(f"user_type {user_type} does not match the grant ({grant.user_type})")

    def _new_access_token(self, template: AccessToken) -> tuple[str, float]:
        ttl = self.access_token_ttl_seconds
        token = ACCESS_PREFIX + secrets.token_urlsafe(32)
        self.issued.append(token)
        template.expires_at = time.monotonic() + ttl
        self.access_tokens[token] = template
        return token, ttl

    def _issue_pair(self, grant: Grant) -> dict:
        access, ttl = self._new_access_token(AccessToken(grant.user_type, grant.location_id, 0.0))
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
        self.issued.append(refresh)
        self.refresh_tokens[refresh] = grant
        body = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": expires_in(ttl),
            "refresh_token": refresh,
            "scope": SCOPE,
            "userType": grant.user_type,
            "companyId": self.app.company_id,
            "userId": self.app.user_id,
            "isBulkInstallation": grant.user_type == "Company",
        }
        if grant.user_type == "Location":
            body["locationId"] = grant.location_id
        else:
            body["approvedLocations"] = list(self.installed)
            body["installToFutureLocations"] = self.install_to_future_locations
        return body

    def _drop_location_tokens(self, location_id: str) -> None:
        for token in [t for t, a in self.access_tokens.items() if a.location_id == location_id]:
            del self.access_tokens[token]
        for token in [t for t, g in self.refresh_tokens.items() if g.location_id == location_id]:
            del self.refresh_tokens[token]


def expires_in(ttl: float) -> int | float:
    """`expires_in` as HighLevel writes it (whole seconds), keeping sub-second test TTLs honest."""
    return int(ttl) if float(ttl).is_integer() else ttl


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
