"""Change hashing: equal content gives an equal hash, whatever the construction order or Decimal spelling."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal

import pytest

from cherry_sync.domain import custom_fields as cf
from cherry_sync.domain import hashing
from cherry_sync.domain.cherry_records import parse_patient
from cherry_sync.domain.desired_contact import DesiredContact
from cherry_sync.domain.hashing import HASH_VERSION, canonical_decimal, content_hash
from cherry_sync.domain.mapping import desired_contact
from tests.domain import samples


def _contact(custom: dict) -> DesiredContact:
    return DesiredContact(patient_id="pat_1", first_name="Jane", phone="+14155550134", custom_fields=custom)


def test_hash_is_the_sha256_of_the_documented_canonical_form() -> None:
    # A known vector: the canonical document written out by hand (sorted keys, no spaces, Decimals by value and
    # dates as ISO text, both tagged), so a change to the form cannot slip in without this test and a version bump.
    desired = DesiredContact(
        patient_id="pat_1",
        first_name="Jane",
        phone="+14155550134",
        date_of_birth=date(1990, 1, 2),
        custom_fields={cf.ACCOUNT_BALANCE: Decimal("1500.50"), cf.ACCOUNT_STATUS: "Active"},
        cleared=frozenset({cf.INCREASE_ELIGIBLE}),
    )
    canonical = (
        '{"cleared":["contact.cherry_increase_eligible"],'
        '"custom_fields":{"contact.cherry_account_balance":{"decimal":"1500.5"},'
        '"contact.cherry_account_status":"Active"},'
        '"date_of_birth":{"date":"1990-01-02"},"email":null,"first_name":"Jane","last_name":null,'
        f'"patient_id":"pat_1","phone":"+14155550134","version":"{HASH_VERSION}"}}'
    )
    assert content_hash(desired) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        {"patient_id": "pat_2"},
        {"first_name": "Janet"},
        {"last_name": "Doe"},
        {"email": "jane@example.com"},
        {"phone": "+14155550135"},
        {"date_of_birth": date(1990, 1, 3)},
    ],
    ids=lambda change: next(iter(change)),
)
def test_each_standard_field_changes_the_hash(change: dict) -> None:
    base = {"patient_id": "pat_1", "first_name": "Jane", "phone": "+14155550134", "date_of_birth": date(1990, 1, 2)}
    assert content_hash(DesiredContact(**{**base, **change})) != content_hash(DesiredContact(**base))


def test_a_version_bump_changes_every_hash(monkeypatch) -> None:
    desired = _contact({cf.ACCOUNT_BALANCE: Decimal("1.50")})
    before = content_hash(desired)
    monkeypatch.setattr(hashing, "HASH_VERSION", HASH_VERSION + "-next")
    assert content_hash(desired) != before


def test_key_order_does_not_matter() -> None:
    forward = {cf.ACCOUNT_STATUS: "Active", cf.ACCOUNT_BALANCE: Decimal("1.50"), cf.INCREASE_ELIGIBLE: "Yes"}
    backward = dict(reversed(list(forward.items())))
    assert list(forward) != list(backward)
    assert content_hash(_contact(forward)) == content_hash(_contact(backward))


def test_decimal_spelling_does_not_matter() -> None:
    variants = [Decimal("1.5"), Decimal("1.50"), Decimal("1.500"), Decimal("15E-1")]
    hashes = {content_hash(_contact({cf.ACCOUNT_BALANCE: value})) for value in variants}
    assert len(hashes) == 1
    assert canonical_decimal(Decimal("100.00")) == "100"
    assert canonical_decimal(Decimal("-0.00")) == "0"


def test_any_value_change_changes_the_hash() -> None:
    base = content_hash(_contact({cf.ACCOUNT_BALANCE: Decimal("1.50")}))
    assert content_hash(_contact({cf.ACCOUNT_BALANCE: Decimal("1.51")})) != base
    assert content_hash(_contact({cf.ACCOUNT_BALANCE: Decimal("1.50"), cf.INCREASE_ELIGIBLE: "No"})) != base
    changed_dob = DesiredContact(
        patient_id="pat_1",
        first_name="Jane",
        phone="+14155550134",
        date_of_birth=date(1990, 1, 2),
        custom_fields={cf.ACCOUNT_BALANCE: Decimal("1.5")},
    )
    assert content_hash(changed_dob) != base


def test_text_and_number_with_same_digits_hash_differently() -> None:
    as_text = _contact({cf.INVOICE_NUMBER: "1.5"})
    as_money = _contact({cf.ACCOUNT_BALANCE: Decimal("1.5")})
    assert content_hash(as_text) != content_hash(as_money)


def test_hash_is_stable_across_runs_and_json_round_trips() -> None:
    desired = desired_contact(parse_patient(samples.patient()), practice_tz="America/Los_Angeles")
    again = desired_contact(parse_patient(samples.patient()), practice_tz="America/Los_Angeles")
    assert content_hash(desired) == content_hash(again)
    assert content_hash(DesiredContact.from_dict(desired.to_dict())) == content_hash(desired)


def test_a_cleared_field_changes_the_hash() -> None:
    # "Cherry has no value, clear it" and "Cherry's value is unknown, keep the CRM's" must not hash alike, or a
    # patient whose estimates answer turned readable again would be skipped as unchanged.
    kept = DesiredContact(patient_id="pat_1", phone="+14155550134")
    cleared = DesiredContact(patient_id="pat_1", phone="+14155550134", cleared=frozenset({cf.ACCOUNT_BALANCE}))
    assert content_hash(kept) != content_hash(cleared)


def test_cleared_survives_the_json_round_trip() -> None:
    desired = desired_contact(parse_patient(samples.patient(balance_available=None)), practice_tz="America/New_York")
    assert cf.ACCOUNT_BALANCE in desired.cleared
    again = DesiredContact.from_dict(desired.to_dict())
    assert again.cleared == desired.cleared and content_hash(again) == content_hash(desired)
