"""The catalogue of Cherry custom fields on a CRM contact, and the plan to provision them per location.

Fields are matched by `fieldKey` only, never by display name: practices rename fields, and a field that
merely shares a name with ours may hold something else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cherry_sync.domain.errors import DomainError
from cherry_sync.reasons import ReasonCode


class DataType(StrEnum):
    """HighLevel custom-field data types used by the catalogue ("MONETORY" is HighLevel's spelling)."""

    TEXT = "TEXT"
    LARGE_TEXT = "LARGE_TEXT"
    SINGLE_OPTIONS = "SINGLE_OPTIONS"
    MONETORY = "MONETORY"
    DATE = "DATE"


_OPTION_TYPES = frozenset({DataType.SINGLE_OPTIONS})
CONTACT_MODEL = "contact"
_KEY_PREFIX = "contact."

# Field keys, for code that writes or reads a specific field.
ACCOUNT_STATUS = "contact.cherry_account_status"
ACCOUNT_BALANCE = "contact.cherry_account_balance"
BALANCE_STATUS = "contact.cherry_balance_status"
APPLICATION_COMPLETED_DATE = "contact.cherry_application_completed_date"
INVOICE_NUMBER = "contact.cherry_invoice_number"
PRACTICE_6_MONTH_ESTIMATE = "contact.cherry_practice_6month_estimate"
PRACTICE_12_MONTH_ESTIMATE = "contact.cherry_practice_12month_estimate"
PATIENT_6_MONTH_ESTIMATE = "contact.cherry_patient_6month_estimate"
PATIENT_12_MONTH_ESTIMATE = "contact.cherry_patient_12month_estimate"
INCREASE_ELIGIBLE = "contact.cherry_increase_eligible"
EXTENSION_ELIGIBLE = "contact.cherry_extension_eligible"
LAST_PAYMENT_DATE = "contact.cherry_last_payment_date"
PAYMENT_STATUS = "contact.cherry_payment_status"
PAYMENT_AMOUNT = "contact.cherry_payment_amount"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One custom field the sync owns: display name, key, type and (for option types) its options."""

    name: str
    field_key: str
    data_type: DataType
    options: tuple[str, ...] = ()

    def create_body(self) -> dict[str, Any]:
        """Body for `POST /locations/{id}/customFields`."""
        body: dict[str, Any] = {
            "name": self.name,
            "dataType": self.data_type.value,
            "model": CONTACT_MODEL,
            "fieldKey": self.field_key,
        }
        if self.data_type in _OPTION_TYPES:
            body["options"] = list(self.options)
        return body


_YES_NO = ("Yes", "No")

CATALOGUE: tuple[FieldSpec, ...] = (
    FieldSpec("Cherry Account Status", ACCOUNT_STATUS, DataType.SINGLE_OPTIONS, ("Active", "Inactive")),
    FieldSpec("Cherry Account Balance", ACCOUNT_BALANCE, DataType.MONETORY),
    FieldSpec(
        "Cherry Balance Status",
        BALANCE_STATUS,
        DataType.SINGLE_OPTIONS,
        ("Available", "Partially Used", "Fully Used", "Expired"),
    ),
    FieldSpec("Cherry Application Completed Date", APPLICATION_COMPLETED_DATE, DataType.DATE),
    FieldSpec("Cherry Invoice Number", INVOICE_NUMBER, DataType.TEXT),
    FieldSpec("Cherry Practice 6-Month Estimate", PRACTICE_6_MONTH_ESTIMATE, DataType.LARGE_TEXT),
    FieldSpec("Cherry Practice 12-Month Estimate", PRACTICE_12_MONTH_ESTIMATE, DataType.LARGE_TEXT),
    FieldSpec("Cherry Patient 6-Month Estimate", PATIENT_6_MONTH_ESTIMATE, DataType.LARGE_TEXT),
    FieldSpec("Cherry Patient 12-Month Estimate", PATIENT_12_MONTH_ESTIMATE, DataType.LARGE_TEXT),
    FieldSpec("Cherry Increase Eligible", INCREASE_ELIGIBLE, DataType.SINGLE_OPTIONS, _YES_NO),
    FieldSpec("Cherry Extension Eligible", EXTENSION_ELIGIBLE, DataType.SINGLE_OPTIONS, _YES_NO),
    FieldSpec("Cherry Last Payment Date", LAST_PAYMENT_DATE, DataType.DATE),
    FieldSpec(
        "Cherry Payment Status",
        PAYMENT_STATUS,
        DataType.SINGLE_OPTIONS,
        ("Completed", "Refunded", "Partially Refunded", "Cancelled"),
    ),
    FieldSpec("Cherry Payment Amount", PAYMENT_AMOUNT, DataType.MONETORY),
)

FIELDS_BY_KEY: Mapping[str, FieldSpec] = {spec.field_key: spec for spec in CATALOGUE}


@dataclass(frozen=True, slots=True)
class FieldConflict:
    """A location field has our key but another data type. The practice must be skipped until fixed by hand:
    HighLevel cannot change a field's type, and writing our values into it would corrupt it."""

    field_key: str
    field_id: str
    expected_type: DataType
    actual_type: str


@dataclass(frozen=True, slots=True)
class OptionsUpdate:
    """An option field that exists but lacks some of our options; `body` is the `PUT …/customFields/{id}` body.

    The body keeps the field's current name (the practice may have renamed it) and current options
    (removing an option would orphan contacts that hold it), adding ours at the end.
    """

    field_key: str
    field_id: str
    missing_options: tuple[str, ...]
    body: dict[str, Any] = field(hash=False, compare=True)


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """What to do on one location so that every catalogue field exists with the right type and options."""

    to_create: tuple[FieldSpec, ...]
    existing_ids: Mapping[str, str]  # fieldKey -> id for fields that exist with the right type
    option_updates: tuple[OptionsUpdate, ...]
    conflicts: tuple[FieldConflict, ...]

    @property
    def can_sync(self) -> bool:
        """False when any conflict exists: the practice must be skipped."""
        return not self.conflicts

    @property
    def is_complete(self) -> bool:
        """True when nothing needs creating or updating and there are no conflicts."""
        return not (self.to_create or self.option_updates or self.conflicts)

    def create_bodies(self) -> list[dict[str, Any]]:
        return [spec.create_body() for spec in self.to_create]

    def field_ids(self, created: Mapping[str, str] | None = None) -> dict[str, str]:
        """fieldKey -> id for the whole catalogue, given the ids of the fields just created.

        Raises `FieldsNotProvisioned` if a conflict remains or a created field's id is missing.
        """
        ids = {**self.existing_ids, **(created or {})}
        missing = tuple(spec.field_key for spec in CATALOGUE if spec.field_key not in ids)
        if missing or self.conflicts:
            raise FieldsNotProvisioned(missing, tuple(c.field_key for c in self.conflicts))
        return {spec.field_key: ids[spec.field_key] for spec in CATALOGUE}


class FieldsNotProvisioned(DomainError):
    """The location lacks some catalogue fields, or has them with the wrong type (keys only, no data)."""

    reason_code = ReasonCode.FIELDS_NOT_PROVISIONED

    def __init__(self, missing: tuple[str, ...], conflicting: tuple[str, ...]) -> None:
        self.missing = missing
        self.conflicting = conflicting
        super().__init__(f"custom fields not ready: missing={list(missing)} wrong_type={list(conflicting)}")


def normalise_field_key(field_key: object, model: object = CONTACT_MODEL) -> str | None:
    """Canonical "contact.<name>" key of a field record; None for other models or blank keys.

    HighLevel may return a key we created as "contact.x" either with or without the model prefix
    (undocumented, see the HighLevel notes §3), so both spellings match.
    """
    if not isinstance(field_key, str) or not field_key.strip():
        return None
    if model not in (None, CONTACT_MODEL):
        return None
    key = field_key.strip()
    return key if key.startswith(_KEY_PREFIX) else f"{_KEY_PREFIX}{key}"


def plan_field_provisioning(existing_fields: Iterable[Mapping[str, Any]]) -> FieldPlan:
    """Compare a location's fields (`GET /locations/{id}/customFields` → `customFields`) with the catalogue."""
    by_key: dict[str, Mapping[str, Any]] = {}
    for record in existing_fields:
        key = normalise_field_key(record.get("fieldKey"), record.get("model", CONTACT_MODEL))
        # HighLevel keys are unique per location; keep the first if a listing ever repeats one.
        if key is not None and key not in by_key:
            by_key[key] = record

    to_create: list[FieldSpec] = []
    existing_ids: dict[str, str] = {}
    updates: list[OptionsUpdate] = []
    conflicts: list[FieldConflict] = []
    for spec in CATALOGUE:
        record = by_key.get(spec.field_key)
        if record is None:
            to_create.append(spec)
            continue
        field_id = str(record.get("id", ""))
        actual_type = str(record.get("dataType", "")).strip().upper()
        if actual_type != spec.data_type.value:
            conflicts.append(FieldConflict(spec.field_key, field_id, spec.data_type, actual_type))
            continue
        existing_ids[spec.field_key] = field_id
        if spec.data_type in _OPTION_TYPES:
            update = _options_update(spec, field_id, record)
            if update is not None:
                updates.append(update)
    return FieldPlan(tuple(to_create), existing_ids, tuple(updates), tuple(conflicts))


def field_ids(existing_fields: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """fieldKey -> id for a location that is already provisioned; raises `FieldsNotProvisioned` otherwise.

    Options are not checked here: apply the plan's option updates before writing, or the CRM may
    refuse a value outside a field's option list.
    """
    return plan_field_provisioning(existing_fields).field_ids()


def _options_update(spec: FieldSpec, field_id: str, record: Mapping[str, Any]) -> OptionsUpdate | None:
    current = [str(option) for option in _options_of(record)]
    missing = tuple(option for option in spec.options if option not in current)
    if not missing:
        return None
    name = record.get("name") if isinstance(record.get("name"), str) and record.get("name") else spec.name
    return OptionsUpdate(spec.field_key, field_id, missing, {"name": name, "options": [*current, *missing]})


def _options_of(record: Mapping[str, Any]) -> list[Any]:
    """Current options of a field record: `picklistOptions` on reads, `options` as a fallback."""
    for key in ("picklistOptions", "options"):
        value = record.get(key)
        if isinstance(value, list):
            # Some responses hold option objects ({key, label}); compare on the label the CRM displays.
            return [item.get("label", item.get("key")) if isinstance(item, Mapping) else item for item in value]
    return []
