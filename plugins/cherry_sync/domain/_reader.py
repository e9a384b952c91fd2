"""Typed reads from one raw Cherry JSON object, turning every problem into a reason code.

Private to the domain package: `cherry_records` builds its parse functions from these readers. The
readers never put a value into an error; they name the field and the rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, NoReturn, TypeVar

from cherry_sync.domain.contact_points import clean_name
from cherry_sync.domain.errors import Entity, FieldWarning, ReasonCode, RecordRejected

E = TypeVar("E", bound=Enum)

# Opaque ids ("pat_…", "pay_…", location ids): short tokens. A longer or spaced value is not an id and
# could be patient data pasted into the wrong column, so it is never echoed into an error.
_ID_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")
# Plain decimal text: no sign, exponent, thousands separator or currency symbol.
_DECIMAL_TEXT = re.compile(r"^\d{1,12}(?:\.(\d{1,12}))?$")
# RFC 3339 date-time with a mandatory offset. datetime.fromisoformat alone also accepts ISO week dates,
# basic format and naive times, which the contract does not allow.
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Money never exceeds this in a patient-financing record (Cherry approvals top out around $50k).
MAX_MONEY = Decimal("99999999.99")


class RecordReader:
    """Reads fields of one raw record, collecting warnings and raising `RecordRejected` on fatal problems."""

    def __init__(
        self,
        raw: object,
        entity: Entity,
        *,
        source_id: str | None = None,
        field_prefix: str = "",
    ) -> None:
        self.entity = entity
        self.source_id = source_id
        # Nested objects (an estimate's plans) name their fields "plans[1].apr".
        self._prefix = field_prefix
        if not isinstance(raw, Mapping):
            self.reject(ReasonCode.INVALID_RECORD, None, "record is not a JSON object")
        self._raw: Mapping[str, Any] = raw
        self.warnings: list[FieldWarning] = []

    # -- outcomes -------------------------------------------------------------------------------

    def reject(self, reason: ReasonCode, field: str | None, message: str) -> NoReturn:
        name = f"{self._prefix}{field}" if field else (self._prefix.rstrip(".") or None)
        raise RecordRejected(self.entity, self.source_id, reason, name, message)

    def warn(self, reason: ReasonCode, field: str) -> None:
        # Warnings are only raised after the record's id was read, so source_id is set.
        self.warnings.append(FieldWarning(self.entity, self.source_id or "", reason, f"{self._prefix}{field}"))

    def raw(self, key: str) -> Any:
        return self._raw.get(key)

    # -- ids ------------------------------------------------------------------------------------

    def own_id(self, key: str = "id") -> str:
        """The record's own id; sets `source_id` so later errors can name the record."""
        value = self._raw.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            self.reject(ReasonCode.MISSING_ID, key, "record has no id")
        if not isinstance(value, str) or not _ID_SHAPE.match(value.strip()):
            self.reject(ReasonCode.INVALID_ID, key, "id is not a short opaque token")
        self.source_id = value.strip()
        return self.source_id

    def ref_id(self, key: str, *, required: bool = True) -> str | None:
        """An id pointing at another object (location, patient, contract)."""
        value = self._raw.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.reject(ReasonCode.MISSING_FIELD, key, "required reference is missing")
            return None
        if not isinstance(value, str) or not _ID_SHAPE.match(value.strip()):
            self.reject(ReasonCode.INVALID_ID, key, "reference is not a short opaque token")
        return value.strip()

    # -- text -----------------------------------------------------------------------------------

    def text(self, key: str, *, max_length: int, required: bool = False) -> str | None:
        """Free text, cleaned like a name (trimmed, whitespace collapsed); rejects text over `max_length`."""
        value = self._raw.get(key)
        if value is None:
            if required:
                self.reject(ReasonCode.MISSING_FIELD, key, "required text is missing")
            return None
        if not isinstance(value, str):
            self.reject(ReasonCode.INVALID_RECORD, key, "expected a string")
        cleaned = clean_name(value)
        if cleaned is not None and len(cleaned) > max_length:
            self.reject(ReasonCode.OVERSIZE_TEXT, key, f"text longer than {max_length} characters")
        if cleaned is None and required:
            self.reject(ReasonCode.MISSING_FIELD, key, "required text is blank")
        return cleaned

    # -- numbers --------------------------------------------------------------------------------

    def _decimal(self, key: str, reason: ReasonCode, max_places: int) -> Decimal | None:
        value = self._raw.get(key)
        if value is None:
            return None
        # bool is an int subclass; True is not one dollar.
        if isinstance(value, bool):
            self.reject(reason, key, "expected a decimal number")
        if isinstance(value, int | float):
            # repr() of a float is the shortest text that round-trips, so 1234.5 reads as 1234.5 exactly.
            text = repr(value) if isinstance(value, float) else str(value)
        elif isinstance(value, str):
            text = value.strip()
        else:
            self.reject(reason, key, "expected a decimal number")
        match = _DECIMAL_TEXT.match(text)
        if not match or (match.group(1) is not None and len(match.group(1)) > max_places):
            self.reject(reason, key, f"expected a non-negative decimal with at most {max_places} places")
        try:
            return Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern above already guarantees valid text
            self.reject(reason, key, "expected a decimal number")

    def money(self, key: str, *, required: bool = False, max_places: int = 2) -> Decimal | None:
        """A non-negative amount in dollars. Balances and payments allow 2 places; estimates may allow more."""
        amount = self._decimal(key, ReasonCode.INVALID_MONEY, max_places)
        if amount is None:
            if required:
                self.reject(ReasonCode.MISSING_FIELD, key, "required amount is missing")
            return None
        if amount > MAX_MONEY:
            self.reject(ReasonCode.INVALID_MONEY, key, "amount is out of range")
        return amount

    def percent(self, key: str, *, required: bool = True) -> Decimal | None:
        """An APR in percent, 0 to 100 inclusive ("17.99" means 17.99 %)."""
        value = self._decimal(key, ReasonCode.INVALID_NUMBER, 4)
        if value is None:
            if required:
                self.reject(ReasonCode.MISSING_FIELD, key, "required percentage is missing")
            return None
        if value > 100:
            self.reject(ReasonCode.INVALID_NUMBER, key, "percentage above 100")
        return value

    def integer(self, key: str, *, minimum: int, maximum: int) -> int:
        value = self._raw.get(key)
        if value is None:
            self.reject(ReasonCode.MISSING_FIELD, key, "required number is missing")
        if isinstance(value, bool) or not isinstance(value, int):
            self.reject(ReasonCode.INVALID_NUMBER, key, "expected a whole number")
        if not minimum <= value <= maximum:
            self.reject(ReasonCode.INVALID_NUMBER, key, f"expected a whole number from {minimum} to {maximum}")
        return value

    # -- flags and enums ------------------------------------------------------------------------

    def boolean(self, key: str) -> bool:
        value = self._raw.get(key)
        if value is None:
            self.reject(ReasonCode.MISSING_FIELD, key, "required flag is missing")
        if not isinstance(value, bool):
            self.reject(ReasonCode.INVALID_RECORD, key, "expected true or false")
        return value

    def enum(
        self,
        key: str,
        enum_type: type[E],
        *,
        required: bool,
        reason: ReasonCode = ReasonCode.UNKNOWN_STATUS,
    ) -> E | None:
        """An exact, case-sensitive contract value; anything else is `reason` (default unknown_status)."""
        value = self._raw.get(key)
        if value is None:
            if required:
                self.reject(ReasonCode.MISSING_FIELD, key, "required status is missing")
            return None
        if not isinstance(value, str):
            self.reject(reason, key, "expected one of the documented values")
        members = {member.value: member for member in enum_type}
        if value not in members:
            self.reject(reason, key, "value is not one of the documented values")
        return members[value]

    # -- time -----------------------------------------------------------------------------------

    def timestamp(self, key: str, *, required: bool) -> datetime | None:
        """An RFC 3339 timestamp with an offset, returned in UTC."""
        value = self._raw.get(key)
        if value is None:
            if required:
                self.reject(ReasonCode.MISSING_FIELD, key, "required timestamp is missing")
            return None
        parsed = parse_rfc3339(value)
        if parsed is None:
            self.reject(ReasonCode.INVALID_TIMESTAMP, key, "expected an RFC 3339 timestamp with an offset")
        return parsed

    def calendar_date(self, key: str) -> tuple[date | None, bool]:
        """A "YYYY-MM-DD" date. Returns (date, ok): (None, True) when absent, (None, False) when unusable."""
        value = self._raw.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None, True
        parsed = parse_iso_date(value)
        return parsed, parsed is not None

    def mapping(self, key: str) -> Mapping[str, Any]:
        """A nested JSON object; absent or null reads as empty."""
        value = self._raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.reject(ReasonCode.INVALID_RECORD, key, "expected a JSON object")
        return value

    def list_of_objects(self, key: str) -> list[Mapping[str, Any]]:
        value = self._raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            self.reject(ReasonCode.INVALID_RECORD, key, "expected a list of JSON objects")
        return value


def parse_rfc3339(value: object) -> datetime | None:
    """Parse an RFC 3339 timestamp (offset required) into an aware UTC datetime; None if invalid."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value.strip())
    if not match:
        return None
    day, clock, fraction, offset = match.groups()
    # Python keeps microseconds; nanosecond digits beyond six are truncated, not rounded.
    micro = f".{fraction[:6]}" if fraction else ""
    offset = "+00:00" if offset in {"Z", "z"} else offset
    try:
        return datetime.fromisoformat(f"{day}T{clock}{micro}{offset}").astimezone(UTC)
    except ValueError:  # impossible calendar dates and clock times (2023-02-30, 25:00:00)
        return None


def parse_iso_date(value: object) -> date | None:
    """Parse "YYYY-MM-DD" into a date; None for anything else, including impossible dates."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not _ISO_DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
