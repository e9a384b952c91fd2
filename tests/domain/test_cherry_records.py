"""Parsing Cherry records: valid shapes, every rejection reason, and the degrade-with-warning cases."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from cherry_sync.domain.cherry_records import (
    AccountStatus,
    BalanceStatus,
    EventType,
    ObjectType,
    PaymentStatus,
    parse_estimates,
    parse_event,
    parse_event_subject,
    parse_patient,
    parse_payment,
)
from cherry_sync.domain.errors import Entity, RecordRejected
from cherry_sync.reasons import ReasonCode
from tests.domain import samples
from tests.domain.samples import MISSING


def test_valid_patient_is_typed_and_normalised() -> None:
    parsed = parse_patient(samples.patient(first_name="  Mary \t Ann  ", unknown_future_key={"x": 1}))
    assert parsed.id == "pat_0001"
    assert parsed.first_name == "Mary Ann"
    assert parsed.phone == "+14155550134"
    assert parsed.email == "Jane.Doe@example.com"
    assert parsed.date_of_birth == date(1988, 4, 12)
    assert parsed.account_status is AccountStatus.ACTIVE
    assert parsed.balance_status is BalanceStatus.PARTIALLY_USED
    assert parsed.balance_available == Decimal("1234.50")
    assert parsed.application_completed_at == datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    assert parsed.warnings == ()


def test_patient_nulls_are_allowed_where_the_contract_allows_them() -> None:
    parsed = parse_patient(
        samples.patient(
            date_of_birth=None,
            email=None,
            approval_amount=None,
            balance_available=None,
            balance_status=None,
            application_completed_at=None,
            approval_expires_at=None,
        )
    )
    assert parsed.email is None and parsed.balance_available is None and parsed.balance_status is None
    assert parsed.warnings == ()


def test_timestamps_with_offsets_and_nanoseconds_are_read_as_utc() -> None:
    parsed = parse_patient(samples.patient(updated_at="2026-03-02T02:00:00.123456789-08:00"))
    assert parsed.updated_at == datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)


def test_money_accepts_json_numbers_exactly() -> None:
    assert parse_patient(samples.patient(balance_available=1234.5)).balance_available == Decimal("1234.5")
    assert parse_patient(samples.patient(balance_available=100)).balance_available == Decimal("100")


# (id, raw overrides, expected reason, expected field)
PATIENT_REJECTIONS: list[Any] = [
    pytest.param({"id": MISSING}, ReasonCode.MISSING_ID, "id", id="missing-id"),
    pytest.param({"id": "   "}, ReasonCode.MISSING_ID, "id", id="blank-id"),
    pytest.param({"id": 12345}, ReasonCode.INVALID_ID, "id", id="numeric-id"),
    pytest.param({"id": "Jane Doe 1988"}, ReasonCode.INVALID_ID, "id", id="id-with-spaces"),
    pytest.param({"location_id": MISSING}, ReasonCode.MISSING_FIELD, "location_id", id="missing-location"),
    pytest.param({"first_name": 42}, ReasonCode.INVALID_RECORD, "first_name", id="name-wrong-type"),
    pytest.param({"first_name": "A" * 10_000}, ReasonCode.OVERSIZE_TEXT, "first_name", id="oversize-first-name"),
    pytest.param({"last_name": "B" * 101}, ReasonCode.OVERSIZE_TEXT, "last_name", id="last-name-101-chars"),
    pytest.param({"account_status": "SUSPENDED"}, ReasonCode.UNKNOWN_STATUS, "account_status", id="unknown-status"),
    pytest.param({"account_status": "active"}, ReasonCode.UNKNOWN_STATUS, "account_status", id="status-lowercase"),
    pytest.param({"account_status": MISSING}, ReasonCode.MISSING_FIELD, "account_status", id="missing-status"),
    pytest.param({"balance_status": "HALF"}, ReasonCode.UNKNOWN_STATUS, "balance_status", id="unknown-balance-status"),
    pytest.param({"balance_available": "12,00"}, ReasonCode.INVALID_MONEY, "balance_available", id="money-comma"),
    pytest.param({"balance_available": "abc"}, ReasonCode.INVALID_MONEY, "balance_available", id="money-text"),
    pytest.param({"balance_available": "-5.00"}, ReasonCode.INVALID_MONEY, "balance_available", id="money-negative"),
    pytest.param({"balance_available": "1.005"}, ReasonCode.INVALID_MONEY, "balance_available", id="money-3-places"),
    pytest.param({"balance_available": "NaN"}, ReasonCode.INVALID_MONEY, "balance_available", id="money-nan"),
    pytest.param({"balance_available": "1e3"}, ReasonCode.INVALID_MONEY, "balance_available", id="money-exponent"),
    pytest.param({"approval_amount": True}, ReasonCode.INVALID_MONEY, "approval_amount", id="money-bool"),
    pytest.param({"approval_amount": "$500"}, ReasonCode.INVALID_MONEY, "approval_amount", id="money-symbol"),
    pytest.param({"approval_amount": "999999999.00"}, ReasonCode.INVALID_MONEY, "approval_amount", id="money-huge"),
    pytest.param(
        {"application_completed_at": "2023-02-30T10:00:00Z"},
        ReasonCode.INVALID_TIMESTAMP,
        "application_completed_at",
        id="impossible-timestamp",
    ),
    pytest.param(
        {"application_completed_at": "2026-03-01T03:00:00"},
        ReasonCode.INVALID_TIMESTAMP,
        "application_completed_at",
        id="naive-timestamp",
    ),
    pytest.param(
        {"approval_expires_at": "2026-03-01"},
        ReasonCode.INVALID_TIMESTAMP,
        "approval_expires_at",
        id="date-only-timestamp",
    ),
    pytest.param({"created_at": "yesterday"}, ReasonCode.INVALID_TIMESTAMP, "created_at", id="junk-timestamp"),
    pytest.param({"updated_at": MISSING}, ReasonCode.MISSING_FIELD, "updated_at", id="missing-updated-at"),
    pytest.param({"increase_eligible": "yes"}, ReasonCode.INVALID_RECORD, "increase_eligible", id="flag-as-text"),
    pytest.param({"extension_eligible": MISSING}, ReasonCode.MISSING_FIELD, "extension_eligible", id="flag-missing"),
    pytest.param({"phone": "junk", "email": "not-an-email"}, ReasonCode.NO_CONTACT_POINT, None, id="no-contact-bad"),
    pytest.param({"phone": None, "email": None}, ReasonCode.NO_CONTACT_POINT, None, id="no-contact-null"),
    pytest.param({"phone": "", "email": "  "}, ReasonCode.NO_CONTACT_POINT, None, id="no-contact-blank"),
]


@pytest.mark.parametrize(("overrides", "reason", "field"), PATIENT_REJECTIONS)
def test_patient_rejections(overrides: dict[str, Any], reason: ReasonCode, field: str | None) -> None:
    with pytest.raises(RecordRejected) as caught:
        parse_patient(samples.patient(**overrides))
    assert caught.value.reason_code is reason
    assert caught.value.field == field
    assert caught.value.entity is Entity.PATIENT
    expects_id = reason not in {ReasonCode.MISSING_ID, ReasonCode.INVALID_ID}
    assert caught.value.source_id == ("pat_0001" if expects_id else None)


@pytest.mark.parametrize("raw", [None, [], "pat_0001", 7], ids=["null", "list", "string", "number"])
def test_non_objects_are_invalid_records(raw: object) -> None:
    with pytest.raises(RecordRejected) as caught:
        parse_patient(raw)
    assert caught.value.reason_code is ReasonCode.INVALID_RECORD
    assert caught.value.source_id is None


# (overrides, dropped field, warning reason): the field named is None afterwards and the warning names it.
PATIENT_DEGRADES: list[Any] = [
    pytest.param({"email": "jane@@example"}, "email", ReasonCode.INVALID_EMAIL, id="bad-email-good-phone"),
    pytest.param({"email": "jane doe@example.com"}, "email", ReasonCode.INVALID_EMAIL, id="email-with-space"),
    pytest.param({"phone": "555-0134"}, "phone", ReasonCode.INVALID_PHONE, id="bad-phone-good-email"),
    pytest.param({"phone": 4155550134}, "phone", ReasonCode.INVALID_PHONE, id="phone-as-number"),
    pytest.param({"date_of_birth": "2023-02-30"}, "date_of_birth", ReasonCode.INVALID_DATE, id="dob-impossible"),
    pytest.param({"date_of_birth": "04/12/1988"}, "date_of_birth", ReasonCode.INVALID_DATE, id="dob-us-format"),
    pytest.param({"date_of_birth": "1900-01-01"}, "date_of_birth", ReasonCode.IMPLAUSIBLE_DATE, id="dob-placeholder"),
    pytest.param({"date_of_birth": "1970-01-01"}, "date_of_birth", ReasonCode.IMPLAUSIBLE_DATE, id="dob-unix-epoch"),
    pytest.param({"date_of_birth": "1850-06-01"}, "date_of_birth", ReasonCode.IMPLAUSIBLE_DATE, id="dob-too-old"),
    pytest.param(
        {"date_of_birth": "2026-03-01"},
        "date_of_birth",
        ReasonCode.IMPLAUSIBLE_DATE,
        id="dob-after-account-created",
    ),
]


@pytest.mark.parametrize(("overrides", "field", "reason"), PATIENT_DEGRADES)
def test_patient_degrades_keep_the_record(overrides: dict[str, Any], field: str, reason: ReasonCode) -> None:
    parsed = parse_patient(samples.patient(**overrides))
    assert getattr(parsed, field) is None
    assert [(w.reason_code, w.field, w.source_id) for w in parsed.warnings] == [(reason, field, "pat_0001")]


def test_blank_names_become_none_without_rejection() -> None:
    parsed = parse_patient(samples.patient(first_name="   ", last_name=None))
    assert parsed.first_name is None and parsed.last_name is None


def test_name_of_exactly_100_characters_is_accepted() -> None:
    assert parse_patient(samples.patient(first_name="A" * 100)).first_name == "A" * 100


def test_valid_payment() -> None:
    parsed = parse_payment(samples.payment(status="PARTIALLY_REFUNDED", refund_amount="500.00"))
    assert parsed.status is PaymentStatus.PARTIALLY_REFUNDED
    assert parsed.apr == Decimal("17.99")
    assert parsed.net_amount == Decimal("2000.00")


def test_payment_without_refund_amount_reads_as_zero() -> None:
    assert parse_payment(samples.payment(refund_amount=MISSING)).refund_amount == Decimal("0.00")


PAYMENT_REJECTIONS: list[Any] = [
    pytest.param({"id": None}, ReasonCode.MISSING_ID, "id", id="missing-id"),
    pytest.param({"patient_id": MISSING}, ReasonCode.MISSING_FIELD, "patient_id", id="missing-patient"),
    pytest.param({"amount": "twenty"}, ReasonCode.INVALID_MONEY, "amount", id="amount-text"),
    pytest.param({"amount": MISSING}, ReasonCode.MISSING_FIELD, "amount", id="amount-missing"),
    pytest.param({"refund_amount": "-1"}, ReasonCode.INVALID_MONEY, "refund_amount", id="refund-negative"),
    pytest.param({"refund_amount": "3000.00"}, ReasonCode.INCONSISTENT_RECORD, "refund_amount", id="refund-too-big"),
    pytest.param({"status": "SETTLED"}, ReasonCode.UNKNOWN_STATUS, "status", id="unknown-status"),
    pytest.param({"term_months": "12"}, ReasonCode.INVALID_NUMBER, "term_months", id="term-as-text"),
    pytest.param({"term_months": 600}, ReasonCode.INVALID_NUMBER, "term_months", id="term-too-long"),
    pytest.param({"apr": "abc"}, ReasonCode.INVALID_NUMBER, "apr", id="apr-text"),
    pytest.param({"apr": "150.00"}, ReasonCode.INVALID_NUMBER, "apr", id="apr-over-100"),
    pytest.param({"invoice_number": "X" * 300}, ReasonCode.OVERSIZE_TEXT, "invoice_number", id="invoice-oversize"),
    pytest.param({"created_at": "2023-02-30T00:00:00Z"}, ReasonCode.INVALID_TIMESTAMP, "created_at", id="bad-time"),
]


@pytest.mark.parametrize(("overrides", "reason", "field"), PAYMENT_REJECTIONS)
def test_payment_rejections(overrides: dict[str, Any], reason: ReasonCode, field: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        parse_payment(samples.payment(**overrides))
    assert (caught.value.entity, caught.value.reason_code, caught.value.field) == (Entity.PAYMENT, reason, field)


def test_event_envelope_and_subject() -> None:
    event = parse_event(samples.event())
    assert event.type is EventType.PATIENT_REFRESHED
    assert event.object_type is ObjectType.PATIENT
    subject = parse_event_subject(event)
    assert subject is not None and subject.id == "pat_0001"


def test_payment_event_subject() -> None:
    event = parse_event(samples.event(type="payment.refunded", object_type="payment", data=samples.payment()))
    subject = parse_event_subject(event)
    assert subject is not None and subject.id == "pay_0001"


def test_test_ping_parses_and_has_no_subject() -> None:
    event = parse_event(
        {
            "id": "evt_ping",
            "type": "test.ping",
            "occurred_at": "2026-03-02T10:00:00Z",
            "patient_id": None,
            "object_type": None,
            "data": {},
        }
    )
    assert event.is_ping
    assert parse_event_subject(event) is None


EVENT_REJECTIONS: list[Any] = [
    pytest.param({"id": MISSING}, ReasonCode.MISSING_ID, "id", id="missing-id"),
    pytest.param({"type": "patient.deleted"}, ReasonCode.UNKNOWN_EVENT_TYPE, "type", id="unknown-type"),
    pytest.param({"occurred_at": "now"}, ReasonCode.INVALID_TIMESTAMP, "occurred_at", id="bad-time"),
    pytest.param({"object_type": "loan"}, ReasonCode.INVALID_RECORD, "object_type", id="unknown-object-type"),
    pytest.param({"object_type": None}, ReasonCode.MISSING_FIELD, "object_type", id="missing-object-type"),
    pytest.param({"object_type": "payment"}, ReasonCode.INCONSISTENT_RECORD, "object_type", id="type-mismatch"),
    pytest.param({"data": {}}, ReasonCode.MISSING_FIELD, "data", id="empty-data"),
    pytest.param({"data": "oops"}, ReasonCode.INVALID_RECORD, "data", id="data-not-object"),
]


@pytest.mark.parametrize(("overrides", "reason", "field"), EVENT_REJECTIONS)
def test_event_rejections(overrides: dict[str, Any], reason: ReasonCode, field: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        parse_event(samples.event(**overrides))
    assert (caught.value.entity, caught.value.reason_code, caught.value.field) == (Entity.EVENT, reason, field)


def test_event_subject_errors_name_the_subject_record() -> None:
    event = parse_event(samples.event(data=samples.patient(balance_available="lots")))
    with pytest.raises(RecordRejected) as caught:
        parse_event_subject(event)
    assert (caught.value.entity, caught.value.reason_code) == (Entity.PATIENT, ReasonCode.INVALID_MONEY)


def test_event_whose_object_belongs_to_another_patient_is_inconsistent() -> None:
    event = parse_event(samples.event(patient_id="pat_9999"))
    with pytest.raises(RecordRejected) as caught:
        parse_event_subject(event)
    assert (caught.value.entity, caught.value.reason_code) == (Entity.EVENT, ReasonCode.INCONSISTENT_RECORD)


def test_estimates_parse_and_keep_extra_precision() -> None:
    raw = samples.estimates()
    raw["plans"][0] = {**raw["plans"][0], "monthly_payment": "416.666667"}
    parsed = parse_estimates(raw)
    assert parsed.amount == Decimal("2500.00")
    assert parsed.plans[0].monthly_payment == Decimal("416.666667")


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        pytest.param({"amount": "x", "plans": []}, ReasonCode.INVALID_MONEY, "amount", id="amount"),
        pytest.param({"amount": "1.00", "plans": "none"}, ReasonCode.INVALID_RECORD, "plans", id="plans-type"),
        pytest.param(
            {"amount": "1.00", "plans": [{"term_months": 6, "apr": "0", "monthly_payment": "?", "total": "1"}]},
            ReasonCode.INVALID_MONEY,
            "plans[0].monthly_payment",
            id="plan-money",
        ),
        pytest.param(
            {"amount": "1.00", "plans": [{"term_months": 0, "apr": "0", "monthly_payment": "1", "total": "1"}]},
            ReasonCode.INVALID_NUMBER,
            "plans[0].term_months",
            id="plan-term",
        ),
    ],
)
def test_estimates_rejections(raw: dict[str, Any], reason: ReasonCode, field: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        parse_estimates(raw, source_id="loc_sf_01")
    assert (caught.value.reason_code, caught.value.field, caught.value.source_id) == (reason, field, "loc_sf_01")


def test_rejection_survives_pickling() -> None:
    error = RecordRejected(Entity.PAYMENT, "pay_1", ReasonCode.INVALID_MONEY, "amount", "bad amount")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object, round-tripped in memory
    assert (copy.entity, copy.source_id, copy.reason_code, copy.field) == (
        Entity.PAYMENT,
        "pay_1",
        ReasonCode.INVALID_MONEY,
        "amount",
    )
