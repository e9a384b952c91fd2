"""GET /locations/{locationId} and the location custom-field endpoints."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from sandbox.crm.auth import V2Caller
from sandbox.crm.custom_fields import OPTION_TYPES, CustomField, field_key_for
from sandbox.crm.errors import not_found, unprocessable
from sandbox.crm.schemas import CreateCustomField, UpdateCustomField

router = APIRouter(prefix="/locations", tags=["locations"])

# Properties of the create/update bodies kept verbatim on the field record.
FILE_OPTIONS = ("acceptedFormat", "isMultipleFile", "maxNumberOfFiles", "textBoxListOptions")


@router.get("/{locationId}")
def get_location(locationId: str, caller: V2Caller) -> dict:
    return {"location": caller.require(locationId).render()}


@router.get("/{locationId}/customFields")
def list_custom_fields(
    locationId: str, caller: V2Caller, model: Literal["contact", "opportunity", "all"] = "all"
) -> dict:
    loc = caller.require(locationId)
    with caller.state.lock:
        fields = [f for f in loc.fields.by_id.values() if model == "all" or f.model == model]
        return {"customFields": [f.render() for f in fields]}


@router.post("/{locationId}/customFields", status_code=201)
def create_custom_field(locationId: str, body: CreateCustomField, caller: V2Caller) -> dict:
    loc = caller.require(locationId)
    model = body.model or "contact"
    options = _options(body.dataType, body.options)
    given = body.given()
    with caller.state.lock:
        cf = CustomField(
            id=caller.state.ids.record_id(),
            location_id=loc.id,
            name=body.name,
            field_key=field_key_for(model, body.name, body.fieldKey),
            data_type=body.dataType,
            model=model,
            placeholder=body.placeholder or "",
            position=body.position or 0,
            options=options,
            description=body.description,
            parent_id=body.parentId,
            extra={k: given[k] for k in FILE_OPTIONS if k in given},
        )
        loc.fields.add(cf)
        return {"customField": cf.render()}


def _options(data_type: str, options: list[str] | None) -> list[str]:
    if data_type not in OPTION_TYPES:
        return []
    if not options:
        raise unprocessable(f"options should not be empty for {data_type} fields")
    return list(dict.fromkeys(options))


@router.get("/{locationId}/customFields/{id}")
def get_custom_field(locationId: str, id: str, caller: V2Caller) -> dict:
    loc = caller.require(locationId)
    with caller.state.lock:
        return {"customField": _field(loc, id).render()}


@router.put("/{locationId}/customFields/{id}")
def update_custom_field(locationId: str, id: str, body: UpdateCustomField, caller: V2Caller) -> dict:
    """name is required; dataType and fieldKey are not in the whitelist (422 if sent)."""
    loc = caller.require(locationId)
    given = body.given()
    with caller.state.lock:
        cf = _field(loc, id)
        if body.model is not None and body.model != cf.model:
            raise unprocessable("model cannot be changed")
        cf.name = body.name
        if "placeholder" in given:
            cf.placeholder = body.placeholder or ""
        if body.position is not None:
            cf.position = body.position
        if "description" in given:
            cf.description = body.description
        if "parentId" in given:
            cf.parent_id = body.parentId
        if body.options is not None:
            cf.options = _options(cf.data_type, body.options)
        cf.extra.update({k: given[k] for k in FILE_OPTIONS if k in given})
        return {"customField": cf.render()}


@router.delete("/{locationId}/customFields/{id}")
def delete_custom_field(locationId: str, id: str, caller: V2Caller) -> dict:
    loc = caller.require(locationId)
    with caller.state.lock:
        _field(loc, id)
        loc.fields.remove(id)
        return {"succeded": True}


def _field(loc, field_id: str) -> CustomField:
    cf = loc.fields.by_id.get(field_id)
    if cf is None:
        raise not_found(f"Custom field with id {field_id} not found")
    return cf
