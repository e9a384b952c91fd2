"""The non-destructive merge: what to write to a CRM contact so it reflects Cherry without losing CRM data.

Rules (docs/field-mapping.md, "Merge rules"):
- firstName / lastName come from Cherry whenever Cherry has a non-empty value that differs.
- dateOfBirth is written only when the CRM has no real date (empty, unparseable or a placeholder such as
  1900-01-01 / 1970-01-01). A real CRM date is never overwritten, and never cleared.
- phone / email are written only when Cherry has a value and it differs (phones compared as E.164,
  emails case-insensitively). A CRM value is kept when Cherry has none.
- Cherry custom fields mirror Cherry: written when they differ from what the CRM holds (numbers by value,
  dates by date, text by content), and emptied when Cherry has no value but the CRM still holds one.
- `tags` is never sent (it replaces all of a contact's tags), nor any key outside the API's DTO.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cherry_sync.domain.birth_dates import EARLIEST_BIRTH_DATE, PLACEHOLDER_BIRTH_DATES
from cherry_sync.domain.contact_points import clean_name, email_match_key, normalise_phone
from cherry_sync.domain.crm_values import (
    CLEARED_FIELD_VALUE,
    is_empty_value,
    parse_crm_date,
    same_value,
    to_field_value,
)
from cherry_sync.domain.desired_contact import DesiredContact, FieldValue
from cherry_sync.domain.errors import UnprovisionedField

# Properties of UpdateContactDto / UpsertContactDto in the HighLevel contacts spec (2021-07-28). The API
# validates with a whitelist and answers 422 to any other property.
UPDATE_CONTACT_KEYS: frozenset[str] = frozenset(
    {
        "firstName",
        "lastName",
        "name",
        "email",
        "phone",
        "address1",
        "city",
        "state",
        "postalCode",
        "website",
        "timezone",
        "dnd",
        "dndSettings",
        "inboundDndSettings",
        "tags",
        "customFields",
        "source",
        "dateOfBirth",
        "country",
        "assignedTo",
    }
)
UPSERT_CONTACT_KEYS: frozenset[str] = UPDATE_CONTACT_KEYS | {
    "locationId",
    "gender",
    "companyName",
    "createNewIfDuplicateAllowed",
}
# Keys that exist in the DTOs but must never be sent by the sync: `tags` replaces every tag on the contact.
FORBIDDEN_KEYS: frozenset[str] = frozenset({"tags"})


@dataclass(frozen=True)
class CustomFieldWrite:
    """One custom-field value to write; `field_id` is the location's id for `field_key`.

    `value` None empties the field: HighLevel clears a contact's custom field when it is written as an
    empty string, whatever the field's type.
    """

    field_key: str
    field_id: str
    value: FieldValue | None = field(repr=False)

    @property
    def clears(self) -> bool:
        return self.value is None

    def as_json(self) -> dict[str, Any]:
        value = CLEARED_FIELD_VALUE if self.value is None else to_field_value(self.value)
        return {"id": self.field_id, "field_value": value}


@dataclass(frozen=True)
class ContactWrite:
    """The changes to make to one contact. `contact_id` is None when the contact does not exist yet.

    `standard` holds HighLevel standard fields by API name. `repr()` and `changed_fields` show names only.
    """

    patient_id: str
    contact_id: str | None
    standard: Mapping[str, str] = field(repr=False)
    custom_fields: tuple[CustomFieldWrite, ...]
    # Upsert matches on email/phone, so an upsert body must carry them even when they did not change.
    match_email: str | None = field(default=None, repr=False)
    match_phone: str | None = field(default=None, repr=False)

    @property
    def is_create(self) -> bool:
        return self.contact_id is None

    @property
    def changed_fields(self) -> tuple[str, ...]:
        """Standard field names and custom field keys being written, safe to log."""
        return tuple(sorted(self.standard)) + tuple(sorted(w.field_key for w in self.custom_fields))

    @property
    def cleared_fields(self) -> tuple[str, ...]:
        """The Cherry field keys this write empties."""
        return tuple(sorted(w.field_key for w in self.custom_fields if w.clears))

    def update_body(self) -> dict[str, Any]:
        """JSON body for `PUT /contacts/{contact_id}`."""
        body: dict[str, Any] = dict(self.standard)
        if self.custom_fields:
            body["customFields"] = [write.as_json() for write in self.custom_fields]
        return _checked(body, UPDATE_CONTACT_KEYS)

    def upsert_body(self, location_id: str) -> dict[str, Any]:
        """JSON body for `POST /contacts/upsert` into `location_id` (the CRM location)."""
        body: dict[str, Any] = {"locationId": location_id}
        if self.match_email:
            body["email"] = self.match_email
        if self.match_phone:
            body["phone"] = self.match_phone
        body.update(self.update_body())
        return _checked(body, UPSERT_CONTACT_KEYS)


def plan_contact_write(
    desired: DesiredContact,
    existing: Mapping[str, Any] | None,
    field_ids: Mapping[str, str],
) -> ContactWrite | None:
    """Plan the write that brings `existing` (GET /contacts/{id}, wrapped or not) in line with `desired`.

    `existing=None` means a new contact: every value Cherry has is written, and the fields Cherry has no
    value for are sent empty (an upsert can land on a contact the caller did not know, whose stale values
    must not survive). Returns None when the contact already holds everything. Raises
    `UnprovisionedField` when a field to write a value to has no id; a field to clear that has no id holds
    nothing, so it is skipped.
    """
    missing = tuple(sorted(key for key in desired.custom_fields if not field_ids.get(key)))
    if missing:
        raise UnprovisionedField(missing)

    contact = _unwrap(existing)
    if contact is None:
        return ContactWrite(
            patient_id=desired.patient_id,
            contact_id=None,
            standard=desired.standard_fields(),
            custom_fields=tuple(
                CustomFieldWrite(key, field_ids[key], value) for key, value in sorted(desired.custom_fields.items())
            )
            + tuple(
                CustomFieldWrite(key, field_ids[key], None) for key in sorted(desired.cleared) if field_ids.get(key)
            ),
            match_email=desired.email,
            match_phone=desired.phone,
        )

    contact_id = contact.get("id")
    if not isinstance(contact_id, str) or not contact_id:
        raise ValueError("existing contact has no id")
    standard = _standard_changes(desired, contact)
    current = _current_custom_values(contact)
    custom = tuple(
        CustomFieldWrite(key, field_ids[key], value)
        for key, value in sorted(desired.custom_fields.items())
        if not same_value(value, current.get(field_ids[key]))
    ) + tuple(
        CustomFieldWrite(key, field_ids[key], None)
        for key in sorted(desired.cleared)
        if field_ids.get(key) and not is_empty_value(current.get(field_ids[key]))
    )
    if not standard and not custom:
        return None
    return ContactWrite(
        patient_id=desired.patient_id,
        contact_id=contact_id,
        standard=standard,
        custom_fields=custom,
        match_email=desired.email,
        match_phone=desired.phone,
    )


def has_real_birth_date(value: object) -> bool:
    """True if a CRM dateOfBirth value is a usable date (not blank, garbage or a placeholder default)."""
    parsed = parse_crm_date(value)
    return parsed is not None and parsed >= EARLIEST_BIRTH_DATE and parsed not in PLACEHOLDER_BIRTH_DATES


def _standard_changes(desired: DesiredContact, contact: Mapping[str, Any]) -> dict[str, str]:
    changes: dict[str, str] = {}
    for api_name, value in (("firstName", desired.first_name), ("lastName", desired.last_name)):
        if value and clean_name(contact.get(api_name)) != value:
            changes[api_name] = value
    if desired.email and email_match_key(desired.email) != email_match_key(_text(contact.get("email"))):
        changes["email"] = desired.email
    if desired.phone and normalise_phone(contact.get("phone")) != desired.phone:
        changes["phone"] = desired.phone
    if desired.date_of_birth and not has_real_birth_date(contact.get("dateOfBirth")):
        changes["dateOfBirth"] = desired.date_of_birth.isoformat()
    return changes


def _current_custom_values(contact: Mapping[str, Any]) -> dict[str, object]:
    """field id -> value from a contact read (`customFields: [{id, value}]`)."""
    values: dict[str, object] = {}
    items = contact.get("customFields")
    if not isinstance(items, list):
        return values
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("id"), str):
            # Reads use `value`; tolerate the write spellings in case a sandbox echoes them back.
            for key in ("value", "fieldValue", "field_value"):
                if key in item:
                    values[item["id"]] = item[key]
                    break
    return values


def _unwrap(existing: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if existing is None:
        return None
    inner = existing.get("contact")
    return inner if isinstance(inner, Mapping) else existing


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _checked(body: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    # A safety net: the body is built from known keys, but a 422 (or a tag wipe) must be impossible.
    bad = sorted((set(body) - allowed) | (set(body) & FORBIDDEN_KEYS))
    if bad:
        raise AssertionError(f"contact body would carry disallowed keys: {bad}")
    return body
