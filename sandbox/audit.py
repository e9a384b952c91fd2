"""An outside-in audit: do the CRM contacts' Cherry fields say what Cherry says now?

Reads nothing itself: the caller hands in Cherry's patients and payments (as the Cherry API serves them), the
CRM location's contacts and custom fields (as the CRM serves them), and which contact each patient was synced
to. The expectations are computed here from the written rules (docs/field-mapping.md, section 3), not by the
sync's mapping code, so the audit can catch that code being wrong. Patient and practice estimates (text built
from Cherry's plans) are not audited. The result names patient ids and field keys only, never values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

ACCOUNT_STATUS = "contact.cherry_account_status"
ACCOUNT_BALANCE = "contact.cherry_account_balance"
BALANCE_STATUS = "contact.cherry_balance_status"
APPLICATION_COMPLETED_DATE = "contact.cherry_application_completed_date"
INVOICE_NUMBER = "contact.cherry_invoice_number"
INCREASE_ELIGIBLE = "contact.cherry_increase_eligible"
EXTENSION_ELIGIBLE = "contact.cherry_extension_eligible"
LAST_PAYMENT_DATE = "contact.cherry_last_payment_date"
PAYMENT_STATUS = "contact.cherry_payment_status"
PAYMENT_AMOUNT = "contact.cherry_payment_amount"

AUDITED = (
    ACCOUNT_STATUS,
    ACCOUNT_BALANCE,
    BALANCE_STATUS,
    APPLICATION_COMPLETED_DATE,
    INCREASE_ELIGIBLE,
    EXTENSION_ELIGIBLE,
    LAST_PAYMENT_DATE,
    PAYMENT_STATUS,
    PAYMENT_AMOUNT,
    INVOICE_NUMBER,
)
MONEY = frozenset({ACCOUNT_BALANCE, PAYMENT_AMOUNT})
DATES = frozenset({APPLICATION_COMPLETED_DATE, LAST_PAYMENT_DATE})

_BALANCE = {
    "AVAILABLE": "Available",
    "PARTIALLY_USED": "Partially Used",
    "FULLY_USED": "Fully Used",
    "EXPIRED": "Expired",
}
_PAYMENT = {
    "COMPLETED": "Completed",
    "REFUNDED": "Refunded",
    "PARTIALLY_REFUNDED": "Partially Refunded",
    "CANCELLED": "Cancelled",
}
_CENT = Decimal("0.01")


@dataclass
class AuditResult:
    """Contacts checked, and the (patient id, field key) pairs whose CRM value is not Cherry's."""

    checked: int = 0
    wrong: list[tuple[str, str]] = field(default_factory=list)
    stale: list[tuple[str, str]] = field(default_factory=list)  # of `wrong`: the CRM holds a value Cherry has not

    @property
    def ok(self) -> bool:
        return not self.wrong


def _moment(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _money(value: object) -> Decimal:
    return Decimal(str(value)).quantize(_CENT)


def expected_fields(patient: Mapping[str, Any], payments: Iterable[Mapping[str, Any]], zone: str) -> dict[str, Any]:
    """What a contact's audited Cherry fields must hold for Cherry's record (a key left out: empty)."""
    tz = ZoneInfo(zone)
    out: dict[str, Any] = {
        ACCOUNT_STATUS: "Active" if patient["account_status"] == "ACTIVE" else "Inactive",
        INCREASE_ELIGIBLE: "Yes" if patient["increase_eligible"] else "No",
        EXTENSION_ELIGIBLE: "Yes" if patient["extension_eligible"] else "No",
    }
    if patient.get("balance_available") is not None:
        out[ACCOUNT_BALANCE] = _money(patient["balance_available"])
    if patient.get("balance_status") is not None:
        out[BALANCE_STATUS] = _BALANCE[patient["balance_status"]]
    if patient.get("application_completed_at"):
        out[APPLICATION_COMPLETED_DATE] = _moment(patient["application_completed_at"]).astimezone(tz).date()
    latest = max(payments, key=lambda p: (_moment(p["created_at"]), p["id"]), default=None)
    if latest is not None:
        out[LAST_PAYMENT_DATE] = _moment(latest["created_at"]).astimezone(tz).date()
        out[PAYMENT_STATUS] = _PAYMENT[latest["status"]]
        out[PAYMENT_AMOUNT] = _money(latest["amount"]) - _money(latest.get("refund_amount") or "0")
        if latest.get("invoice_number"):
            out[INVOICE_NUMBER] = latest["invoice_number"]
    return out


def contact_fields(contact: Mapping[str, Any], keys_by_id: Mapping[str, str]) -> dict[str, Any]:
    """A contact's audited Cherry fields as read back, by fieldKey (money as Decimal, dates as date)."""
    out: dict[str, Any] = {}
    for item in contact.get("customFields") or []:
        key = keys_by_id.get(item.get("id"))
        value = item.get("value")
        if key not in AUDITED or value in (None, ""):
            continue
        if key in MONEY:
            value = _money(value)
        elif key in DATES:
            # The CRM reads DATE fields back as epoch milliseconds at UTC midnight.
            value = datetime.fromtimestamp(value / 1000, UTC).date() if isinstance(value, int | float) else value
        out[key] = value
    return out


def audit(
    *,
    patients: Iterable[Mapping[str, Any]],
    payments: Iterable[Mapping[str, Any]],
    contacts: Iterable[Mapping[str, Any]],
    custom_fields: Iterable[Mapping[str, Any]],
    contact_of: Mapping[str, str],
    zone: str,
) -> AuditResult:
    """Compare every synced patient's contact (`contact_of`: patient id -> contact id) with Cherry's record."""
    keys_by_id = {f["id"]: f.get("fieldKey") for f in custom_fields}
    by_patient: dict[str, list[Mapping[str, Any]]] = {}
    for payment in payments:
        by_patient.setdefault(payment["patient_id"], []).append(payment)
    contacts_by_id = {c["id"]: c for c in contacts}
    result = AuditResult()
    for patient in patients:
        contact = contacts_by_id.get(contact_of.get(patient["id"], ""))
        if contact is None:
            continue
        result.checked += 1
        want = expected_fields(patient, by_patient.get(patient["id"], []), zone)
        have = contact_fields(contact, keys_by_id)
        for key in AUDITED:
            if want.get(key) != have.get(key):
                result.wrong.append((patient["id"], key))
                if key not in want:
                    result.stale.append((patient["id"], key))
    return result
