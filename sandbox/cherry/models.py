"""The sandbox's stored objects.

Patients and payments are stored as immutable *versions*: a change makes a new version, and an event keeps
a reference to the version it announced, so `data` in the feed is the object as it was at that moment
without copying it. Fields are already in wire form (strings for money and timestamps); fields that
`to_json` leaves out (practice_id, period, settled_at, overrides) never leave the server.

Versions are treated as immutable but are not `frozen` dataclasses: a frozen dataclass is twice as slow to
copy, and seeding 100,000 patients makes a few hundred thousand copies. Change one only through `evolve`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

REMOVED = object()
"""Override value meaning "drop this key from the JSON" (a malformed record with no id)."""


def _apply(body: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    if overrides:
        for key, value in overrides.items():
            if value is REMOVED:
                body.pop(key, None)
            else:
                body[key] = value
    return body


@dataclass(frozen=True, slots=True)
class Location:
    """A practice location (a Cherry "merchant")."""

    id: str
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True, slots=True)
class PlanOption:
    """One entry of a practice's plan menu: a term and the APR (percent) the practice offers for it."""

    term_months: int
    apr: Decimal


@dataclass(slots=True)
class Practice:
    """A Cherry practice (organization) with its locations, plan menu and approval validity."""

    id: str
    name: str
    timezone: str
    locations: list[Location]
    plans: list[PlanOption]
    approval_days: int
    area_codes: tuple[str, ...]
    index: int
    plan_cum_weights: tuple[int, ...] = ()  # how often patients pick each plan (cumulative)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "timezone": self.timezone,
            "locations": [loc.to_json() for loc in self.locations],
        }


def _evolve(obj: Any, names: tuple[str, ...], changes: dict[str, Any]) -> Any:
    return type(obj)(**{n: changes[n] if n in changes else getattr(obj, n) for n in names})


@dataclass(slots=True, eq=False)
class PatientVersion:
    """A patient as it was from `updated_at` until the next version."""

    id: str
    practice_id: str
    first_name: str
    last_name: str
    date_of_birth: str | None
    phone: str | None
    email: str | None
    location_id: str
    account_status: str
    approval_amount: str | None
    balance_available: str | None
    balance_status: str | None
    application_completed_at: str | None
    approval_expires_at: str | None
    increase_eligible: bool
    extension_eligible: bool
    created_at: str
    updated_at: str
    overrides: dict[str, Any] | None = None

    def evolve(self, **changes: Any) -> PatientVersion:
        return _evolve(self, _PATIENT_FIELDS, changes)

    def effective(self, name: str) -> Any:
        """The value as served (a corrupted field reads as its corrupted value)."""
        if self.overrides and name in self.overrides:
            value = self.overrides[name]
            return None if value is REMOVED else value
        return getattr(self, name)

    def to_json(self) -> dict[str, Any]:
        return _apply(
            {
                "id": self.id,
                "first_name": self.first_name,
                "last_name": self.last_name,
                "date_of_birth": self.date_of_birth,
                "phone": self.phone,
                "email": self.email,
                "location_id": self.location_id,
                "account_status": self.account_status,
                "approval_amount": self.approval_amount,
                "balance_available": self.balance_available,
                "balance_status": self.balance_status,
                "application_completed_at": self.application_completed_at,
                "approval_expires_at": self.approval_expires_at,
                "increase_eligible": self.increase_eligible,
                "extension_eligible": self.extension_eligible,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
            },
            self.overrides,
        )


@dataclass(slots=True, eq=False)
class PaymentVersion:
    """A payment (a financed checkout / contract) as it was from `updated_at` on.

    `period` numbers the patient's approval the payment drew on, so a refund restores balance only when
    that approval is still the current one.
    """

    id: str
    practice_id: str
    patient_id: str
    location_id: str
    invoice_number: str
    contract_id: str
    amount: str
    refund_amount: str
    status: str
    term_months: int
    apr: str
    created_at: str
    updated_at: str
    period: int = 0
    settled_at: str | None = None  # when it was refunded or cancelled (updated_at moves on a repair)
    overrides: dict[str, Any] | None = None

    def evolve(self, **changes: Any) -> PaymentVersion:
        return _evolve(self, _PAYMENT_FIELDS, changes)

    def effective(self, name: str) -> Any:
        if self.overrides and name in self.overrides:
            value = self.overrides[name]
            return None if value is REMOVED else value
        return getattr(self, name)

    def to_json(self) -> dict[str, Any]:
        return _apply(
            {
                "id": self.id,
                "patient_id": self.patient_id,
                "location_id": self.location_id,
                "invoice_number": self.invoice_number,
                "contract_id": self.contract_id,
                "amount": self.amount,
                "refund_amount": self.refund_amount,
                "status": self.status,
                "term_months": self.term_months,
                "apr": self.apr,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
            },
            self.overrides,
        )


_PATIENT_FIELDS = tuple(f.name for f in fields(PatientVersion))
_PAYMENT_FIELDS = tuple(f.name for f in fields(PaymentVersion))


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the event feed. `ref` is the object version announced (None for test.ping)."""

    id: str
    type: str
    occurred_at: str
    patient_id: str | None
    ref: PatientVersion | PaymentVersion | None

    @property
    def object_type(self) -> str | None:
        if self.ref is None:
            return None
        return "patient" if isinstance(self.ref, PatientVersion) else "payment"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "occurred_at": self.occurred_at,
            "patient_id": self.patient_id,
            "object_type": self.object_type,
            "data": self.ref.to_json() if self.ref is not None else {},
        }


@dataclass(slots=True)
class Application:
    """A patient application behind the metrics report (never served on /v1, only via the admin dump)."""

    id: str
    patient_id: str | None
    started_at: str
    completed_at: str | None = None
    decision: str | None = None  # APPROVED | DECLINED | None (abandoned or in manual review)
    decided_at: str | None = None
    approved_amount: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "patient_id": self.patient_id,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "decision": self.decision,
            "decided_at": self.decided_at,
            "approved_amount": self.approved_amount,
        }


@dataclass(slots=True)
class ApiKey:
    """A practice API key; it works only once activated (the portal's Copy & Activate step)."""

    key: str
    practice_id: str
    activated: bool = True
    name: str = "default"
    revoked: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "api_key": self.key,
            "practice_id": self.practice_id,
            "activated": self.activated,
            "revoked": self.revoked,
            "name": self.name,
        }


class IdMaker:
    """Seeded ids such as "pat_3f9c0a1b2c3d4e5f": deterministic for a seed and a sequence of calls."""

    def __init__(self, rng) -> None:
        self._rng = rng

    def __call__(self, prefix: str, bits: int = 64) -> str:
        return prefix + "_" + format(self._rng.getrandbits(bits), f"0{bits // 4}x")
