"""Change hashing: equal content gives an equal hash, whatever the construction order or Decimal spelling."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from cherry_sync.domain import custom_fields as cf
from cherry_sync.domain.cherry_records import parse_patient
from cherry_sync.domain.desired_contact import DesiredContact
from cherry_sync.domain.hashing import HASH_VERSION, canonical_decimal, content_hash
from cherry_sync.domain.mapping import desired_contact
from tests.domain import samples


def _contact(custom: dict) -> DesiredContact:
    return DesiredContact(patient_id="pat_1", first_name="Jane", phone="+14155550134", custom_fields=custom)


def test_hash_is_sha256_hex() -> None:
    digest = content_hash(_contact({}))
    assert len(digest) == 64 and int(digest, 16) >= 0


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
    changed_dob = DesiredContact(patient_id="pat_1", first_name="Jane", phone="+14155550134",
                                 date_of_birth=date(1990, 1, 2), custom_fields={cf.ACCOUNT_BALANCE: Decimal("1.5")})
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
    assert HASH_VERSION  # a bump invalidates every stored hash on purpose
