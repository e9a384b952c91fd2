"""No patient data in any error or warning: not in str(), repr(), args, or a formatted traceback.

Every rejection and warning reason code has a case here (checked by the last test), each built so that
the offending field itself holds patient-like data.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from cherry_sync.domain._reader import RecordReader
from cherry_sync.domain.cherry_records import (
    CherryPatient,
    _build,
    parse_estimates,
    parse_event,
    parse_event_subject,
    parse_patient,
    parse_payment,
)
from cherry_sync.domain.custom_fields import FieldsNotProvisioned, field_ids
from cherry_sync.domain.errors import Entity, FieldWarning, ReasonCode, RecordRejected
from cherry_sync.domain.mapping import desired_contact
from cherry_sync.domain.merge import plan_contact_write
from tests.domain import samples
from tests.domain.samples import MISSING

FIRST, LAST = "Zebediah", "Quixotesmith"
DOB = "1961-07-23"
PHONE = "(415) 555-0187"
EMAIL = "zebediah.q@example.org"
BALANCE, APPROVAL = "4321.09", "8765.43"
SECRETS = (FIRST, LAST, DOB, "1961", "555-0187", "5550187", "zebediah", "4321", "8765")


def _patient(**overrides: Any) -> dict[str, Any]:
    base = {"first_name": FIRST, "last_name": LAST, "date_of_birth": DOB, "phone": PHONE, "email": EMAIL,
            "balance_available": BALANCE, "approval_amount": APPROVAL}
    return samples.patient(**{**base, **overrides})


def _payment(**overrides: Any) -> dict[str, Any]:
    return samples.payment(**{"amount": APPROVAL, "refund_amount": BALANCE, **overrides})


PII = f"{FIRST} {LAST} {DOB} {PHONE} {EMAIL} {BALANCE}"

REJECTIONS: list[Any] = [
    pytest.param(lambda: parse_patient([FIRST, LAST, DOB]), ReasonCode.INVALID_RECORD, id="not-an-object"),
    pytest.param(lambda: parse_patient(_patient(first_name=[FIRST])), ReasonCode.INVALID_RECORD, id="wrong-type"),
    pytest.param(lambda: parse_patient(_patient(id=MISSING)), ReasonCode.MISSING_ID, id="missing_id"),
    pytest.param(lambda: parse_patient(_patient(id=PII)), ReasonCode.INVALID_ID, id="invalid_id"),
    pytest.param(lambda: parse_patient(_patient(location_id=PII)), ReasonCode.INVALID_ID, id="invalid_id-reference"),
    pytest.param(lambda: parse_patient(_patient(location_id=None)), ReasonCode.MISSING_FIELD, id="missing_field"),
    pytest.param(lambda: parse_patient(_patient(balance_available=PII)), ReasonCode.INVALID_MONEY, id="invalid_money"),
    pytest.param(lambda: parse_payment(_payment(apr=PII)), ReasonCode.INVALID_NUMBER, id="invalid_number"),
    pytest.param(
        lambda: parse_patient(_patient(application_completed_at=DOB)), ReasonCode.INVALID_TIMESTAMP,
        id="invalid_timestamp",
    ),
    pytest.param(lambda: parse_patient(_patient(account_status=PII)), ReasonCode.UNKNOWN_STATUS, id="unknown_status"),
    pytest.param(
        lambda: parse_event(samples.event(type=PII, data=_patient())), ReasonCode.UNKNOWN_EVENT_TYPE,
        id="unknown_event_type",
    ),
    pytest.param(
        lambda: parse_patient(_patient(first_name=FIRST * 2000)), ReasonCode.OVERSIZE_TEXT, id="oversize_text"
    ),
    pytest.param(
        lambda: parse_patient(_patient(phone=f"{FIRST} {PHONE}", email=f"{FIRST}@@{LAST}")),
        ReasonCode.NO_CONTACT_POINT, id="no_contact_point",
    ),
    pytest.param(
        lambda: parse_payment(_payment(amount=BALANCE, refund_amount=APPROVAL)), ReasonCode.INCONSISTENT_RECORD,
        id="inconsistent_record",
    ),
    pytest.param(
        lambda: parse_event_subject(parse_event(samples.event(data=_patient(balance_available=PII)))),
        ReasonCode.INVALID_MONEY, id="event-subject",
    ),
    pytest.param(
        lambda: parse_estimates({"amount": BALANCE, "plans": [{"term_months": 6, "apr": PII}]}),
        ReasonCode.INVALID_NUMBER, id="estimates-plan",
    ),
    pytest.param(
        lambda: _build(CherryPatient, RecordReader({}, Entity.PATIENT), first_name=PII, id=[PII]),
        ReasonCode.INVALID_RECORD, id="model-validation-fallback",
    ),
]

WARNINGS: list[Any] = [
    pytest.param({"email": f"{FIRST} {LAST}@@example"}, ReasonCode.INVALID_EMAIL, id="invalid_email"),
    pytest.param({"phone": f"{FIRST} 555-0187"}, ReasonCode.INVALID_PHONE, id="invalid_phone"),
    pytest.param({"date_of_birth": "1961-02-30"}, ReasonCode.INVALID_DATE, id="invalid_date"),
    pytest.param({"date_of_birth": "1900-01-01"}, ReasonCode.IMPLAUSIBLE_DATE, id="implausible_date"),
]


def _all_text(error: BaseException) -> str:
    """Everything a logger or error tracker could print for the error, including chained exceptions."""
    parts = [str(error), repr(error), *map(repr, error.args), "".join(traceback.format_exception(error))]
    for name in ("message", "field", "source_id"):
        parts.append(str(getattr(error, name, "")))
    return "\n".join(parts)


def _assert_clean(text: str) -> None:
    lowered = text.lower()
    leaked = [secret for secret in SECRETS if secret.lower() in lowered]
    assert not leaked, f"patient data leaked: {leaked}"


@pytest.mark.parametrize(("call", "reason"), REJECTIONS)
def test_rejections_carry_no_patient_data(call: Callable[[], object], reason: ReasonCode) -> None:
    with pytest.raises(RecordRejected) as caught:
        call()
    assert caught.value.reason_code is reason
    _assert_clean(_all_text(caught.value))


@pytest.mark.parametrize(("overrides", "reason"), WARNINGS)
def test_warnings_carry_no_patient_data(overrides: dict[str, Any], reason: ReasonCode) -> None:
    parsed = parse_patient(_patient(**overrides))
    [warning] = parsed.warnings
    assert warning.reason_code is reason
    _assert_clean(f"{warning} {warning!r}")


def test_logged_rejection_carries_no_patient_data(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("cherry_sync.test")
    try:
        parse_patient(_patient(balance_available=PII))
    except RecordRejected:
        logger.exception("record rejected")
    assert caplog.records
    _assert_clean(caplog.text)


def test_model_repr_hides_patient_data() -> None:
    patient = parse_patient(_patient())
    _assert_clean(repr(patient) + str(patient))
    payment = parse_payment(_payment(refund_amount="0.00"))
    _assert_clean(repr(payment))


def test_other_domain_errors_carry_keys_only() -> None:
    desired = desired_contact(parse_patient(_patient()), practice_tz="UTC")
    with pytest.raises(Exception) as caught:
        plan_contact_write(desired, None, {})
    _assert_clean(_all_text(caught.value))
    with pytest.raises(FieldsNotProvisioned) as missing:
        field_ids([])
    _assert_clean(_all_text(missing.value))


def test_every_reason_code_is_covered() -> None:
    covered = {param.values[1] for param in REJECTIONS} | {param.values[1] for param in WARNINGS}
    assert covered == set(ReasonCode)


def test_field_warning_is_plain_data() -> None:
    warning = FieldWarning(Entity.PATIENT, "pat_1", ReasonCode.INVALID_EMAIL, "email")
    assert str(warning) == "patient pat_1: dropped email (invalid_email)"
