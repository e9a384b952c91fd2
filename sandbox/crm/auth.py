"""Bearer token and Version header checks, as FastAPI dependencies, plus the token gate in front of them.

Order as the API gateway does it: the token first (401), then the Version header (400). A handler gets a
`Caller` (the token's location) and calls `caller.require(location_id)` wherever the request names a
location, which gives the 403 a token for another location earns.

A token is a location's private integration token (PIT) or an OAuth access token (`sandbox.crm.oauth`). A
location's OAuth token stands for that location exactly as its PIT does (same caller, same rate-limit key).
The gate (`install_gate`) answers dead OAuth tokens (401 "Invalid JWT") and tokens of suspended locations
(400 "Location is not active") before rate limits and faults, as the real gateway authenticates first;
unknown tokens that are not OAuth tokens keep today's path (401 from the handler).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Request

from sandbox.common.middleware import ADMIN_PREFIX, SandboxControls, route_template
from sandbox.crm.errors import CrmError, error_response, forbidden
from sandbox.crm.oauth import ACCESS_PREFIX
from sandbox.crm.state import CrmState, Location

VERSION = "2021-07-28"
CONVERSATIONS_VERSION = "2021-04-15"
INVALID_TOKEN = "Invalid token: access token is invalid"
INVALID_JWT = "Invalid JWT"
LOCATION_INACTIVE = "Location is not active"
WRONG_AUTH_CLASS = (
    "This authClass type is not allowed to access this scope. Please reach out to the Platform team to get it added."
)
OAUTH_PREFIX = "/oauth/"
TOKEN_PATH = "/oauth/token"  # authenticated by client id and secret in the body, not by a bearer token
UNGATED = ("/docs", "/openapi.json", "/healthz", TOKEN_PATH)


class TokenRejected(CrmError):
    """A presented token that the gateway refuses: dead OAuth token (401) or suspended location (400)."""

    def __init__(self, status: int, message: str, location_id: str | None = None) -> None:
        super().__init__(status, message)
        self.location_id = location_id


@dataclass(frozen=True)
class Principal:
    """Who a token speaks for: a location (by PIT or OAuth location token) or the agency (company token)."""

    kind: Literal["pit", "location", "company"]
    location_id: str | None


def principal(state: CrmState, token: str | None) -> Principal | None:
    """The token's principal; None for a missing or unknown non-OAuth token; TokenRejected for the gate's cases."""
    if not token:
        return None
    location_id = state.location_for_token(token)
    kind: Literal["pit", "location"] = "pit"
    if location_id is None:
        if not token.startswith(ACCESS_PREFIX):
            return None
        access = state.oauth.access_token(token)
        if access is None:
            raise TokenRejected(401, INVALID_JWT)
        if access.user_type == "Company":
            return Principal("company", None)
        location_id, kind = access.location_id, "location"
    loc = state.locations.get(location_id)
    if loc is not None and not loc.active:
        raise TokenRejected(400, LOCATION_INACTIVE, location_id)
    return Principal(kind, location_id)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def rate_key(request: Request) -> str | None:
    """Rate-limit key: the location of the presented token (PIT or OAuth), the agency's company id for company
    tokens and the /oauth/* endpoints (one app: "per app per company"), None for unknown callers."""
    state: CrmState = request.app.state.crm
    company_id = state.oauth.app.company_id
    if request.url.path.startswith(OAUTH_PREFIX):
        return company_id
    try:
        found = principal(state, bearer_token(request))
    except TokenRejected:
        return None
    if found is None:
        return None
    return found.location_id or company_id


def install_gate(app: FastAPI, controls: SandboxControls) -> None:
    """Authenticate OAuth tokens and suspended locations before rate limits and faults.

    Install after `sandbox.common.middleware.install` so this middleware wraps that pipeline. Its answers are
    still counted in the shared stats (not against any rate key for a 401).
    """

    @app.middleware("http")
    async def token_gate(request: Request, call_next):
        path = request.url.path
        if path.startswith(ADMIN_PREFIX) or path in UNGATED:
            return await call_next(request)
        state: CrmState = request.app.state.crm
        try:
            principal(state, bearer_token(request))
        except TokenRejected as exc:
            if exc.status == 401:
                state.oauth.count("expired_token_401")
            controls.stats.record(route_template(app, request.scope), exc.location_id, exc.status)
            return error_response(exc.status, exc.message)
        return await call_next(request)


@dataclass
class Caller:
    """The authenticated location of a request."""

    state: CrmState
    location: Location

    @property
    def location_id(self) -> str:
        return self.location.id

    def require(self, location_id: str | None) -> Location:
        """403 unless `location_id` is the token's own location."""
        if location_id != self.location.id:
            raise forbidden()
        return self.location


def _principal_of(state: CrmState, request: Request) -> Principal | None:
    try:
        return principal(state, bearer_token(request))
    except TokenRejected as exc:
        # The gate let it through a moment ago; it died (expired, revoked) or was suspended since.
        if exc.status == 401:
            state.oauth.count("expired_token_401")
        raise


def _caller(request: Request, expected_version: str) -> Caller:
    state: CrmState = request.app.state.crm
    found = _principal_of(state, request)
    if found is None:
        raise CrmError(401, INVALID_TOKEN)
    if found.kind == "company":
        raise CrmError(401, WRONG_AUTH_CLASS)
    check_version(request, expected_version)
    return Caller(state, state.locations[found.location_id])


def check_version(request: Request, expected_version: str) -> None:
    """400 unless the Version header is `expected_version`."""
    version = request.headers.get("version")
    if version is None:
        raise CrmError(400, f"Version header was not found. Expected Version: {expected_version}")
    if version != expected_version:
        raise CrmError(400, f"Version header {version!r} is not valid for this endpoint. Expected: {expected_version}")


def company_caller(request: Request) -> CrmState:
    """The agency endpoints (/oauth/locationToken, /oauth/installedLocations): a live company token, then Version.

    A location token or a PIT is refused (401), as HighLevel refuses a sub-account token on agency-only routes.
    """
    state: CrmState = request.app.state.crm
    found = _principal_of(state, request)
    if found is None:
        raise CrmError(401, INVALID_TOKEN)
    if found.kind != "company":
        raise CrmError(401, WRONG_AUTH_CLASS)
    check_version(request, VERSION)
    return state


def caller_v2(request: Request) -> Caller:
    return _caller(request, VERSION)


def caller_conversations(request: Request) -> Caller:
    return _caller(request, CONVERSATIONS_VERSION)


V2Caller = Annotated[Caller, Depends(caller_v2)]
ConversationsCaller = Annotated[Caller, Depends(caller_conversations)]
CompanyCaller = Annotated[CrmState, Depends(company_caller)]
