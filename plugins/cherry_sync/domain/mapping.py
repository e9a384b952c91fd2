"""Map a Cherry patient (and its latest payment and estimates) to the contact the CRM should hold.

The value rules are documented in docs/field-mapping.md; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from cherry_sync.domain import custom_fields as cf
from cherry_sync.domain.cherry_records import (
    AccountStatus,
    BalanceStatus,
    CherryPatient,
    CherryPayment,
    Estimates,
    PaymentStatus,
)
from cherry_sync.domain.contract import zone_named
from cherry_sync.domain.desired_contact import DesiredContact, FieldValue
from cherry_sync.domain.errors import InvalidPracticeTimezone
from cherry_sync.domain.estimates import PracticeEstimates, estimate_text

_CENT = Decimal("0.01")

ACCOUNT_STATUS_OPTIONS: dict[AccountStatus, str] = {
    AccountStatus.ACTIVE: "Active",
    # Only an active account can be spent; every other state reads as "Inactive" in the CRM.
    AccountStatus.INACTIVE: "Inactive",
    AccountStatus.EXPIRED: "Inactive",
    AccountStatus.DECLINED: "Inactive",
    AccountStatus.PENDING_REVIEW: "Inactive",
}
BALANCE_STATUS_OPTIONS: dict[BalanceStatus, str] = {
    BalanceStatus.AVAILABLE: "Available",
    BalanceStatus.PARTIALLY_USED: "Partially Used",
    BalanceStatus.FULLY_USED: "Fully Used",
    BalanceStatus.EXPIRED: "Expired",
}
PAYMENT_STATUS_OPTIONS: dict[PaymentStatus, str] = {
    PaymentStatus.COMPLETED: "Completed",
    PaymentStatus.REFUNDED: "Refunded",
    PaymentStatus.PARTIALLY_REFUNDED: "Partially Refunded",
    PaymentStatus.CANCELLED: "Cancelled",
}
ESTIMATE_TERMS = (6, 12)
PATIENT_ESTIMATE_FIELDS = (cf.PATIENT_6_MONTH_ESTIMATE, cf.PATIENT_12_MONTH_ESTIMATE)
PRACTICE_ESTIMATE_FIELDS = (cf.PRACTICE_6_MONTH_ESTIMATE, cf.PRACTICE_12_MONTH_ESTIMATE)


def latest_payment(payments: Iterable[CherryPayment]) -> CherryPayment | None:
    """The latest payment: greatest (created_at, id), so ties on time resolve the same way every run."""
    return max(payments, key=lambda payment: (payment.created_at, payment.id), default=None)


@lru_cache(maxsize=64)
def practice_zone(tz_name: str) -> ZoneInfo:
    """The practice's IANA time zone; raises `InvalidPracticeTimezone` for an unknown name."""
    zone = zone_named(tz_name)
    if zone is None:
        raise InvalidPracticeTimezone(tz_name)
    return zone


def local_date(moment: datetime, tz_name: str) -> date:
    """The calendar date of an aware `moment` in the practice's time zone (what staff would call "that day")."""
    return moment.astimezone(practice_zone(tz_name)).date()


def yes_no(flag: bool) -> str:
    return "Yes" if flag else "No"


def desired_contact(
    patient: CherryPatient,
    *,
    practice_tz: str,
    latest_payment: CherryPayment | None = None,
    practice_estimates: PracticeEstimates | None = None,
    patient_estimates: Estimates | None = None,
    unknown: Iterable[str] = (),
) -> DesiredContact:
    """The contact Cherry wants for `patient`, with every Cherry field either valued or cleared.

    The 14 Cherry fields mirror Cherry: a field Cherry has no value for (no balance, no latest payment,
    no estimates given) is in `cleared`, so the CRM's stale value is emptied. `unknown` names fields
    whose Cherry value could not be learned this time (e.g. a malformed estimates answer): those are
    neither written nor cleared. `latest_payment` must belong to `patient` (see `latest_payment()`).
    Dates are calendar dates in `practice_tz`.
    """
    practice_zone(practice_tz)  # fail on bad configuration even for patients without dates
    fields: dict[str, FieldValue] = {
        cf.ACCOUNT_STATUS: ACCOUNT_STATUS_OPTIONS[patient.account_status],
        cf.INCREASE_ELIGIBLE: yes_no(patient.increase_eligible),
        cf.EXTENSION_ELIGIBLE: yes_no(patient.extension_eligible),
    }
    if patient.balance_available is not None:
        fields[cf.ACCOUNT_BALANCE] = _cents(patient.balance_available)
    if patient.balance_status is not None:
        fields[cf.BALANCE_STATUS] = BALANCE_STATUS_OPTIONS[patient.balance_status]
    if patient.application_completed_at is not None:
        fields[cf.APPLICATION_COMPLETED_DATE] = local_date(patient.application_completed_at, practice_tz)

    if latest_payment is not None:
        if latest_payment.patient_id != patient.id:
            raise ValueError(f"payment {latest_payment.id} does not belong to patient {patient.id}")
        fields.update(_payment_fields(latest_payment, practice_tz))

    if practice_estimates is not None:
        fields.update(_estimate_fields(practice_estimates.estimates, PRACTICE_ESTIMATE_FIELDS))
    if patient_estimates is not None:
        fields.update(_estimate_fields([patient_estimates], PATIENT_ESTIMATE_FIELDS))

    not_known = frozenset(unknown)
    for key in not_known:
        fields.pop(key, None)
    return DesiredContact(
        patient_id=patient.id,
        first_name=patient.first_name,
        last_name=patient.last_name,
        email=patient.email,
        phone=patient.phone,
        date_of_birth=patient.date_of_birth,
        custom_fields=fields,
        cleared=frozenset(cf.FIELDS_BY_KEY) - set(fields) - not_known,
    )


def _estimate_fields(estimates: Iterable[Estimates], keys: tuple[str, str]) -> Mapping[str, FieldValue]:
    found = list(estimates)
    texts = {key: estimate_text(found, term) for term, key in zip(ESTIMATE_TERMS, keys, strict=True)}
    return {key: text for key, text in texts.items() if text is not None}


def payment_amount(payment: CherryPayment) -> Decimal:
    """The "Cherry Payment Amount" value: the amount still financed, `amount − refund_amount`.

    So a partial refund of $500 on $2,500 shows $2,000.00, a full refund $0.00, and a cancelled payment
    (nothing refunded) its original amount; the Payment Status field says which case it is.
    """
    return _cents(payment.net_amount)


def _payment_fields(payment: CherryPayment, practice_tz: str) -> dict[str, FieldValue]:
    fields: dict[str, FieldValue] = {
        cf.LAST_PAYMENT_DATE: local_date(payment.created_at, practice_tz),
        cf.PAYMENT_STATUS: PAYMENT_STATUS_OPTIONS[payment.status],
        cf.PAYMENT_AMOUNT: payment_amount(payment),
    }
    if payment.invoice_number:
        fields[cf.INVOICE_NUMBER] = payment.invoice_number
    return fields


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)
