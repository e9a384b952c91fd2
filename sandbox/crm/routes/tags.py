"""Tag endpoints: add/remove on one contact, and the bulk add/remove for up to 100 contacts."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from sandbox.crm import contact_writes
from sandbox.crm.auth import V2Caller
from sandbox.crm.errors import bad_request
from sandbox.crm.ids import is_record_id
from sandbox.crm.schemas import BulkTags, Tags

router = APIRouter(prefix="/contacts", tags=["contacts"])


@router.post("/{contactId}/tags", status_code=201)
def add_tags(contactId: str, body: Tags, caller: V2Caller) -> dict:
    loc = caller.location
    with caller.state.lock:
        contact = caller.state.contact_of(loc, contactId)
        new = contact_writes.set_tags(loc, contact, contact_writes.add_tags(contact.tags, body.tags))
        return {"tags": list(new.tags)}


@router.delete("/{contactId}/tags")
def remove_tags(contactId: str, body: Tags, caller: V2Caller) -> dict:
    loc = caller.location
    with caller.state.lock:
        contact = caller.state.contact_of(loc, contactId)
        new = contact_writes.set_tags(loc, contact, contact_writes.remove_tags(contact.tags, body.tags))
        return {"tags": list(new.tags)}


@router.post("/bulk/tags/update/{type}", status_code=201)
def bulk_tags(type: Literal["add", "remove"], body: BulkTags, caller: V2Caller) -> dict:
    """Per-contact results; unknown or foreign ids fail their item only. A poisoned id fails the batch."""
    loc = caller.require(body.locationId)
    state = caller.state
    with state.lock:
        if state.poisoned.intersection(body.contacts):
            # Sandbox switch: lets clients exercise their fall-back to per-contact calls.
            raise bad_request("Bulk tag update failed")
        responses = []
        for contact_id in body.contacts:
            responses.append(_one(state, loc, type, contact_id, body))
        errors = sum(1 for r in responses if r["type"] == "error")
        return {"succeded": errors == 0, "errorCount": errors, "responses": responses}


def _one(state, loc, action: str, contact_id: str, body: BulkTags) -> dict:
    if not is_record_id(contact_id):
        return {"contactId": contact_id, "message": "contact id is not a valid firebase id", "type": "error"}
    contact = loc.contacts.get(contact_id)
    if contact is None:
        message = "contact does not belong to location" if state.owner_of_contact(contact_id) else "contact not found"
        return {"contactId": contact_id, "message": message, "type": "error"}
    old = contact.tags
    if action == "add":
        new_tags = contact_writes.add_tags(old, body.tags)
    elif body.removeAllTags:
        new_tags = ()
    else:
        new_tags = contact_writes.remove_tags(old, body.tags)
    contact_writes.set_tags(loc, contact, new_tags)
    return {
        "contactId": contact_id,
        "message": "Tags updated",
        "type": "success",
        "oldTags": list(old),
        "tagsAdded": [t for t in new_tags if t not in old],
        "tagsRemoved": [t for t in old if t not in new_tags],
    }
