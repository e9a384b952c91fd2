"""Conversions between domain values and the JSON values the CRM (HighLevel) writes and reads.

Writes: text and options as strings, money as a JSON number, dates as "YYYY-MM-DD".
Reads come back in looser shapes (numbers as strings, dates as ISO timestamps or epoch milliseconds), so
comparisons are by meaning: numbers by value, dates by calendar date, text by content.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from cherry_sync.domain.desired_contact import FieldValue

CENT = Decimal("0.01")
# What empties a contact's custom field on write, for every data type: HighLevel takes an empty string as
# "no value" (null is refused by the CRM sandbox, as an unclear form; docs/field-mapping.md).
CLEARED_FIELD_VALUE = ""
_ISO_DATE_PREFIX = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:$|[Tt ])")
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_SLASHED_ISO_DATE = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$")
_EPOCH_MS = re.compile(r"^-?\d{11,14}$")
_NUMBER_NOISE = re.compile(r"[\s$,]")


def money_to_json(amount: Decimal) -> float:
    """A money `Decimal` as the JSON number the CRM expects for MONETORY fields.

    Quantised to cents first; `json` then prints the float's shortest round-trip form, which for any
    cent amount below 2**53 cents is exactly the decimal value (Decimal("1234.50") → 1234.5).
    """
    return float(amount.quantize(CENT, rounding=ROUND_HALF_UP))


def to_field_value(value: FieldValue) -> str | float:
    """The `field_value` to send for a custom field."""
    if isinstance(value, Decimal):
        return money_to_json(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def parse_crm_date(value: object) -> date | None:
    """A date read from the CRM: "YYYY-MM-DD", an ISO timestamp, "MM/DD/YYYY", "YYYY/MM/DD" or epoch ms.

    Epoch milliseconds are read as a UTC calendar date. Anything else (including impossible dates) → None.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch_ms(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _EPOCH_MS.match(text):
        return _from_epoch_ms(int(text))
    for pattern, order in ((_ISO_DATE_PREFIX, (0, 1, 2)), (_US_DATE, (2, 0, 1)), (_SLASHED_ISO_DATE, (0, 1, 2))):
        match = pattern.match(text)
        if match:
            parts = match.groups()
            try:
                return date(int(parts[order[0]]), int(parts[order[1]]), int(parts[order[2]]))
            except ValueError:
                return None
    return None


def parse_crm_number(value: object) -> Decimal | None:
    """A number read from the CRM (number, or text such as "1234.5" or "$1,234.50"); None if not numeric."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        text = repr(value) if isinstance(value, float) else str(value)
    elif isinstance(value, str):
        text = _NUMBER_NOISE.sub("", value)
    else:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def is_empty_value(current: object) -> bool:
    """True when a custom-field value read from the CRM holds nothing (absent, blank text, empty list)."""
    if current is None:
        return True
    if isinstance(current, str):
        return not current.strip()
    if isinstance(current, list | tuple | dict):
        return len(current) == 0
    return False


def same_value(desired: FieldValue, current: object) -> bool:
    """True when the CRM's `current` value already means `desired` (so no write is needed)."""
    if current is None:
        return False
    if isinstance(desired, Decimal):
        number = parse_crm_number(current)
        return number is not None and number == desired
    if isinstance(desired, date):
        return parse_crm_date(current) == desired
    if isinstance(current, list) and len(current) == 1:
        # Option fields are sometimes read back as a one-element list.
        current = current[0]
    if not isinstance(current, str):
        return False
    return _canonical_text(current) == _canonical_text(desired)


def _canonical_text(text: str) -> str:
    # The CRM may store line breaks as CRLF and trim trailing blanks; neither is a real change.
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).strip()


def _from_epoch_ms(value: int | float) -> date | None:
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC).date()
    except (OverflowError, OSError, ValueError):
        return None
