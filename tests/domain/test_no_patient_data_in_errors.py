"""No patient data in any error or warning: not in str(), repr(), args, or a formatted traceback.

Every rejection and warning reason code has a case here (checked by the last test), each built so that
the offending field itself holds patient-like data.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import cherry_sync.domain
from cherry_sync.domain.cherry_records import (
    CherryPatient,
    parse_estimates,
    parse_event,
    parse_event_subject,
    parse_patient,
    parse_payment,
)
from cherry_sync.domain.custom_fields import FieldsNotProvisioned, field_ids
from cherry_sync.domain.errors import Entity, FieldWarning, InvalidPracticeTimezone, RecordRejected
from cherry_sync.domain.mapping import desired_contact
from cherry_sync.domain.merge import plan_contact_write
from cherry_sync.domain.validation import validate_record
from cherry_sync.reasons import RECORD_CODES, WARNING_CODES, ReasonCode
from tests.domain import samples
from tests.domain.samples import MISSING

FIRST, LAST = "Zebediah", "Quixotesmith"
DOB = "1961-07-23"
PHONE = "(415) 555-0187"
EMAIL = "zebediah.q@example.org"
BALANCE, APPROVAL = "4321.09", "8765.43"
SECRETS = (FIRST, LAST, DOB, "1961", "555-0187", "5550187", "zebediah", "4321", "8765")


def _patient(**overrides: Any) -> dict[str, Any]:
    base = {
        "first_name": FIRST,
        "last_name": LAST,
        "date_of_birth": DOB,
        "phone": PHONE,
        "email": EMAIL,
        "balance_available": BALANCE,
        "approval_amount": APPROVAL,
    }
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
        lambda: parse_patient(_patient(application_completed_at=DOB)),
        ReasonCode.INVALID_TIMESTAMP,
        id="invalid_timestamp",
    ),
    pytest.param(lambda: parse_patient(_patient(account_status=PII)), ReasonCode.UNKNOWN_STATUS, id="unknown_status"),
    pytest.param(
        lambda: parse_event(samples.event(type=PII, data=_patient())),
        ReasonCode.UNKNOWN_EVENT_TYPE,
        id="unknown_event_type",
    ),
    pytest.param(
        lambda: parse_patient(_patient(first_name=FIRST * 2000)), ReasonCode.OVERSIZE_TEXT, id="oversize_text"
    ),
    pytest.param(
        lambda: parse_patient(_patient(phone=f"{FIRST} {PHONE}", email=f"{FIRST}@@{LAST}")),
        ReasonCode.NO_CONTACT_POINT,
        id="no_contact_point",
    ),
    pytest.param(
        lambda: parse_payment(_payment(amount=BALANCE, refund_amount=APPROVAL)),
        ReasonCode.INCONSISTENT_RECORD,
        id="inconsistent_record",
    ),
    pytest.param(
        lambda: parse_event_subject(parse_event(samples.event(data=_patient(balance_available=PII)))),
        ReasonCode.INVALID_MONEY,
        id="event-subject",
    ),
    pytest.param(
        lambda: parse_estimates({"amount": BALANCE, "plans": [{"term_months": 6, "apr": PII}]}),
        ReasonCode.INVALID_NUMBER,
        id="estimates-plan",
    ),
    pytest.param(
        lambda: validate_record(CherryPatient, [PII, {"first_name": PII}], Entity.PATIENT),
        ReasonCode.INVALID_RECORD,
        id="pydantic-own-error",
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


def test_a_bad_email_never_reaches_an_exception_or_a_log(caplog: pytest.LogCaptureFixture) -> None:
    """pydantic raises the e-mail's error with the input attached; none of it may surface anywhere."""
    bad_email = f"{FIRST}.{LAST}@@example.org"
    logger = logging.getLogger("cherry_sync.test")
    texts = []

    # Dropped with a warning, which the sync logs.
    kept = parse_patient(_patient(email=bad_email))
    logger.warning("patient kept without: %s", ", ".join(map(str, kept.warnings)))
    # With no phone left the record is rejected, logged with its traceback.
    with pytest.raises(RecordRejected) as rejected:
        parse_patient(_patient(email=bad_email, phone=None))
    texts.append(_all_text(rejected.value))
    logger.error("rejected", exc_info=rejected.value)
    # The model validated directly, without the parse function: pydantic's own ValidationError.
    with pytest.raises(ValidationError) as invalid:
        CherryPatient.model_validate(_patient(email=bad_email))
    texts.append(_all_text(invalid.value))
    texts.append(str(invalid.value.errors(include_url=False, include_input=False)))
    logger.error("invalid", exc_info=invalid.value)

    assert rejected.value.reason_code is ReasonCode.NO_CONTACT_POINT
    assert invalid.value.errors()[0]["type"] == ReasonCode.INVALID_EMAIL.value
    # Only this test's logger: a sandbox server left by an earlier test in this worker may log too.
    assert len([record for record in caplog.records if record.name == logger.name]) == 3
    for text in [*texts, caplog.text]:
        assert bad_email.lower() not in text.lower()
        _assert_clean(text)


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


# Warnings the sync raises (not the parser): they name the field and opaque ids only.
SYNC_WARNINGS = [ReasonCode.SHARED_CONTACT_POINT]
# Codes the domain gives about configuration, not records (a time zone name, fields not provisioned in the CRM).
CONFIGURATION_CODES = {ReasonCode.INVALID_TIMEZONE, ReasonCode.FIELDS_NOT_PROVISIONED}


def _codes_named_in_the_domain() -> set[ReasonCode]:
    """Every reason code the domain's source names: the codes its validators and rules can give.

    The enum also holds other layers' codes (API, media), so the domain's own are read from its source.
    """
    source = "".join(path.read_text() for path in Path(cherry_sync.domain.__file__).parent.glob("*.py"))
    return {ReasonCode[name] for name in re.findall(r"ReasonCode\.([A-Z_]+)", source)}


def test_every_reason_code_is_covered() -> None:
    covered = {param.values[1] for param in REJECTIONS} | {param.values[1] for param in WARNINGS}
    assert covered == _codes_named_in_the_domain() - CONFIGURATION_CODES
    assert covered | set(SYNC_WARNINGS) == RECORD_CODES
    assert set(WARNING_CODES) == {param.values[1] for param in WARNINGS} | set(SYNC_WARNINGS)


def test_an_unknown_time_zone_is_named_as_configuration() -> None:
    with pytest.raises(InvalidPracticeTimezone) as caught:
        desired_contact(parse_patient(_patient()), practice_tz="Mars/Olympus_Mons")
    assert caught.value.reason_code is ReasonCode.INVALID_TIMEZONE
    assert "Mars/Olympus_Mons" in str(caught.value)
    _assert_clean(_all_text(caught.value))


def test_shared_contact_point_warning_names_the_field_only() -> None:
    warning = FieldWarning(Entity.PATIENT, "pat_1", ReasonCode.SHARED_CONTACT_POINT, "phone")
    assert str(warning) == "patient pat_1: dropped phone (shared_contact_point)"


def test_field_warning_is_plain_data() -> None:
    warning = FieldWarning(Entity.PATIENT, "pat_1", ReasonCode.INVALID_EMAIL, "email")
    assert str(warning) == "patient pat_1: dropped email (invalid_email)"
