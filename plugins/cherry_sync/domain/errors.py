"""Domain error types and reason codes.

Every error here is safe to log: it carries a reason code, the entity kind, an opaque Cherry id and a
field NAME. It never carries a value read from a record, because those values are patient data
(names, birth dates, phones, emails, balances).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cherry_sync.errors import CherrySyncError, Disposition
from cherry_sync.reasons import ReasonCode


class Entity(StrEnum):
    """The kind of Cherry record an error or warning is about."""

    PATIENT = "patient"
    PAYMENT = "payment"
    EVENT = "event"
    ESTIMATES = "estimates"
    METRICS = "metrics"  # Cherry's reporting metrics (aggregates: no patient data, no id)


class DomainError(CherrySyncError):
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

    reason_code = ReasonCode.INVALID_TIMEZONE
    disposition = Disposition.FAIL

    def __init__(self, tz_name: str) -> None:
        self.tz_name = tz_name
        super().__init__(f"unknown IANA time zone {tz_name!r}")


class UnprovisionedField(DomainError):
    """A custom field that must be written has no id for this location: provisioning did not run or failed."""

    reason_code = ReasonCode.FIELDS_NOT_PROVISIONED

    def __init__(self, field_keys: tuple[str, ...]) -> None:
        self.field_keys = field_keys
        super().__init__(f"custom fields without an id for this location: {', '.join(field_keys)}")
