"""Normalise the ways a person can be reached or named: phone, email, name.

Each function returns the canonical value or None when the input is unusable. They never raise on bad
input (bad input is patient data and must not end up in an exception message).
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

# Longer inputs are not phone numbers; also keeps phonenumbers' own parser off pathological strings.
_MAX_PHONE_INPUT = 40
# Only what people type into a phone box: digits, separators, a leading +, and an optional extension.
# Vanity numbers ("1-800-FLOWERS") and prose ("call me 415...") are refused rather than guessed at.
_PHONE_SHAPE = re.compile(
    r"^\+?[\d\s().\-/]+(?:\s*(?:x|ext\.?|extension)\s*\d{1,6})?$",
    re.IGNORECASE,
)
# RFC 5321 caps a forward path at 256 octets including the angle brackets, so 254 for the address.
_MAX_EMAIL_INPUT = 254
_WHITESPACE = re.compile(r"\s+")
# Control and format characters (tabs aside) arrive via copy-paste and break CRM display and matching.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf"})


def normalise_phone(raw: object, region: str = "US") -> str | None:
    """Return `raw` as an E.164 string ("+14155550134"), or None if it is not a valid phone number.

    Uses `phonenumbers.is_valid_number` (number plan aware), not `is_possible_number` (length only):
    "(000) 555-0134" or "555-0134" are possible but not valid and would create unreachable contacts.
    The fictional 555-01xx range used in the sandbox is valid in phonenumbers' US metadata.
    Numbers without a country code are read in `region`. Extensions are dropped: E.164 has none.
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not text or len(text) > _MAX_PHONE_INPUT or not _PHONE_SHAPE.match(text):
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: object) -> str | None:
    """Return a trimmed, syntactically valid email with a lower-case domain, or None.

    No DNS lookups (`check_deliverability=False`): the sync must be deterministic and offline-testable.
    Special-use domains (.test, .local, .invalid, localhost) are refused by email-validator because
    they can never receive mail. The local part keeps its case (RFC 5321); use `email_match_key`
    to compare addresses.
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not text or len(text) > _MAX_EMAIL_INPUT:
        return None
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def email_match_key(email: str | None) -> str | None:
    """Case-insensitive comparison key for an email that is already normalised (or read from the CRM)."""
    if not email:
        return None
    key = email.strip().casefold()
    return key or None


def clean_name(raw: object) -> str | None:
    """Trim a name, drop control characters and collapse internal whitespace; None when nothing is left.

    Text is NFC-normalised so that "é" typed two ways compares equal. Case is kept as Cherry sent it.
    """
    if not isinstance(raw, str):
        return None
    kept: list[str] = []
    for ch in unicodedata.normalize("NFC", raw):
        if ch.isspace():
            kept.append(" ")
        elif unicodedata.category(ch) not in _INVISIBLE_CATEGORIES:
            kept.append(ch)
    text = _WHITESPACE.sub(" ", "".join(kept)).strip()
    return text or None


def name_match_key(name: str | None) -> str | None:
    """Loose comparison key for the name+DOB matching step: case, accents and punctuation are ignored.

    "O'Brien", "OBrien" and "o brien" all differ in the CRM, but only the first two share a key: spaces
    separate name parts, punctuation does not.
    """
    cleaned = clean_name(name)
    if cleaned is None:
        return None
    decomposed = unicodedata.normalize("NFKD", cleaned.casefold())
    kept = "".join(ch for ch in decomposed if ch.isalnum() or ch == " ")
    key = _WHITESPACE.sub(" ", kept).strip()
    return key or None
