"""The contract's types and the conversion of their errors: one rule, one reason code, wherever the type is used."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from cherry_sync.domain.cherry_records import (
    CherryPatient,
    EstimatePlan,
    parse_estimates,
    parse_event,
    parse_patient,
    parse_payment,
)
from cherry_sync.domain.contract import (
    Money,
    Percent,
    RecordContext,
    Timestamp,
    TimeZoneName,
    parse_rfc3339,
)
from cherry_sync.domain.errors import Entity, RecordRejected
from cherry_sync.domain.validation import field_path, validate_record
from cherry_sync.reasons import ReasonCode
from tests.domain import samples


def _reason(call: Any) -> tuple[ReasonCode, str | None]:
    with pytest.raises(RecordRejected) as caught:
        call()
    return caught.value.reason_code, caught.value.field


@pytest.mark.parametrize("amount", ["1.005", "-5", "1e3", "$5", "12,00", "NaN", True, "100000000.00"])
def test_one_money_rule_for_balances_payments_and_estimates(amount: object) -> None:
    assert _reason(lambda: parse_patient(samples.patient(balance_available=amount))) == (
        ReasonCode.INVALID_MONEY,
        "balance_available",
    )
    assert _reason(lambda: parse_payment(samples.payment(amount=amount))) == (ReasonCode.INVALID_MONEY, "amount")
    assert _reason(lambda: parse_estimates(samples.estimates(amount=amount))) == (ReasonCode.INVALID_MONEY, "amount")


def test_the_type_on_its_own_gives_the_reason_code_as_the_error_type() -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(Money).validate_python("1.005")
    [error] = caught.value.errors(include_input=False, include_url=False)
    assert error["type"] == ReasonCode.INVALID_MONEY.value
    assert error["msg"] == "expected a non-negative decimal amount with at most 2 places"

    assert TypeAdapter(Money).validate_python(None) is None
    assert TypeAdapter(Percent).validate_python("17.99") == Decimal("17.99")
    with pytest.raises(ValidationError) as missing:
        TypeAdapter(Percent).validate_python(None)
    assert missing.value.errors()[0]["type"] == ReasonCode.MISSING_FIELD.value


def test_models_built_in_code_take_python_values() -> None:
    plan = EstimatePlan(term_months=6, apr=Decimal("0"), monthly_payment=Decimal("166.666667"), total=Decimal("1000"))
    assert plan.monthly_payment == Decimal("166.666667")
    moment = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    assert TypeAdapter(Timestamp).validate_python(moment) == moment
    with pytest.raises(ValidationError):
        EstimatePlan(term_months=6, apr=Decimal("0"), monthly_payment=Decimal("-1"), total=Decimal("1"))


def test_the_first_rule_broken_in_field_order_names_the_rejection() -> None:
    raw = samples.patient(balance_available="lots", created_at="yesterday", email="bad@@", phone=None)
    assert _reason(lambda: parse_patient(raw)) == (ReasonCode.INVALID_MONEY, "balance_available")


def test_a_record_key_named_like_the_warnings_is_just_an_unknown_key() -> None:
    parsed = parse_patient(samples.patient(warnings=["not ours"], _warnings="nor this"))
    assert parsed.warnings == ()


def test_dropped_fields_are_collected_in_the_context_given() -> None:
    context = RecordContext(phone_region="GB")
    raw = samples.patient(phone="020 7946 0958", email="jane@@example", date_of_birth="1970-01-01")
    patient = validate_record(CherryPatient, raw, Entity.PATIENT, context=context)

    assert patient.phone == "+442079460958"  # read in the context's region
    assert context.dropped == [(ReasonCode.IMPLAUSIBLE_DATE, "date_of_birth"), (ReasonCode.INVALID_EMAIL, "email")]
    assert [(w.reason_code, w.field, w.source_id) for w in patient.warnings] == [
        (ReasonCode.IMPLAUSIBLE_DATE, "date_of_birth", "pat_0001"),
        (ReasonCode.INVALID_EMAIL, "email", "pat_0001"),
    ]


def test_without_a_context_a_field_cannot_be_dropped_so_it_is_an_error() -> None:
    with pytest.raises(ValidationError) as caught:
        CherryPatient.model_validate(samples.patient(email="jane@@example"))
    assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [("invalid_email", ("email",))]


def test_a_rule_on_the_whole_record_names_its_field() -> None:
    raw = samples.event(type="payment.completed")  # carries a patient
    with pytest.raises(RecordRejected) as caught:
        parse_event(raw)
    assert (caught.value.reason_code, caught.value.field, caught.value.source_id) == (
        ReasonCode.INCONSISTENT_RECORD,
        "object_type",
        "evt_0001",
    )


@pytest.mark.parametrize(
    ("loc", "path"),
    [((), None), (("amount",), "amount"), (("plans", 1, "apr"), "plans[1].apr"), (("tags", 0), "tags[0]")],
)
def test_field_path(loc: tuple[int | str, ...], path: str | None) -> None:
    assert field_path(loc) == path


def test_time_zone_names() -> None:
    assert TypeAdapter(TimeZoneName).validate_python("America/New_York") == "America/New_York"
    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", "", 7):
        with pytest.raises(ValidationError) as caught:
            TypeAdapter(TimeZoneName).validate_python(bad)
        assert caught.value.errors()[0]["type"] == ReasonCode.INVALID_TIMEZONE.value


def test_rfc3339_reader() -> None:
    assert parse_rfc3339("2026-03-01T03:00:00.5+01:00") == datetime(2026, 3, 1, 2, 0, 0, 500000, tzinfo=UTC)
    assert parse_rfc3339("2026-03-01T03:00:00") is None
    assert parse_rfc3339(date(2026, 3, 1)) is None
