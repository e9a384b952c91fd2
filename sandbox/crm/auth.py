"""Bearer token and Version header checks, as FastAPI dependencies.

Order as the API gateway does it: the token first (401), then the Version header (400). A handler gets a
`Caller` (the token's location) and calls `caller.require(location_id)` wherever the request names a
location, which gives the 403 a token for another location earns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from sandbox.crm.errors import CrmError, forbidden
from sandbox.crm.state import CrmState, Location

VERSION = "2021-07-28"
CONVERSATIONS_VERSION = "2021-04-15"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def rate_key(request: Request) -> str | None:
    """Rate-limit key: the location of the presented token (None for unknown callers)."""
    state: CrmState = request.app.state.crm
    return state.location_for_token(bearer_token(request))


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


def _caller(request: Request, expected_version: str) -> Caller:
    state: CrmState = request.app.state.crm
    location_id = state.location_for_token(bearer_token(request))
    if location_id is None:
        raise CrmError(401, "Invalid token: access token is invalid")
    version = request.headers.get("version")
    if version is None:
        raise CrmError(400, f"Version header was not found. Expected Version: {expected_version}")
    if version != expected_version:
        raise CrmError(400, f"Version header {version!r} is not valid for this endpoint. Expected: {expected_version}")
    return Caller(state, state.locations[location_id])


def caller_v2(request: Request) -> Caller:
    return _caller(request, VERSION)


def caller_conversations(request: Request) -> Caller:
    return _caller(request, CONVERSATIONS_VERSION)


V2Caller = Annotated[Caller, Depends(caller_v2)]
ConversationsCaller = Annotated[Caller, Depends(caller_conversations)]
