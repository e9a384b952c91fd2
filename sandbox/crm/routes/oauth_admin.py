"""Sandbox-only OAuth switches under /_sandbox/oauth: the consent screen, uninstall, revoke, suspension, time.

Like the other /_sandbox routes they need no auth and bypass rate limits and faults. They print the app's
client secret and authorization codes (sandbox values, not secrets), never access or refresh tokens.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import Field

from sandbox.common.middleware import ADMIN_PREFIX
from sandbox.crm.errors import not_found, unprocessable
from sandbox.crm.routes.admin import AdminBody
from sandbox.crm.state import CrmState

router = APIRouter(prefix=f"{ADMIN_PREFIX}/oauth", tags=["sandbox admin"])


class Install(AdminBody):
    locations: list[str] | Literal["all"] = Field(description='location ids, or "all" (also future locations)')
    user_type: Literal["Company", "Location"] = "Company"


class LocationRef(AdminBody):
    locationId: str


class LocationStatus(AdminBody):
    locationId: str
    active: bool


class Revoke(AdminBody):
    pass


class OAuthSettings(AdminBody):
    access_token_ttl_seconds: float = Field(gt=0, le=10 * 365 * 86400)


def _state(request: Request) -> CrmState:
    return request.app.state.crm


def _known(state: CrmState, location_id: str) -> None:
    if location_id not in state.locations:
        raise not_found(f"Location with id {location_id} not found")


@router.get("/app")
def get_app(request: Request) -> dict:
    """The marketplace app's credentials and the agency's company id."""
    return _state(request).oauth.app.render()


@router.post("/install")
def install(body: Install, request: Request) -> dict:
    """The consent screen's outcome: the locations become installed; an authorization code (single use, 10 min)."""
    state = _state(request)
    with state.lock:
        every = body.locations == "all"
        location_ids = list(state.locations) if every else list(dict.fromkeys(body.locations))
        for location_id in location_ids:
            _known(state, location_id)
        if body.user_type == "Location" and len(location_ids) != 1:
            raise unprocessable("a Location install names exactly one location")
        if body.user_type == "Company" and not location_ids:
            raise unprocessable("locations must contain at least 1 elements")
        code = state.oauth.install(location_ids, body.user_type, every)
    return {"code": code}


@router.post("/uninstall")
def uninstall(body: LocationRef, request: Request) -> dict:
    """The app is removed from one location: its tokens die, new location tokens for it are refused."""
    state = _state(request)
    _known(state, body.locationId)
    return {"locationId": body.locationId, "uninstalled": state.oauth.uninstall(body.locationId)}


@router.post("/revoke")
def revoke(request: Request, body: Revoke | None = None) -> dict:
    """The agency revoked the install: every code, refresh token and access token is void."""
    _state(request).oauth.revoke()
    return {"revoked": True}


@router.put("/location-status")
def location_status(body: LocationStatus, request: Request) -> dict:
    """Suspend (active=false) or reactivate a location: calls with its tokens (PIT or OAuth) answer 400."""
    state = _state(request)
    with state.lock:
        _known(state, body.locationId)
        state.locations[body.locationId].active = body.active
    return {"locationId": body.locationId, "active": body.active}


@router.get("/settings")
def get_settings(request: Request) -> dict:
    return {"access_token_ttl_seconds": _state(request).oauth.access_token_ttl_seconds}


@router.put("/settings")
def put_settings(body: OAuthSettings, request: Request) -> dict:
    """Token life for tokens issued from now on (time scaling for tests and benchmarks)."""
    oauth = _state(request).oauth
    oauth.set_ttl(body.access_token_ttl_seconds)
    return {"access_token_ttl_seconds": oauth.access_token_ttl_seconds}


@router.post("/expire-all")
def expire_all(request: Request) -> dict:
    """Every access token issued so far expires now (refresh tokens stay usable)."""
    return {"expired": _state(request).oauth.expire_all()}


@router.get("/stats")
def stats(request: Request) -> dict:
    return _state(request).oauth.stats()
