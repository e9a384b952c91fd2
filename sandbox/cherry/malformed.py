"""Deliberately malformed records, the kinds of bad data a real feed carries.

A corruption is a set of field overrides laid over a stored version; the stored (true) values stay
underneath so a repair can restore them. What each kind does:

missing_id         the "id" key is absent
bad_email          an e-mail that is not an address ("name@@example" style)
bad_phone          a phone with letters / too few digits
non_numeric_money  money fields like "$1,234.50" or "N/A"
impossible_date    a calendar date that does not exist ("2023-02-30")
unknown_status     a status outside the documented enum
oversize_text      a 10,000-character text field
"""

from __future__ import annotations

import random
from enum import StrEnum
from typing import Any

from sandbox.cherry.lifecycle import EVENT_FOR_STATUS
from sandbox.cherry.models import REMOVED, PatientVersion, PaymentVersion

OVERSIZE_LENGTH = 10_000


class MalformedKind(StrEnum):
    """Kinds of corruption the admin API and `malformed_share` can apply."""

    MISSING_ID = "missing_id"
    BAD_EMAIL = "bad_email"
    BAD_PHONE = "bad_phone"
    NON_NUMERIC_MONEY = "non_numeric_money"
    IMPOSSIBLE_DATE = "impossible_date"
    UNKNOWN_STATUS = "unknown_status"
    OVERSIZE_TEXT = "oversize_text"


PAYMENT_KINDS = frozenset(
    {
        MalformedKind.MISSING_ID,
        MalformedKind.NON_NUMERIC_MONEY,
        MalformedKind.IMPOSSIBLE_DATE,
        MalformedKind.UNKNOWN_STATUS,
        MalformedKind.OVERSIZE_TEXT,
    }
)


def _oversize(seed_text: str) -> str:
    unit = (seed_text or "X") + "-"
    return (unit * (OVERSIZE_LENGTH // len(unit) + 1))[:OVERSIZE_LENGTH]


def patient_overrides(kind: MalformedKind, version: PatientVersion, rng: random.Random) -> dict[str, Any]:
    """Field overrides that make `version` malformed in the given way."""
    if kind is MalformedKind.MISSING_ID:
        return {"id": REMOVED}
    if kind is MalformedKind.BAD_EMAIL:
        local = version.first_name.lower() or "patient"
        return {"email": rng.choice((f"{local}@@example.com", f"{local} at example dot com", f"{local}@", "n/a"))}
    if kind is MalformedKind.BAD_PHONE:
        return {"phone": rng.choice(("555-CALL-NOW", "12345", "+1 (415) 555-01", "call me", "000"))}
    if kind is MalformedKind.NON_NUMERIC_MONEY:
        approval = version.approval_amount or "0.00"
        return {"approval_amount": f"${float(approval):,.2f}", "balance_available": "N/A"}
    if kind is MalformedKind.IMPOSSIBLE_DATE:
        year = (version.date_of_birth or "1990")[:4]
        return {"date_of_birth": f"{year}-02-30"}
    if kind is MalformedKind.UNKNOWN_STATUS:
        return {"account_status": "ON_HOLD_LEGACY"}
    if kind is MalformedKind.OVERSIZE_TEXT:
        return {"last_name": _oversize(version.last_name)}
    raise ValueError(f"unknown malformed kind {kind!r}")


def payment_overrides(kind: MalformedKind, version: PaymentVersion, rng: random.Random) -> dict[str, Any]:
    """Field overrides that make a payment malformed; only the kinds in PAYMENT_KINDS apply."""
    if kind is MalformedKind.MISSING_ID:
        return {"id": REMOVED}
    if kind is MalformedKind.NON_NUMERIC_MONEY:
        return {"amount": f"${float(version.amount):,.2f}", "refund_amount": "none"}
    if kind is MalformedKind.IMPOSSIBLE_DATE:
        return {"created_at": f"{version.created_at[:4]}-02-30T10:00:00Z"}
    if kind is MalformedKind.UNKNOWN_STATUS:
        return {"status": rng.choice(("SETTLED", "VOIDED_LEGACY"))}
    if kind is MalformedKind.OVERSIZE_TEXT:
        return {"invoice_number": _oversize(version.invoice_number)}
    raise ValueError(f"malformed kind {kind.value!r} does not apply to payments")


def corrupt_record(book, object_type: str, record_id: str, kind: MalformedKind, now: str, rng: random.Random):
    """Make a stored record malformed as a new version (updated_at = now), announced in the event feed.

    Returns the malformed version. Raises KeyError for an unknown record, ValueError for a kind that does
    not apply to payments.
    """
    if object_type == "patient":
        life = book.lives[record_id]
        version = life.version.evolve(updated_at=now, overrides=patient_overrides(kind, life.version, rng))
        book.write_patient(version)
        book.emit("patient.refreshed", version, now)
    else:
        current = book.payments.records[record_id]
        version = current.evolve(updated_at=now, overrides=payment_overrides(kind, current, rng))
        book.write_payment(version)
        book.emit(EVENT_FOR_STATUS[version.status], version, now)
    book.malformed[record_id] = (object_type, kind.value)
    return version


def repair_record(book, object_type: str, record_id: str, now: str):
    """Drop a record's corruption: a clean new version (updated_at = now) and a fresh event announcing it."""
    if object_type == "patient":
        # The true values were kept under the overrides: restore them as they were, only newer.
        version = book.lives[record_id].version.evolve(updated_at=now, overrides=None)
        book.write_patient(version)
        book.emit("patient.refreshed", version, now)
    else:
        current = book.payments.records[record_id]
        version = current.evolve(updated_at=now, overrides=None)
        book.write_payment(version)
        book.emit(EVENT_FOR_STATUS[version.status], version, now)
    book.malformed.pop(record_id, None)
    return version
