"""Domain error types and reason codes.

Every error here is safe to log: it carries a reason code, the entity kind, an opaque Cherry id and a
field NAME. It never carries a value read from a record, because those values are patient data
(names, birth dates, phones, emails, balances).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Entity(StrEnum):
    """The kind of Cherry record an error or warning is about."""

    PATIENT = "patient"
    PAYMENT = "payment"
    EVENT = "event"
    ESTIMATES = "estimates"


class ReasonCode(StrEnum):
    """Why a record was rejected (fatal) or a field was dropped (warning).

    Rejections: every code except those in `WARNING_CODES`.
    Warnings (the record is kept, the field is dropped and not written): `invalid_email`,
    `invalid_phone`, `invalid_date` and `implausible_date` (today only `date_of_birth` is a calendar
    date in the contract; every other time field is a timestamp and rejects as `invalid_timestamp`).
    """

    INVALID_RECORD = "invalid_record"  # not a JSON object, or a field has the wrong JSON type
    MISSING_ID = "missing_id"  # the record's own id is absent, null or blank
    INVALID_ID = "invalid_id"  # an id (own or foreign) is not a short opaque token
    MISSING_FIELD = "missing_field"  # a required field other than the id is absent or null
    INVALID_MONEY = "invalid_money"  # not a non-negative decimal with at most two places
    INVALID_NUMBER = "invalid_number"  # a non-money number (term months, APR) is out of range or not numeric
    INVALID_TIMESTAMP = "invalid_timestamp"  # not an RFC 3339 timestamp with a UTC offset
    UNKNOWN_STATUS = "unknown_status"  # an enum value outside the contract
    UNKNOWN_EVENT_TYPE = "unknown_event_type"  # an event type outside the contract
    OVERSIZE_TEXT = "oversize_text"  # a text value longer than its documented limit
    NO_CONTACT_POINT = "no_contact_point"  # neither a usable phone nor a usable email
    INCONSISTENT_RECORD = "inconsistent_record"  # fields contradict each other (refund > amount, ids differ)
    # Warnings only: the record survives without the field.
    INVALID_EMAIL = "invalid_email"
    INVALID_PHONE = "invalid_phone"
    INVALID_DATE = "invalid_date"  # malformed or impossible calendar date (2023-02-30)
    IMPLAUSIBLE_DATE = "implausible_date"  # a real date that cannot be true: placeholder, pre-1900, future


WARNING_CODES: frozenset[ReasonCode] = frozenset(
    {
        ReasonCode.INVALID_EMAIL,
        ReasonCode.INVALID_PHONE,
        ReasonCode.INVALID_DATE,
        ReasonCode.IMPLAUSIBLE_DATE,
    }
)


class DomainError(Exception):
    """Base class of every error raised by the domain layer."""


class RecordRejected(DomainError):
    """A Cherry record broke a rule and must not be synced.

    `source_id` is the record's Cherry id, or None when the id itself is missing or unusable.
    `message` is a fixed description of the rule chosen by this package, never record content.
    """

    def __init__(
        self,
        entity: Entity,
        source_id: str | None,
        reason_code: ReasonCode,
        field: str | None,
        message: str,
    ) -> None:
        self.entity = entity
        self.source_id = source_id
        self.reason_code = reason_code
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" field={self.field}" if self.field else ""
        return (
            f"{self.entity.value} {self.source_id or '<no id>'} rejected: {self.reason_code.value}{where}"
            f" ({self.message})"
        )

    def __repr__(self) -> str:
        return (
            f"RecordRejected(entity={self.entity.value!r}, source_id={self.source_id!r}, "
            f"reason_code={self.reason_code.value!r}, field={self.field!r})"
        )

    def __reduce__(self) -> tuple[type[RecordRejected], tuple[object, ...]]:
        # Exceptions are pickled across Airflow task boundaries; keep the constructor arguments.
        return (type(self), (self.entity, self.source_id, self.reason_code, self.field, self.message))


@dataclass(frozen=True, slots=True)
class FieldWarning:
    """A non-fatal problem: the record is kept but `field` was dropped and will not be written.

    Callers record these (reason code + field name + id) for data-quality reporting.
    """

    entity: Entity
    source_id: str
    reason_code: ReasonCode
    field: str

    def __str__(self) -> str:
        return f"{self.entity.value} {self.source_id}: dropped {self.field} ({self.reason_code.value})"


class InvalidPracticeTimezone(DomainError, ValueError):
    """The practice's configured time zone is not an IANA zone name (configuration, not patient data)."""

    def __init__(self, tz_name: str) -> None:
        self.tz_name = tz_name
        super().__init__(f"unknown IANA time zone {tz_name!r}")


class UnprovisionedField(DomainError):
    """A custom field that must be written has no id for this location: provisioning did not run or failed."""

    def __init__(self, field_keys: tuple[str, ...]) -> None:
        self.field_keys = field_keys
        super().__init__(f"custom fields without an id for this location: {', '.join(field_keys)}")
