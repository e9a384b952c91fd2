"""Wire formats of the Cherry contract: money, timestamps and dates.

Timestamps are kept internally as canonical strings ("2025-01-31T09:15:00Z", whole seconds, UTC). That
format sorts lexicographically in time order, so indexes and filters can compare strings directly.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_MONEY = re.compile(r"^\d{1,9}(\.\d{1,2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def money(value: Decimal) -> str:
    """Decimal -> "1234.50" (USD, 2 decimals, rounded half-up)."""
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def ratio(numerator: Decimal | int, denominator: Decimal | int, places: int = 4) -> str | None:
    """numerator / denominator as a decimal string with `places` decimals, None when the denominator is 0."""
    if not denominator:
        return None
    exponent = Decimal(1).scaleb(-places)
    return str((Decimal(numerator) / Decimal(denominator)).quantize(exponent, rounding=ROUND_HALF_UP))


def parse_money(text: str) -> Decimal | None:
    """A client-supplied amount ("2500", "2500.5", "2500.00") -> Decimal, or None when it is not one."""
    if not isinstance(text, str) or not _MONEY.match(text):
        return None
    return Decimal(text)


def money_or_none(text: str | None) -> Decimal | None:
    """A stored money string -> Decimal; None for null or for a value corrupted on purpose."""
    if text is None:
        return None
    try:
        return Decimal(text)
    except (InvalidOperation, TypeError):
        return None


def stamp(epoch_seconds: int) -> str:
    """Epoch seconds -> canonical RFC 3339 UTC string."""
    return time.strftime(STAMP_FORMAT, time.gmtime(epoch_seconds))


def epoch(stamp_text: str) -> int:
    """Canonical stamp -> epoch seconds (sliced by hand: strptime is ten times slower)."""
    s = stamp_text
    return calendar.timegm((int(s[0:4]), int(s[5:7]), int(s[8:10]), int(s[11:13]), int(s[14:16]), int(s[17:19])))


def epoch_of(moment: datetime) -> int:
    """An aware (or UTC-naive) datetime -> epoch seconds, truncated to the second."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def parse_rfc3339(text: str) -> int | None:
    """A client-supplied RFC 3339 timestamp (offset required) -> epoch seconds rounded UP to the second.

    Rounding up keeps `updated_since` inclusive without returning records older than the given instant.
    Returns None when the text is not RFC 3339.
    """
    if not isinstance(text, str) or "T" not in text.upper() or len(text) > 40:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    whole = int(moment.timestamp() // 1)
    return whole + (1 if moment.microsecond else 0)


def parse_date(text: str) -> date | None:
    """ "YYYY-MM-DD" -> date, None when malformed or impossible."""
    if not isinstance(text, str) or not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
