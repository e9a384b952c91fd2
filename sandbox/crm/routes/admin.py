"""Sandbox-only routes under /_sandbox: locations and tokens, state inspection, switches, reset.

These bypass auth, rate limits and faults (see sandbox.common.middleware), so a test can always look.
Sandbox tokens are not secrets, which is why they are listed here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from sandbox.common.middleware import ADMIN_PREFIX
from sandbox.crm import opportunities
from sandbox.crm.config import check_zone
from sandbox.crm.errors import not_found
from sandbox.crm.state import CrmState, Location

router = APIRouter(prefix=ADMIN_PREFIX, tags=["sandbox admin"])


class AdminBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


Zone = Annotated[str, AfterValidator(check_zone)]


class NewLocation(AdminBody):
    id: str | None = Field(None, min_length=1)
    token: str | None = Field(None, min_length=1)
    name: str | None = None
    allowDuplicateContact: bool | None = None
    allowDuplicateOpportunity: bool | None = None
    timezone: Zone | None = None  # default: the first of the sandbox's location_timezones


class LocationTimezone(AdminBody):
    timezone: Zone


class LocationSettingsBody(AdminBody):
    allowDuplicateContact: bool | None = None
    allowDuplicateOpportunity: bool | None = None
    duplicateContactPriority: list[Literal["email", "phone"]] | None = Field(None, min_length=1, max_length=2)


class NewPipeline(AdminBody):
    name: str
    stages: list[str] = Field(min_length=1)


class Poison(AdminBody):
    contactIds: list[str]


class RuntimeSettings(AdminBody):
    searchLagSeconds: float | None = Field(None, ge=0, le=600)


def _state(request: Request) -> CrmState:
    return request.app.state.crm


def _location(state: CrmState, location_id: str) -> Location:
    loc = state.locations.get(location_id)
    if loc is None:
        raise not_found(f"Location with id {location_id} not found")
    return loc


def _location_row(loc: Location) -> dict:
    return {
        "id": loc.id,
        "name": loc.name,
        "token": loc.token,
        "timezone": loc.timezone,
        "settings": loc.settings.render(),
    }


@router.get("/locations")
def list_locations(request: Request) -> dict:
    state = _state(request)
    with state.lock:
        return {"locations": [_location_row(loc) for loc in state.locations.values()]}


@router.post("/locations", status_code=201)
def add_location(body: NewLocation, request: Request) -> dict:
    loc = _state(request).add_location(
        body.id, body.token, body.name, body.allowDuplicateContact, body.allowDuplicateOpportunity, body.timezone
    )
    return _location_row(loc)


@router.put("/locations/{locationId}/timezone")
def put_location_timezone(locationId: str, body: LocationTimezone, request: Request) -> dict:
    """Change the location's time zone (in HighLevel: Settings > Business Profile > Time Zone)."""
    state = _state(request)
    with state.lock:
        loc = _location(state, locationId)
        loc.timezone = body.timezone
        return _location_row(loc)


@router.put("/locations/{locationId}/settings")
def put_location_settings(locationId: str, body: LocationSettingsBody, request: Request) -> dict:
    state = _state(request)
    with state.lock:
        settings = _location(state, locationId).settings
        if body.allowDuplicateContact is not None:
            settings.allow_duplicate_contact = body.allowDuplicateContact
        if body.allowDuplicateOpportunity is not None:
            settings.allow_duplicate_opportunity = body.allowDuplicateOpportunity
        if body.duplicateContactPriority is not None:
            settings.duplicate_priority = tuple(dict.fromkeys(body.duplicateContactPriority))
        return settings.render()


@router.post("/locations/{locationId}/pipelines", status_code=201)
def add_pipeline(locationId: str, body: NewPipeline, request: Request) -> dict:
    state = _state(request)
    return state.add_pipeline(_location(state, locationId), body.name, body.stages).render()


@router.get("/state/{locationId}")
def location_state(locationId: str, request: Request, lists: bool = True) -> dict:
    """Counts, and (unless lists=false) every record of the location, as the API would render them."""
    state = _state(request)
    with state.lock:
        loc = _location(state, locationId)
        out = {
            "location": _location_row(loc),
            "counts": {
                "contacts": len(loc.contacts.contacts),
                "customFields": len(loc.fields.by_id),
                "pipelines": len(loc.pipelines),
                "opportunities": len(loc.opportunities),
                "media": len(loc.media),
                "messages": len(loc.messages),
            },
        }
        if lists:
            out["contacts"] = [c.render(loc.fields) for c in loc.contacts.contacts.values()]
            out["customFields"] = [f.render() for f in loc.fields.by_id.values()]
            out["pipelines"] = [p.render() for p in loc.pipelines.values()]
            out["opportunities"] = [opportunities.render(loc, o) for o in loc.opportunities.values()]
            out["media"] = [{k: v for k, v in m.items()} for m in loc.media.values()]
            out["messages"] = list(loc.messages)
        return out


@router.get("/messages")
def list_messages(request: Request, location_id: str | None = Query(None, alias="locationId")) -> dict:
    state = _state(request)
    with state.lock:
        locs = [_location(state, location_id)] if location_id else list(state.locations.values())
        return {"messages": [m for loc in locs for m in loc.messages]}


@router.get("/media/{fileId}")
def media_content(fileId: str, request: Request) -> Response:
    state = _state(request)
    with state.lock:
        for loc in state.locations.values():
            if fileId in loc.media_bytes:
                record = loc.media[fileId]
                return Response(loc.media_bytes[fileId], media_type=record["contentType"])
    raise not_found(f"File with id {fileId} not found")


@router.get("/poison")
def get_poison(request: Request) -> dict:
    return {"contactIds": sorted(_state(request).poisoned)}


@router.put("/poison")
def put_poison(body: Poison, request: Request) -> dict:
    state = _state(request)
    with state.lock:
        state.poisoned = set(body.contactIds)
        return {"contactIds": sorted(state.poisoned)}


@router.get("/settings")
def get_settings(request: Request) -> dict:
    return {"searchLagSeconds": _state(request).search_lag_seconds}


@router.put("/settings")
def put_settings(body: RuntimeSettings, request: Request) -> dict:
    state = _state(request)
    if body.searchLagSeconds is not None:
        state.set_search_lag(body.searchLagSeconds)
    return {"searchLagSeconds": state.search_lag_seconds}


@router.post("/reset")
def reset(request: Request) -> dict:
    """Back to the start-up state: seeded locations only, no records, start-up faults and limits."""
    request.app.state.reset()
    state = _state(request)
    return {"locations": [_location_row(loc) for loc in state.locations.values()]}
