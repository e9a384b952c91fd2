"""Create, update and upsert of contacts, with HighLevel's duplicate rules.

Duplicate detection follows the location's "Allow Duplicate Contact" setting: email first, then phone
(configurable). When the email matches contact A and the phone matches contact B, A is updated and the
phone is silently dropped: the documented quirk (#37) that clients must be ready for.
"""

from __future__ import annotations

import sys
from typing import Any

from sandbox.crm import custom_fields, normalize
from sandbox.crm.contacts import Contact, email_key, phone_key, updated
from sandbox.crm.errors import bad_request
from sandbox.crm.state import CrmState, Location, now_ms

# Body properties stored as-is in Contact.extra.
EXTRA_FIELDS = (
    "gender",
    "address1",
    "city",
    "state",
    "postalCode",
    "website",
    "timezone",
    "companyName",
    "country",
    "assignedTo",
    "dnd",
    "dndSettings",
    "inboundDndSettings",
)
CORE_FIELDS = {"firstName": "first_name", "lastName": "last_name", "name": "name", "source": "source"}


def _clean(loc: Location, given: dict[str, Any]) -> dict[str, Any]:
    """Validated, canonical values for the Contact fields present in `given` (a body's sent properties)."""
    out: dict[str, Any] = {}
    for api, attr in CORE_FIELDS.items():
        if api in given:
            # Names and sources repeat a lot across a million contacts; interning keeps one copy.
            out[attr] = sys.intern(given[api]) if given[api] else None
    if "email" in given:
        out["email"] = normalize.email_or_422(given["email"]) if given["email"] else None
    if "phone" in given:
        out["phone"] = normalize.phone_or_422(given["phone"]) if given["phone"] else None
    if "dateOfBirth" in given:
        dob = normalize.date_of_birth(given["dateOfBirth"])
        out["date_of_birth"] = sys.intern(dob) if dob else None
    if "tags" in given:
        out["tags"] = tuple(normalize.tags(given["tags"] or []))
    if "customFields" in given:
        out["custom_items"] = given["customFields"] or []
    extra = {k: given[k] for k in EXTRA_FIELDS if k in given}
    if extra:
        out["extra"] = extra
    return out


def _apply(loc: Location, contact: Contact, changes: dict[str, Any], created: bool = False) -> Contact:
    """A new record: `contact` with `changes` (from `_clean`) applied. Nothing is stored here."""
    changes = dict(changes)
    items = changes.pop("custom_items", None)
    if items is not None:
        changes["custom_fields"] = custom_fields.apply_writes(loc.fields, "contact", items, contact.custom_fields)
    extra = changes.pop("extra", None)
    if extra is not None:
        merged = dict(contact.extra or {})
        for key, value in extra.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        changes["extra"] = merged or None
    # A new contact keeps date_updated == date_added (the same int object: one fewer per contact).
    changes["date_updated"] = contact.date_added if created else max(now_ms(), contact.date_updated)
    return updated(contact, **changes)


def _items(given: dict[str, Any], body: Any) -> dict[str, Any]:
    """The sent properties, with customFields turned into {id, key, value} items."""
    if body.customFields is not None:
        given = dict(given)
        given["customFields"] = [cf.item() for cf in body.customFields]
    return given


def _duplicate_error(existing: Contact, matched: str) -> Exception:
    return bad_request(
        "This location does not allow duplicated contacts.",
        meta={"contactName": existing.full_name, "contactId": existing.id, "matchingField": matched},
    )


def _new_contact(state: CrmState, loc: Location, changes: dict[str, Any]) -> Contact:
    stamp = now_ms()
    blank = Contact(id=state.ids.record_id(), location_id=loc.id, date_added=stamp, date_updated=stamp)
    return _apply(loc, blank, changes, created=True)


def create(state: CrmState, loc: Location, body: Any) -> Contact:
    """POST /contacts/: a duplicate (by the location's rules) is a 400 naming the existing contact."""
    changes = _clean(loc, _items(body.given(), body))
    if not loc.settings.allow_duplicate_contact:
        match = loc.contacts.find_duplicate(changes.get("email"), changes.get("phone"), loc.settings.duplicate_priority)
        if match is not None:
            raise _duplicate_error(*match)
    contact = _new_contact(state, loc, changes)
    loc.contacts.put(contact)
    return contact


def upsert(state: CrmState, loc: Location, body: Any) -> tuple[Contact, bool]:
    """POST /contacts/upsert -> (contact, new)."""
    given = _items(body.given(), body)
    given.pop("createNewIfDuplicateAllowed", None)
    changes = _clean(loc, given)
    settings = loc.settings
    if settings.allow_duplicate_contact and body.createNewIfDuplicateAllowed:
        contact = _new_contact(state, loc, changes)
        loc.contacts.put(contact)
        return contact, True
    match = loc.contacts.find_duplicate(changes.get("email"), changes.get("phone"), settings.duplicate_priority)
    if match is None:
        contact = _new_contact(state, loc, changes)
        loc.contacts.put(contact)
        return contact, True
    existing, matched = match
    _drop_conflicting_identifiers(loc, existing, matched, changes)
    contact = _apply(loc, existing, changes)
    loc.contacts.put(contact)
    return contact, False


def _drop_conflicting_identifiers(loc: Location, target: Contact, matched: str, changes: dict[str, Any]) -> None:
    """The lower-priority identifier is ignored when it belongs to a different contact (the quirk)."""
    book = loc.contacts
    for fieldname, index, key in (
        ("email", book.by_email, email_key(changes.get("email"))),
        ("phone", book.by_phone, phone_key(changes.get("phone"))),
    ):
        if fieldname == matched or key is None:
            continue
        owner = index.first(key)
        if owner is not None and owner != target.id:
            changes.pop(fieldname, None)


def update(state: CrmState, loc: Location, contact: Contact, body: Any) -> Contact:
    """PUT /contacts/{id}: moving onto another contact's email/phone is a duplicate 400."""
    changes = _clean(loc, _items(body.given(), body))
    if not loc.settings.allow_duplicate_contact:
        book = loc.contacts
        for fieldname, index, key in (
            ("email", book.by_email, email_key(changes.get("email"))),
            ("phone", book.by_phone, phone_key(changes.get("phone"))),
        ):
            owner = index.first(key) if key else None
            if owner is not None and owner != contact.id:
                raise _duplicate_error(book.contacts[owner], fieldname)
    new = _apply(loc, contact, changes)
    loc.contacts.put(new)
    return new


def set_tags(loc: Location, contact: Contact, tags: tuple[str, ...]) -> Contact:
    new = updated(contact, tags=tags, date_updated=max(now_ms(), contact.date_updated))
    loc.contacts.put(new)
    return new


def add_tags(current: tuple[str, ...], extra: list[str]) -> tuple[str, ...]:
    return tuple(normalize.tags([*current, *extra]))


def remove_tags(current: tuple[str, ...], gone: list[str]) -> tuple[str, ...]:
    drop = set(normalize.tags(gone))
    return tuple(t for t in current if t not in drop)
