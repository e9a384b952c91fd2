"""Cherry → CRM value mapping, including practice-time-zone dates and the latest payment."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from cherry_sync.domain import custom_fields as cf
from cherry_sync.domain.cherry_records import parse_estimates, parse_patient, parse_payment
from cherry_sync.domain.contact_points import normalise_phone
from cherry_sync.domain.contract import parse_rfc3339
from cherry_sync.domain.errors import InvalidPracticeTimezone
from cherry_sync.domain.estimates import PracticeEstimates
from cherry_sync.domain.mapping import desired_contact, latest_payment, local_date
from tests.domain import samples

LA = "America/Los_Angeles"


def _desired(patient_overrides: dict[str, Any] | None = None, **kwargs: Any):
    patient = parse_patient(samples.patient(**(patient_overrides or {})))
    return desired_contact(patient, practice_tz=kwargs.pop("practice_tz", LA), **kwargs)


def test_standard_fields() -> None:
    desired = _desired()
    assert desired.standard_fields() == {
        "firstName": "Jane",
        "lastName": "Doe",
        "email": "Jane.Doe@example.com",
        "phone": "+14155550134",
        "dateOfBirth": "1988-04-12",
    }


def test_patient_custom_fields() -> None:
    assert _desired().custom_fields == {
        cf.ACCOUNT_STATUS: "Active",
        cf.ACCOUNT_BALANCE: Decimal("1234.50"),
        cf.BALANCE_STATUS: "Partially Used",
        cf.APPLICATION_COMPLETED_DATE: date(2026, 2, 28),  # 03:00Z is still the 28th in Los Angeles
        cf.INCREASE_ELIGIBLE: "Yes",
        cf.EXTENSION_ELIGIBLE: "No",
    }


@pytest.mark.parametrize(
    ("status", "option"),
    [
        ("ACTIVE", "Active"),
        ("INACTIVE", "Inactive"),
        ("EXPIRED", "Inactive"),
        ("DECLINED", "Inactive"),
        ("PENDING_REVIEW", "Inactive"),
    ],
)
def test_account_status_options(status: str, option: str) -> None:
    assert _desired({"account_status": status}).custom_fields[cf.ACCOUNT_STATUS] == option


@pytest.mark.parametrize(
    ("status", "option"),
    [
        ("AVAILABLE", "Available"),
        ("PARTIALLY_USED", "Partially Used"),
        ("FULLY_USED", "Fully Used"),
        ("EXPIRED", "Expired"),
    ],
)
def test_balance_status_options(status: str, option: str) -> None:
    assert _desired({"balance_status": status}).custom_fields[cf.BALANCE_STATUS] == option


def test_nulls_leave_fields_out() -> None:
    nulls = {"balance_status": None, "balance_available": None, "application_completed_at": None}
    fields = _desired(nulls).custom_fields
    assert cf.BALANCE_STATUS not in fields
    assert cf.ACCOUNT_BALANCE not in fields
    assert cf.APPLICATION_COMPLETED_DATE not in fields


def test_balance_is_kept_as_decimal_cents() -> None:
    assert _desired({"balance_available": "100"}).custom_fields[cf.ACCOUNT_BALANCE] == Decimal("100.00")
    assert str(_desired({"balance_available": "100"}).custom_fields[cf.ACCOUNT_BALANCE]) == "100.00"


@pytest.mark.parametrize(
    ("timestamp", "tz", "expected"),
    [
        pytest.param("2026-03-01T03:00:00Z", LA, date(2026, 2, 28), id="la-previous-day"),
        pytest.param("2026-03-01T08:00:00Z", LA, date(2026, 3, 1), id="la-midnight-pst"),
        pytest.param("2026-03-01T07:59:59Z", LA, date(2026, 2, 28), id="la-one-second-before-midnight"),
        pytest.param("2026-03-08T07:59:59Z", LA, date(2026, 3, 7), id="la-before-spring-forward"),
        pytest.param("2026-03-08T10:30:00Z", LA, date(2026, 3, 8), id="la-after-spring-forward"),
        pytest.param("2026-03-09T06:59:59Z", LA, date(2026, 3, 8), id="la-pdt-day-end"),
        pytest.param("2026-03-09T07:00:00Z", LA, date(2026, 3, 9), id="la-pdt-midnight"),
        pytest.param("2026-11-01T08:30:00Z", LA, date(2026, 11, 1), id="la-fall-back-repeated-hour"),
        pytest.param("2026-11-02T07:59:59Z", LA, date(2026, 11, 1), id="la-pst-again"),
        pytest.param("2026-03-01T03:00:00Z", "UTC", date(2026, 3, 1), id="utc"),
        pytest.param("2026-03-01T13:00:00Z", "Pacific/Auckland", date(2026, 3, 2), id="auckland-next-day"),
        pytest.param("2026-12-31T23:30:00Z", "America/New_York", date(2026, 12, 31), id="new-year-eve-ny"),
        pytest.param("2026-12-31T23:30:00Z", "Europe/Berlin", date(2027, 1, 1), id="new-year-berlin"),
        pytest.param("2026-03-01T03:00:00-08:00", LA, date(2026, 3, 1), id="offset-input"),
    ],
)
def test_local_date(timestamp: str, tz: str, expected: date) -> None:
    moment = parse_rfc3339(timestamp)
    assert moment is not None
    assert local_date(moment, tz) == expected


def test_unknown_timezone_is_a_configuration_error() -> None:
    with pytest.raises(InvalidPracticeTimezone):
        _desired(practice_tz="Mars/Olympus_Mons")


def test_payment_fields() -> None:
    payment = parse_payment(samples.payment(created_at="2026-03-06T05:00:00Z"))  # 9 pm on the 5th in LA
    fields = _desired(latest_payment=payment).custom_fields
    assert fields[cf.INVOICE_NUMBER] == "INV-1001"
    assert fields[cf.LAST_PAYMENT_DATE] == date(2026, 3, 5)
    assert fields[cf.PAYMENT_STATUS] == "Completed"
    assert fields[cf.PAYMENT_AMOUNT] == Decimal("2500.00")


@pytest.mark.parametrize(
    ("status", "refund", "option", "amount"),
    [
        ("COMPLETED", "0.00", "Completed", "2500.00"),
        ("PARTIALLY_REFUNDED", "500.00", "Partially Refunded", "2000.00"),
        ("REFUNDED", "2500.00", "Refunded", "0.00"),
        ("CANCELLED", "0.00", "Cancelled", "2500.00"),
    ],
)
def test_payment_status_and_net_amount(status: str, refund: str, option: str, amount: str) -> None:
    payment = parse_payment(samples.payment(status=status, refund_amount=refund))
    fields = _desired(latest_payment=payment).custom_fields
    assert fields[cf.PAYMENT_STATUS] == option
    assert fields[cf.PAYMENT_AMOUNT] == Decimal(amount)


def test_payment_without_invoice_number_leaves_invoice_field_out() -> None:
    payment = parse_payment(samples.payment(invoice_number=None))
    assert cf.INVOICE_NUMBER not in _desired(latest_payment=payment).custom_fields


def test_payment_of_another_patient_is_refused() -> None:
    payment = parse_payment(samples.payment(patient_id="pat_other"))
    with pytest.raises(ValueError, match="does not belong"):
        _desired(latest_payment=payment)


def test_latest_payment_is_greatest_created_at_then_id() -> None:
    early = parse_payment(samples.payment(id="pay_z", created_at="2026-03-01T00:00:00Z"))
    tie_a = parse_payment(samples.payment(id="pay_a", created_at="2026-03-02T00:00:00Z"))
    tie_b = parse_payment(samples.payment(id="pay_b", created_at="2026-03-01T16:00:00-08:00"))  # same instant
    assert latest_payment([early, tie_b, tie_a]) is tie_b
    assert latest_payment([tie_a, early, tie_b]) is tie_b
    assert latest_payment([]) is None


def test_estimate_fields_only_when_given() -> None:
    practice = PracticeEstimates(
        (
            parse_estimates(samples.estimates()),
            parse_estimates(
                {
                    "amount": "1000.00",
                    "plans": [
                        {"term_months": 6, "apr": "0.00", "monthly_payment": "166.67", "total": "1000.00"},
                        {"term_months": 12, "apr": "17.99", "monthly_payment": "91.68", "total": "1100.16"},
                    ],
                }
            ),
        )
    )
    own = parse_estimates(
        {
            "amount": "1234.50",
            "plans": [
                {"term_months": 6, "apr": "0.00", "monthly_payment": "205.75", "total": "1234.50"},
            ],
        }
    )
    fields = _desired(practice_estimates=practice, patient_estimates=own).custom_fields
    assert fields[cf.PRACTICE_6_MONTH_ESTIMATE] == (
        "$1,000.00: $166.67/mo for 6 months at 0.00% APR (total $1,000.00)\n"
        "$2,500.00: $416.67/mo for 6 months at 0.00% APR (total $2,500.00)"
    )
    assert fields[cf.PRACTICE_12_MONTH_ESTIMATE] == (
        "$1,000.00: $91.68/mo for 12 months at 17.99% APR (total $1,100.16)\n"
        "$2,500.00: $235.18/mo for 12 months at 22.99% APR (total $2,822.16)"
    )
    assert fields[cf.PATIENT_6_MONTH_ESTIMATE] == "$1,234.50: $205.75/mo for 6 months at 0.00% APR (total $1,234.50)"
    assert cf.PATIENT_12_MONTH_ESTIMATE not in fields  # no 12-month plan for the patient's amount
    plain = _desired().custom_fields
    assert not {cf.PRACTICE_6_MONTH_ESTIMATE, cf.PATIENT_6_MONTH_ESTIMATE} & set(plain)


def test_desired_contact_round_trips_through_json_dict() -> None:
    payment = parse_payment(samples.payment())
    desired = _desired(latest_payment=payment)
    from cherry_sync.domain.desired_contact import DesiredContact

    assert DesiredContact.from_dict(desired.to_dict()) == desired
    assert desired.to_dict()["custom_fields"][cf.ACCOUNT_BALANCE] == "1234.50"


def test_desired_contact_repr_has_no_values() -> None:
    text = repr(_desired())
    assert "Jane" not in text and "555" not in text and "1234" not in text and "1988" not in text


def test_normalise_phone_is_what_mapping_uses() -> None:
    assert _desired().phone == normalise_phone("(415) 555-0134")
