"""Raw Cherry records for domain tests: valid by default, override any key (MISSING deletes it)."""

from __future__ import annotations

from typing import Any

_MISSING = object()

PATIENT: dict[str, Any] = {
    "id": "pat_0001",
    "first_name": "Jane",
    "last_name": "Doe",
    "date_of_birth": "1988-04-12",
    "phone": "(415) 555-0134",
    "email": "Jane.Doe@Example.COM",
    "location_id": "loc_sf_01",
    "account_status": "ACTIVE",
    "approval_amount": "5000.00",
    "balance_available": "1234.50",
    "balance_status": "PARTIALLY_USED",
    "application_completed_at": "2026-03-01T03:00:00Z",
    "approval_expires_at": "2026-04-01T03:00:00Z",
    "increase_eligible": True,
    "extension_eligible": False,
    "created_at": "2026-02-28T18:00:00Z",
    "updated_at": "2026-03-02T10:00:00Z",
}

PAYMENT: dict[str, Any] = {
    "id": "pay_0001",
    "patient_id": "pat_0001",
    "location_id": "loc_sf_01",
    "invoice_number": "INV-1001",
    "contract_id": "L-ABCDEF123456-2",
    "amount": "2500.00",
    "refund_amount": "0.00",
    "status": "COMPLETED",
    "term_months": 12,
    "apr": "17.99",
    "created_at": "2026-03-05T20:00:00Z",
    "updated_at": "2026-03-05T20:00:00Z",
}

ESTIMATES: dict[str, Any] = {
    "amount": "2500.00",
    "plans": [
        {"term_months": 6, "apr": "0.00", "monthly_payment": "416.67", "total": "2500.00"},
        {"term_months": 12, "apr": "22.99", "monthly_payment": "235.18", "total": "2822.16"},
    ],
}


def _with(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    record = dict(base)
    for key, value in overrides.items():
        if value is _MISSING:
            record.pop(key, None)
        else:
            record[key] = value
    return record


MISSING = _MISSING


def patient(**overrides: Any) -> dict[str, Any]:
    """A raw patient; pass MISSING to drop a key."""
    return _with(PATIENT, overrides)


def payment(**overrides: Any) -> dict[str, Any]:
    return _with(PAYMENT, overrides)


def estimates(**overrides: Any) -> dict[str, Any]:
    return _with(ESTIMATES, overrides)


def event(**overrides: Any) -> dict[str, Any]:
    base = {
        "id": "evt_0001",
        "type": "patient.refreshed",
        "occurred_at": "2026-03-02T10:00:01Z",
        "patient_id": "pat_0001",
        "object_type": "patient",
        "data": patient(),
    }
    return _with(base, overrides)
