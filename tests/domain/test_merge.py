"""The non-destructive merge, as a table: one row per rule, plus the body-shape guarantees."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from cherry_sync.domain import custom_fields as cf
from cherry_sync.domain.cherry_records import parse_patient, parse_payment
from cherry_sync.domain.custom_fields import CATALOGUE
from cherry_sync.domain.desired_contact import DesiredContact
from cherry_sync.domain.errors import UnprovisionedField
from cherry_sync.domain.mapping import desired_contact
from cherry_sync.domain.merge import (
    FORBIDDEN_KEYS,
    UPDATE_CONTACT_KEYS,
    UPSERT_CONTACT_KEYS,
    ContactWrite,
    plan_contact_write,
)
from tests.domain import samples
from tests.domain.samples import MISSING

FIELD_IDS = {spec.field_key: f"fid_{index:02d}" for index, spec in enumerate(CATALOGUE)}

# What the CRM returns for a contact that already holds everything the base patient wants
# (values in read shapes: money as numbers, dates as text).
CRM_CUSTOM: dict[str, Any] = {
    cf.ACCOUNT_STATUS: "Active",
    cf.ACCOUNT_BALANCE: 1234.5,
    cf.BALANCE_STATUS: "Partially Used",
    cf.APPLICATION_COMPLETED_DATE: "2026-02-28",
    cf.INCREASE_ELIGIBLE: "Yes",
    cf.EXTENSION_ELIGIBLE: "No",
    cf.INVOICE_NUMBER: "INV-1001",
    cf.LAST_PAYMENT_DATE: "2026-03-05",
    cf.PAYMENT_STATUS: "Completed",
    cf.PAYMENT_AMOUNT: 2500,
}


def _desired(**patient_overrides: Any) -> DesiredContact:
    return desired_contact(
        parse_patient(samples.patient(**patient_overrides)),
        practice_tz="America/Los_Angeles",
        latest_payment=parse_payment(samples.payment()),
    )


def _crm(custom: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    values = {**CRM_CUSTOM, **(custom or {})}
    contact: dict[str, Any] = {
        "id": "ct_0001",
        "locationId": "crm_loc_1",
        "firstName": "Jane",
        "lastName": "Doe",
        "email": "jane.doe@example.com",
        "phone": "+14155550134",
        "dateOfBirth": "1988-04-12",
        "tags": ["vip", "cherry"],
        "source": "Front desk",
        "customFields": [
            {"id": FIELD_IDS[key], "value": value} for key, value in values.items() if value is not MISSING
        ]
        + [{"id": "someone_elses_field", "value": "keep me"}],
    }
    for key, value in overrides.items():
        if value is MISSING:
            contact.pop(key, None)
        else:
            contact[key] = value
    return {"contact": contact}  # GET /contacts/{id} wraps the contact


# id | Cherry patient overrides | CRM contact overrides | CRM custom overrides | expected standard writes |
# expected custom keys written ({} and () together mean "nothing differs" → None)
MERGE_TABLE: list[Any] = [
    pytest.param({}, {}, {}, {}, (), id="nothing-differs"),
    # date of birth
    pytest.param({}, {"dateOfBirth": "1979-01-02"}, {}, {}, (), id="crm-has-other-dob-kept"),
    pytest.param({}, {"dateOfBirth": MISSING}, {}, {"dateOfBirth": "1988-04-12"}, (), id="crm-dob-absent-filled"),
    pytest.param({}, {"dateOfBirth": None}, {}, {"dateOfBirth": "1988-04-12"}, (), id="crm-dob-null-filled"),
    pytest.param({}, {"dateOfBirth": ""}, {}, {"dateOfBirth": "1988-04-12"}, (), id="crm-dob-blank-filled"),
    pytest.param({}, {"dateOfBirth": "sometime"}, {}, {"dateOfBirth": "1988-04-12"}, (), id="crm-dob-garbage"),
    pytest.param({}, {"dateOfBirth": "2023-02-30"}, {}, {"dateOfBirth": "1988-04-12"}, (), id="crm-dob-impossible"),
    pytest.param({}, {"dateOfBirth": "1900-01-01"}, {}, {"dateOfBirth": "1988-04-12"}, (), id="crm-dob-1900-default"),
    pytest.param(
        {},
        {"dateOfBirth": "1970-01-01T00:00:00.000Z"},
        {},
        {"dateOfBirth": "1988-04-12"},
        (),
        id="crm-dob-1970-default",
    ),
    pytest.param({}, {"dateOfBirth": "1988-04-12T00:00:00.000Z"}, {}, {}, (), id="crm-dob-iso-timestamp-same"),
    pytest.param({}, {"dateOfBirth": 576806400000}, {}, {}, (), id="crm-dob-epoch-ms-same"),
    pytest.param({}, {"dateOfBirth": "04/12/1988"}, {}, {}, (), id="crm-dob-us-format-same"),
    pytest.param({"date_of_birth": None}, {}, {}, {}, (), id="cherry-dob-null-never-clears"),
    pytest.param({"date_of_birth": None}, {"dateOfBirth": None}, {}, {}, (), id="neither-has-dob-nothing-sent"),
    pytest.param({"date_of_birth": "1900-01-01"}, {"dateOfBirth": None}, {}, {}, (), id="cherry-default-dob-not-sent"),
    # phone
    pytest.param({"phone": None}, {}, {}, {}, (), id="cherry-phone-empty-crm-kept"),
    pytest.param({"phone": "415.555.0134"}, {}, {}, {}, (), id="cherry-phone-same"),
    pytest.param({"phone": "(415) 555-0199"}, {}, {}, {"phone": "+14155550199"}, (), id="cherry-phone-different"),
    pytest.param({}, {"phone": "(415) 555-0134"}, {}, {}, (), id="crm-phone-formatted-same-e164"),
    pytest.param({}, {"phone": MISSING}, {}, {"phone": "+14155550134"}, (), id="crm-phone-missing"),
    pytest.param({"phone": "junk"}, {}, {}, {}, (), id="cherry-phone-invalid-crm-kept"),
    # email
    pytest.param({"email": "JANE.DOE@EXAMPLE.COM"}, {}, {}, {}, (), id="email-same-different-case"),
    pytest.param(
        {"email": "jane@new.example.com"}, {}, {}, {"email": "jane@new.example.com"}, (), id="email-different"
    ),
    pytest.param({"email": None}, {}, {}, {}, (), id="cherry-email-empty-crm-kept"),
    pytest.param({}, {"email": None}, {}, {"email": "Jane.Doe@example.com"}, (), id="crm-email-empty-filled"),
    # names
    pytest.param({"first_name": "Janet"}, {}, {}, {"firstName": "Janet"}, (), id="first-name-change"),
    pytest.param({"last_name": "Smith-Doe"}, {}, {}, {"lastName": "Smith-Doe"}, (), id="last-name-change"),
    pytest.param({"first_name": "jane"}, {}, {}, {"firstName": "jane"}, (), id="name-case-change-follows-cherry"),
    pytest.param({"first_name": None}, {}, {}, {}, (), id="cherry-name-empty-crm-kept"),
    pytest.param({}, {"firstName": "  Jane "}, {}, {}, (), id="crm-name-padding-only"),
    # custom fields
    pytest.param({}, {}, {cf.ACCOUNT_BALANCE: "1234.50"}, {}, (), id="money-as-text-same-value"),
    pytest.param({}, {}, {cf.ACCOUNT_BALANCE: 1234.51}, {}, (cf.ACCOUNT_BALANCE,), id="money-changed"),
    pytest.param({}, {}, {cf.PAYMENT_AMOUNT: "2500.00"}, {}, (), id="amount-int-vs-text"),
    pytest.param(
        {}, {}, {cf.APPLICATION_COMPLETED_DATE: "2026-02-28T00:00:00.000Z"}, {}, (), id="date-as-timestamp-same"
    ),
    pytest.param({}, {}, {cf.LAST_PAYMENT_DATE: 1772668800000}, {}, (), id="date-as-epoch-ms-same"),
    pytest.param(
        {},
        {},
        {cf.APPLICATION_COMPLETED_DATE: "2026-03-01"},
        {},
        (cf.APPLICATION_COMPLETED_DATE,),
        id="date-changed-utc-vs-practice-day",
    ),
    pytest.param({"account_status": "EXPIRED"}, {}, {}, {}, (cf.ACCOUNT_STATUS,), id="option-changed"),
    pytest.param({}, {}, {cf.BALANCE_STATUS: MISSING}, {}, (cf.BALANCE_STATUS,), id="custom-missing-in-crm"),
    pytest.param({}, {"customFields": MISSING}, {}, {}, tuple(sorted(CRM_CUSTOM)), id="crm-without-custom-fields"),
    # Cherry fields mirror Cherry, down to empty
    pytest.param({"balance_status": None}, {}, {}, {}, (cf.BALANCE_STATUS,), id="cherry-null-custom-cleared"),
    pytest.param(
        {"balance_available": None, "balance_status": None},
        {},
        {},
        {},
        (cf.ACCOUNT_BALANCE, cf.BALANCE_STATUS),
        id="cherry-balance-gone-both-cleared",
    ),
    pytest.param(
        {"balance_status": None}, {}, {cf.BALANCE_STATUS: MISSING}, {}, (), id="cherry-null-crm-empty-nothing-sent"
    ),
    pytest.param(
        {"balance_status": None}, {}, {cf.BALANCE_STATUS: ""}, {}, (), id="cherry-null-crm-blank-nothing-sent"
    ),
    pytest.param(
        {"application_completed_at": None},
        {},
        {},
        {},
        (cf.APPLICATION_COMPLETED_DATE,),
        id="cherry-completion-date-gone-cleared",
    ),
    pytest.param(
        {},
        {},
        {cf.PRACTICE_6_MONTH_ESTIMATE: "$1,000.00: old text"},
        {},
        (cf.PRACTICE_6_MONTH_ESTIMATE,),
        id="estimate-no-longer-given-cleared",
    ),
    pytest.param(
        {"first_name": "Janet", "phone": "4155550199"},
        {"dateOfBirth": None},
        {cf.ACCOUNT_STATUS: "Inactive"},
        {"firstName": "Janet", "phone": "+14155550199", "dateOfBirth": "1988-04-12"},
        (cf.ACCOUNT_STATUS,),
        id="several-changes",
    ),
]


@pytest.mark.parametrize(("patient", "crm", "crm_custom", "standard", "custom_keys"), MERGE_TABLE)
def test_merge_rules(
    patient: dict[str, Any],
    crm: dict[str, Any],
    crm_custom: dict[str, Any],
    standard: dict[str, str],
    custom_keys: tuple[str, ...],
) -> None:
    write = plan_contact_write(_desired(**patient), _crm(crm_custom, **crm), FIELD_IDS)
    if not standard and not custom_keys:
        assert write is None
        return
    assert write is not None
    assert write.contact_id == "ct_0001" and not write.is_create
    assert dict(write.standard) == standard
    assert tuple(w.field_key for w in write.custom_fields) == custom_keys
    body = write.update_body()
    assert set(body) <= UPDATE_CONTACT_KEYS
    assert not set(body) & FORBIDDEN_KEYS
    assert {k: v for k, v in body.items() if k != "customFields"} == standard
    json.dumps(body)  # JSON-ready as is


def test_estimate_text_with_crlf_is_not_a_change() -> None:
    desired = DesiredContact(
        patient_id="pat_0001",
        phone="+14155550134",
        custom_fields={cf.PRACTICE_6_MONTH_ESTIMATE: "line one\nline two"},
    )
    existing = {
        "id": "ct_1",
        "phone": "+14155550134",
        "customFields": [{"id": FIELD_IDS[cf.PRACTICE_6_MONTH_ESTIMATE], "value": "line one\r\nline two "}],
    }
    assert plan_contact_write(desired, existing, FIELD_IDS) is None


def test_create_writes_everything_cherry_has() -> None:
    desired = _desired()
    write = plan_contact_write(desired, None, FIELD_IDS)
    assert write is not None and write.is_create
    body = write.upsert_body("crm_loc_1")
    assert body["locationId"] == "crm_loc_1"
    assert {k: body[k] for k in ("firstName", "lastName", "email", "phone", "dateOfBirth")} == {
        "firstName": "Jane",
        "lastName": "Doe",
        "email": "Jane.Doe@example.com",
        "phone": "+14155550134",
        "dateOfBirth": "1988-04-12",
    }
    values = {item["id"]: item["field_value"] for item in body["customFields"]}
    assert values[FIELD_IDS[cf.ACCOUNT_BALANCE]] == 1234.5
    assert isinstance(values[FIELD_IDS[cf.PAYMENT_AMOUNT]], float)
    assert values[FIELD_IDS[cf.APPLICATION_COMPLETED_DATE]] == "2026-02-28"
    assert values[FIELD_IDS[cf.ACCOUNT_STATUS]] == "Active"
    assert set(body) <= UPSERT_CONTACT_KEYS and "tags" not in body
    assert f'{{"id": "{FIELD_IDS[cf.ACCOUNT_BALANCE]}", "field_value": 1234.5}}' in json.dumps(body)


def test_upsert_body_for_an_update_still_carries_match_keys() -> None:
    write = plan_contact_write(_desired(first_name="Janet"), _crm(), FIELD_IDS)
    assert write is not None
    assert write.update_body() == {"firstName": "Janet"}
    assert write.upsert_body("crm_loc_1") == {
        "locationId": "crm_loc_1",
        "email": "Jane.Doe@example.com",
        "phone": "+14155550134",
        "firstName": "Janet",
    }


def test_tags_are_never_sent_even_when_the_crm_has_them() -> None:
    write = plan_contact_write(_desired(first_name="Janet"), _crm(tags=["a", "b"]), FIELD_IDS)
    assert write is not None
    assert "tags" not in write.update_body() and "tags" not in write.upsert_body("crm_loc_1")


def test_unknown_crm_keys_are_never_echoed_back() -> None:
    existing = _crm(source="Referral", customField1="x", additionalEmails=[{"email": "x@example.com"}])
    write = plan_contact_write(_desired(first_name="Janet"), existing, FIELD_IDS)
    assert write is not None
    assert set(write.update_body()) == {"firstName"}


def test_body_guard_refuses_forbidden_keys() -> None:
    write = ContactWrite(patient_id="pat_1", contact_id="ct_1", standard={"tags": "x"}, custom_fields=())
    with pytest.raises(AssertionError, match="tags"):
        write.update_body()
    sneaky = ContactWrite(patient_id="pat_1", contact_id="ct_1", standard={"additionalEmails": "x"}, custom_fields=())
    with pytest.raises(AssertionError, match="additionalEmails"):
        sneaky.update_body()


def test_field_without_id_is_a_provisioning_error() -> None:
    ids = {k: v for k, v in FIELD_IDS.items() if k != cf.ACCOUNT_STATUS}
    with pytest.raises(UnprovisionedField) as caught:
        plan_contact_write(_desired(), None, ids)
    assert caught.value.field_keys == (cf.ACCOUNT_STATUS,)


def test_contact_write_repr_and_changed_fields_name_fields_only() -> None:
    write = plan_contact_write(_desired(), None, FIELD_IDS)
    assert write is not None
    text = repr(write) + " ".join(write.changed_fields)
    for value in ("Jane", "Doe", "4155550134", "1988", "1234.5", "example.com"):
        assert value not in text
    assert "firstName" in write.changed_fields and cf.ACCOUNT_BALANCE in write.changed_fields


def test_money_json_number_is_exact_for_cent_amounts() -> None:
    from cherry_sync.domain.crm_values import money_to_json

    for cents in (0, 1, 5, 10, 99, 123450, 99999999, 9999999999):
        amount = Decimal(cents) / 100
        assert Decimal(json.dumps(money_to_json(amount))) == amount


def test_cleared_fields_are_sent_as_empty_strings() -> None:
    write = plan_contact_write(_desired(balance_available=None, balance_status=None), _crm(), FIELD_IDS)
    assert write is not None and write.cleared_fields == (cf.ACCOUNT_BALANCE, cf.BALANCE_STATUS)
    assert write.update_body() == {
        "customFields": [
            {"id": FIELD_IDS[cf.ACCOUNT_BALANCE], "field_value": ""},
            {"id": FIELD_IDS[cf.BALANCE_STATUS], "field_value": ""},
        ]
    }


def test_no_latest_payment_clears_the_payment_fields() -> None:
    desired = desired_contact(parse_patient(samples.patient()), practice_tz="America/Los_Angeles")
    write = plan_contact_write(desired, _crm(), FIELD_IDS)
    assert write is not None
    assert write.cleared_fields == tuple(
        sorted((cf.INVOICE_NUMBER, cf.LAST_PAYMENT_DATE, cf.PAYMENT_AMOUNT, cf.PAYMENT_STATUS))
    )
    assert not write.standard


def test_latest_payment_without_invoice_number_clears_the_invoice() -> None:
    desired = desired_contact(
        parse_patient(samples.patient()),
        practice_tz="America/Los_Angeles",
        latest_payment=parse_payment(samples.payment(invoice_number=None)),
    )
    write = plan_contact_write(desired, _crm(), FIELD_IDS)
    assert write is not None and write.cleared_fields == (cf.INVOICE_NUMBER,)
    assert [w.field_key for w in write.custom_fields] == [cf.INVOICE_NUMBER]


def test_unknown_fields_are_neither_written_nor_cleared() -> None:
    desired = desired_contact(
        parse_patient(samples.patient()),
        practice_tz="America/Los_Angeles",
        latest_payment=parse_payment(samples.payment()),
        unknown=(cf.PATIENT_6_MONTH_ESTIMATE, cf.PATIENT_12_MONTH_ESTIMATE),
    )
    assert not {cf.PATIENT_6_MONTH_ESTIMATE, cf.PATIENT_12_MONTH_ESTIMATE} & (
        set(desired.custom_fields) | desired.cleared
    )
    crm = _crm({cf.PATIENT_6_MONTH_ESTIMATE: "kept while Cherry's answer is unreadable"})
    assert plan_contact_write(desired, crm, FIELD_IDS) is None


def test_every_cherry_field_is_either_valued_or_cleared() -> None:
    desired = _desired(balance_available=None)
    assert set(desired.custom_fields) | desired.cleared == {spec.field_key for spec in CATALOGUE}
    assert not set(desired.custom_fields) & desired.cleared


def test_a_new_contact_is_sent_the_cleared_fields_empty() -> None:
    # An upsert may land on an existing contact the directory did not know: its stale values must go too.
    write = plan_contact_write(_desired(balance_available=None, balance_status=None), None, FIELD_IDS)
    assert write is not None and write.is_create
    values = {item["id"]: item["field_value"] for item in write.upsert_body("crm_loc_1")["customFields"]}
    assert values[FIELD_IDS[cf.ACCOUNT_BALANCE]] == "" and values[FIELD_IDS[cf.BALANCE_STATUS]] == ""
    assert values[FIELD_IDS[cf.ACCOUNT_STATUS]] == "Active"


def test_a_field_to_clear_without_an_id_is_skipped() -> None:
    ids = {key: value for key, value in FIELD_IDS.items() if key != cf.BALANCE_STATUS}
    assert plan_contact_write(_desired(balance_status=None), _crm(), ids) is None
