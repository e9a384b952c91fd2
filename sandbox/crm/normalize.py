"""How the CRM canonicalises what clients send: phones, emails, dates, tags, names.

Phones are stored as E.164. A number without a leading `+` is read as a US national number (the
sandbox locations are US practices), which is also what happens to a `+` sent unencoded in a query
string: it arrives as a space, so `+447911123456` becomes `447911123456` and is read as US.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, date, datetime

from sandbox.crm.errors import unprocessable

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NON_DIGITS = re.compile(r"\D")
_DOB_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d", "%m-%d-%Y")


def phone_e164(raw: str) -> str | None:
    """E.164 form of `raw`, or None when it cannot be a phone number."""
    text = raw.strip()
    digits = _NON_DIGITS.sub("", text)
    if text.startswith("+"):
        e164 = "+" + digits
    elif len(digits) == 10:
        e164 = "+1" + digits
    elif len(digits) == 11 and digits.startswith("1"):
        e164 = "+" + digits
    else:
        e164 = "+1" + digits
    return e164 if 8 <= len(e164) - 1 <= 15 else None


def phone_or_422(raw: str) -> str:
    e164 = phone_e164(raw)
    if e164 is None:
        raise unprocessable("phone must be a valid phone number")
    return e164


def email_key(raw: str) -> str:
    """Emails match case-insensitively."""
    return raw.strip().lower()


def email_or_422(raw: str, field: str = "email") -> str:
    value = raw.strip()
    if not _EMAIL.match(value):
        raise unprocessable(f"{field} must be an email")
    return value


def date_of_birth(raw: object) -> str | None:
    """Accepted dateOfBirth inputs -> 'YYYY-MM-DD' (the form GET returns); None clears it."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return datetime.fromtimestamp(raw / 1000, UTC).date().isoformat()
    if isinstance(raw, str):
        text = raw.strip()
        if "T" in text:
            try:
                return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
            except ValueError:
                pass
        for fmt in _DOB_FORMATS:
            try:
                return datetime.strptime(text, fmt).date().isoformat()
            except ValueError:
                continue
    raise unprocessable("dateOfBirth must be a valid date (YYYY-MM-DD, MM/DD/YYYY or YYYY/MM/DD)")


def date_to_epoch_ms(raw: object) -> int | None:
    """A DATE custom-field value (YYYY-MM-DD or epoch ms) as epoch ms at UTC midnight; None if invalid."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return int(raw)
    if isinstance(raw, str):
        try:
            day = date.fromisoformat(raw.strip())
        except ValueError:
            return None
        return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    return None


def tags(values: list[str]) -> list[str]:
    """HighLevel stores tags trimmed and lower-cased, without repeats, in the order given."""
    seen: dict[str, None] = {}
    for value in values:
        tag = value.strip().lower()
        if tag:
            seen.setdefault(sys.intern(tag), None)  # a few distinct tags on very many contacts
    return list(seen)


def snake(name: str) -> str:
    """'Cherry Account Status' -> 'cherry_account_status' (how field keys are derived from names)."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def iso_ms(epoch_ms: int) -> str:
    """Epoch ms -> '2021-07-02T05:18:26.704Z', the API's timestamp format."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
