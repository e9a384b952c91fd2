"""Contacts: upsert, create, get, update, delete and the duplicate lookup."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from sandbox.crm import contact_writes, normalize
from sandbox.crm.auth import V2Caller
from sandbox.crm.contacts import email_key, phone_key
from sandbox.crm.schemas import CreateContact, UpdateContact, UpsertContact

router = APIRouter(prefix="/contacts", tags=["contacts"])


@router.post("/upsert")
def upsert_contact(body: UpsertContact, caller: V2Caller) -> dict:
    loc = caller.require(body.locationId)
    with caller.state.lock:
        contact, new = contact_writes.upsert(caller.state, loc, body)
        return {"new": new, "contact": contact.render(loc.fields), "traceId": str(uuid.uuid4())}


@router.post("/", status_code=201)
@router.post("", status_code=201, include_in_schema=False)
def create_contact(body: CreateContact, caller: V2Caller) -> dict:
    loc = caller.require(body.locationId)
    with caller.state.lock:
        contact = contact_writes.create(caller.state, loc, body)
        return {"contact": contact.render(loc.fields)}


@router.get("/search/duplicate")
def duplicate_contact(
    caller: V2Caller,
    location_id: str = Query(alias="locationId"),
    number: str | None = None,
    email: str | None = None,
) -> dict:
    """Email first, then phone. Values arrive URL-decoded: an unencoded '+' has become a space."""
    loc = caller.require(location_id)
    with caller.state.lock:
        book = loc.contacts
        found = None
        if email:
            found = book.by_email.first(email_key(email))
        if found is None and number:
            found = book.by_phone.first(phone_key(normalize.phone_e164(number)))
        return {"contact": book.contacts[found].render(loc.fields) if found else None}


@router.get("/{contactId}")
def get_contact(contactId: str, caller: V2Caller) -> dict:
    with caller.state.lock:
        contact = caller.state.contact_of(caller.location, contactId)
        return {"contact": contact.render(caller.location.fields)}


@router.put("/{contactId}")
def update_contact(contactId: str, body: UpdateContact, caller: V2Caller) -> dict:
    loc = caller.location
    with caller.state.lock:
        contact = caller.state.contact_of(loc, contactId)
        new = contact_writes.update(caller.state, loc, contact, body)
        return {"succeded": True, "contact": new.render(loc.fields)}


@router.delete("/{contactId}")
def delete_contact(contactId: str, caller: V2Caller) -> dict:
    loc = caller.location
    with caller.state.lock:
        caller.state.contact_of(loc, contactId)
        loc.contacts.delete(contactId)
        return {"succeded": True}
