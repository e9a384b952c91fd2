"""A CRM sandbox running on a loopback port, for tests of this package and of hooks and DAGs.

    with start_crm_sandbox(locations=2) as crm:
        loc = crm.locations[0]
        requests.post(f"{crm.base_url}/contacts/upsert", json={...}, headers=crm.headers(loc))

Admin helpers talk HTTP to /_sandbox (so they exercise the same paths a benchmark would); `state`
gives the in-process CrmState for assertions that need more than the admin API shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from sandbox.common.server import RunningServer, admin_session, start_in_thread
from sandbox.crm.app import create_app
from sandbox.crm.auth import CONVERSATIONS_VERSION, VERSION
from sandbox.crm.config import CrmSandboxConfig
from sandbox.crm.state import CrmState

ADMIN_TIMEOUT = 10


@dataclass(frozen=True)
class SandboxLocation:
    """A seeded location and its token."""

    id: str
    token: str
    name: str
    timezone: str = "America/New_York"


class ApiClient:
    """Bare HTTP calls as one location (token + Version preset); returns `requests.Response` untouched."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float = 10) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers.update(headers)
        self.timeout = timeout

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, f"{self.base_url}{path}", **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.session.close()


class CrmSandbox:
    """Handle on a running CRM sandbox: URL, locations, admin helpers, stop()."""

    def __init__(self, config: CrmSandboxConfig) -> None:
        self.config = config
        self.app = create_app(config)
        self._server: RunningServer = start_in_thread(self.app)
        self.base_url = self._server.base_url
        self.port = self._server.port
        self.http = admin_session()
        self._clients: list[ApiClient] = []

    # --- lifecycle -------------------------------------------------------------------------------

    def stop(self, wait: bool = True) -> None:
        """Shut the server down. wait=False returns at once (uvicorn needs ~0.15 s to finish closing)."""
        for client in self._clients:
            client.close()
        self.http.close()
        # Tests end with requests still open on purpose (hang faults); don't wait for them to drain.
        self._server.server.force_exit = True
        if wait:
            self._server.stop()
        else:
            self._server.server.should_exit = True

    def __enter__(self) -> CrmSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- locations and request helpers ---------------------------------------------------------

    @property
    def state(self) -> CrmState:
        """The live in-process state (replaced by reset())."""
        return self.app.state.crm

    @property
    def locations(self) -> list[SandboxLocation]:
        with self.state.lock:
            return [SandboxLocation(loc.id, loc.token, loc.name, loc.timezone) for loc in self.state.locations.values()]

    def location(self, which: int | str = 0) -> SandboxLocation:
        """A location by position or id."""
        if isinstance(which, int):
            return self.locations[which]
        return next(loc for loc in self.locations if loc.id == which)

    def headers(self, which: int | str | SandboxLocation = 0, version: str = VERSION) -> dict[str, str]:
        """Authorization + Version headers for a location (by position, id, or SandboxLocation)."""
        loc = which if isinstance(which, SandboxLocation) else self.location(which)
        return {"Authorization": f"Bearer {loc.token}", "Version": version, "Accept": "application/json"}

    def conversation_headers(self, which: int | str | SandboxLocation = 0) -> dict[str, str]:
        return self.headers(which, CONVERSATIONS_VERSION)

    def client(self, which: int | str | SandboxLocation = 0, version: str = VERSION) -> ApiClient:
        """An ApiClient for a location (closed by stop())."""
        client = ApiClient(self.base_url, self.headers(which, version))
        self._clients.append(client)
        return client

    def token_headers(self, token: str, version: str = VERSION) -> dict[str, str]:
        """Authorization + Version headers for any bearer token (an OAuth access token, say)."""
        return {"Authorization": f"Bearer {token}", "Version": version, "Accept": "application/json"}

    def token_client(self, token: str, version: str = VERSION) -> ApiClient:
        """An ApiClient presenting `token` (closed by stop())."""
        client = ApiClient(self.base_url, self.token_headers(token, version))
        self._clients.append(client)
        return client

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _admin(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.http.request(method, self.url(f"/_sandbox{path}"), timeout=ADMIN_TIMEOUT, **kwargs)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def add_location(self, **body: Any) -> SandboxLocation:
        row = self._admin("POST", "/locations", json=body)
        return SandboxLocation(row["id"], row["token"], row["name"], row["timezone"])

    def set_location_timezone(self, location_id: str, timezone: str) -> dict:
        """The location's time zone, as `GET /locations/{id}` then reports it."""
        return self._admin("PUT", f"/locations/{location_id}/timezone", json={"timezone": timezone})

    def set_location_settings(self, location_id: str, **settings: Any) -> dict:
        """allowDuplicateContact, allowDuplicateOpportunity, duplicateContactPriority."""
        return self._admin("PUT", f"/locations/{location_id}/settings", json=settings)

    def add_pipeline(self, location_id: str, name: str, stages: list[str]) -> dict:
        return self._admin("POST", f"/locations/{location_id}/pipelines", json={"name": name, "stages": stages})

    # --- inspection ----------------------------------------------------------------------------

    def location_state(self, location_id: str, lists: bool = True) -> dict:
        return self._admin("GET", f"/state/{location_id}", params={"lists": str(lists).lower()})

    def messages(self, location_id: str | None = None) -> list[dict]:
        params = {"locationId": location_id} if location_id else None
        return self._admin("GET", "/messages", params=params)["messages"]

    def media_bytes(self, file_id: str) -> bytes:
        resp = self.http.get(self.url(f"/_sandbox/media/{file_id}"), timeout=ADMIN_TIMEOUT)
        resp.raise_for_status()
        return resp.content

    def stats(self) -> dict:
        return self._admin("GET", "/stats")

    def reset_stats(self, window_seconds: float | None = None) -> dict:
        params = {"window_seconds": window_seconds} if window_seconds is not None else None
        return self._admin("POST", "/stats/reset", params=params)

    # --- switches ------------------------------------------------------------------------------

    def set_faults(self, **settings: Any) -> dict:
        """FaultSettings fields, e.g. set_faults(script=["write_then_500"]) or set_faults(latency_ms=50)."""
        return self._admin("PUT", "/faults", json=settings)

    def fired_faults(self) -> dict[str, int]:
        """How many of each fault the sandbox has injected since it started (GET /_sandbox/faults)."""
        return self._admin("GET", "/faults")["fired"]

    def clear_faults(self) -> dict:
        return self._admin("PUT", "/faults", json={})

    def set_rate_limits(self, **settings: Any) -> dict:
        """RateLimitSettings fields for every location, e.g. burst_limit=5, burst_window_seconds=1."""
        return self._admin("PUT", "/rate-limits", json=settings)

    def override_rate_limits(self, location_id: str, **settings: Any) -> dict:
        return self._admin("PUT", f"/rate-limits/{location_id}", json=settings)

    def clear_rate_limit_override(self, location_id: str) -> dict:
        return self._admin("DELETE", f"/rate-limits/{location_id}")

    def poison(self, *contact_ids: str) -> dict:
        """Bulk tag batches containing any of these ids fail whole (400)."""
        return self._admin("PUT", "/poison", json={"contactIds": list(contact_ids)})

    def set_search_lag(self, seconds: float) -> dict:
        return self._admin("PUT", "/settings", json={"searchLagSeconds": seconds})

    def reset(self) -> dict:
        return self._admin("POST", "/reset")

    # --- OAuth (the marketplace app; see docs/crm-sandbox.md) --------------------------------------

    def oauth_app(self) -> dict:
        """{client_id, client_secret, app_id, company_id, redirect_uri}."""
        return self._admin("GET", "/oauth/app")

    def oauth_install(self, locations: list[str] | str = "all", user_type: str = "Company") -> str:
        """Install the app on `locations` (ids, or "all") and return the single-use authorization code."""
        return self._admin("POST", "/oauth/install", json={"locations": locations, "user_type": user_type})["code"]

    def oauth_token(self, **form: str) -> requests.Response:
        """POST /oauth/token with the app's client id and secret plus `form` (the raw response)."""
        app = self.oauth_app()
        body = {"client_id": app["client_id"], "client_secret": app["client_secret"], **form}
        return self.http.post(self.url("/oauth/token"), data=body, timeout=ADMIN_TIMEOUT)

    def oauth_company_grant(self, locations: list[str] | str = "all") -> dict:
        """Install at agency level and exchange the code: the /oauth/token body (company access + refresh token)."""
        code = self.oauth_install(locations)
        resp = self.oauth_token(grant_type="authorization_code", code=code, user_type="Company")
        resp.raise_for_status()
        return resp.json()

    def oauth_location_token(self, company_token: str, location_id: str) -> requests.Response:
        """POST /oauth/locationToken with a company access token (the raw response)."""
        body = {"companyId": self.oauth_app()["company_id"], "locationId": location_id}
        return self.http.post(
            self.url("/oauth/locationToken"),
            data=body,
            headers=self.token_headers(company_token),
            timeout=ADMIN_TIMEOUT,
        )

    def oauth_uninstall(self, location_id: str) -> dict:
        return self._admin("POST", "/oauth/uninstall", json={"locationId": location_id})

    def oauth_revoke(self) -> dict:
        return self._admin("POST", "/oauth/revoke", json={})

    def set_location_active(self, location_id: str, active: bool) -> dict:
        """Suspend (False) or reactivate a location."""
        return self._admin("PUT", "/oauth/location-status", json={"locationId": location_id, "active": active})

    def set_oauth_ttl(self, seconds: float) -> dict:
        """Life of access tokens issued from now on."""
        return self._admin("PUT", "/oauth/settings", json={"access_token_ttl_seconds": seconds})

    def oauth_expire_all(self) -> dict:
        return self._admin("POST", "/oauth/expire-all")

    def oauth_stats(self) -> dict:
        return self._admin("GET", "/oauth/stats")

    def oauth_issued_tokens(self) -> list[str]:
        """Every authorization code, access and refresh token issued since the last reset, live or not (read from
        the in-process state: the HTTP admin routes never show them)."""
        oauth = self.state.oauth
        with oauth.lock:
            return list(oauth.issued)


def start_crm_sandbox(config: CrmSandboxConfig | None = None, **overrides: Any) -> CrmSandbox:
    """Start a sandbox from `config` (default CrmSandboxConfig()) with field `overrides` applied."""
    base = config or CrmSandboxConfig()
    if overrides:
        base = CrmSandboxConfig.model_validate({**base.model_dump(), **overrides})
    return CrmSandbox(base)
