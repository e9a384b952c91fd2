"""The custom-field catalogue and the per-location provisioning plan."""

from __future__ import annotations

from typing import Any

import pytest

from cherry_sync.domain import custom_fields as cf
from cherry_sync.domain.custom_fields import (
    CATALOGUE,
    DataType,
    FieldsNotProvisioned,
    field_ids,
    plan_field_provisioning,
)

EXPECTED_CATALOGUE = [
    ("Cherry Account Status", "contact.cherry_account_status", "SINGLE_OPTIONS", ("Active", "Inactive")),
    ("Cherry Account Balance", "contact.cherry_account_balance", "MONETORY", ()),
    (
        "Cherry Balance Status",
        "contact.cherry_balance_status",
        "SINGLE_OPTIONS",
        ("Available", "Partially Used", "Fully Used", "Expired"),
    ),
    ("Cherry Application Completed Date", "contact.cherry_application_completed_date", "DATE", ()),
    ("Cherry Invoice Number", "contact.cherry_invoice_number", "TEXT", ()),
    ("Cherry Practice 6-Month Estimate", "contact.cherry_practice_6month_estimate", "LARGE_TEXT", ()),
    ("Cherry Practice 12-Month Estimate", "contact.cherry_practice_12month_estimate", "LARGE_TEXT", ()),
    ("Cherry Patient 6-Month Estimate", "contact.cherry_patient_6month_estimate", "LARGE_TEXT", ()),
    ("Cherry Patient 12-Month Estimate", "contact.cherry_patient_12month_estimate", "LARGE_TEXT", ()),
    ("Cherry Increase Eligible", "contact.cherry_increase_eligible", "SINGLE_OPTIONS", ("Yes", "No")),
    ("Cherry Extension Eligible", "contact.cherry_extension_eligible", "SINGLE_OPTIONS", ("Yes", "No")),
    ("Cherry Last Payment Date", "contact.cherry_last_payment_date", "DATE", ()),
    (
        "Cherry Payment Status",
        "contact.cherry_payment_status",
        "SINGLE_OPTIONS",
        ("Completed", "Refunded", "Partially Refunded", "Cancelled"),
    ),
    ("Cherry Payment Amount", "contact.cherry_payment_amount", "MONETORY", ()),
]


def _listing(**changes: dict[str, Any]) -> list[dict[str, Any]]:
    """The location's fields as GET /locations/{id}/customFields returns them, one per catalogue entry."""
    records = []
    for index, spec in enumerate(CATALOGUE):
        record: dict[str, Any] = {
            "id": f"cf_{index:02d}",
            "name": spec.name,
            "fieldKey": spec.field_key,
            "dataType": spec.data_type.value,
            "picklistOptions": list(spec.options),
            "model": "contact",
            "locationId": "crm_loc_1",
        }
        record.update(changes.get(spec.field_key, {}))
        records.append(record)
    return records


def test_catalogue_is_exactly_the_fourteen_fields() -> None:
    assert [(s.name, s.field_key, s.data_type.value, s.options) for s in CATALOGUE] == EXPECTED_CATALOGUE


def test_create_bodies() -> None:
    status = cf.FIELDS_BY_KEY[cf.ACCOUNT_STATUS].create_body()
    assert status == {
        "name": "Cherry Account Status",
        "dataType": "SINGLE_OPTIONS",
        "model": "contact",
        "fieldKey": "contact.cherry_account_status",
        "options": ["Active", "Inactive"],
    }
    balance = cf.FIELDS_BY_KEY[cf.ACCOUNT_BALANCE].create_body()
    assert balance == {
        "name": "Cherry Account Balance",
        "dataType": "MONETORY",
        "model": "contact",
        "fieldKey": "contact.cherry_account_balance",
    }


def test_empty_location_creates_everything() -> None:
    plan = plan_field_provisioning([])
    assert [s.field_key for s in plan.to_create] == [s.field_key for s in CATALOGUE]
    assert plan.create_bodies()[0]["fieldKey"] == "contact.cherry_account_status"
    assert plan.can_sync and not plan.is_complete
    created = {spec.field_key: f"new_{i}" for i, spec in enumerate(CATALOGUE)}
    assert plan.field_ids(created) == created


def test_all_present_needs_nothing() -> None:
    plan = plan_field_provisioning(_listing())
    assert plan.is_complete
    assert plan.field_ids() == {spec.field_key: f"cf_{i:02d}" for i, spec in enumerate(CATALOGUE)}
    assert field_ids(_listing()) == plan.field_ids()


def test_key_without_model_prefix_still_matches() -> None:
    listing = _listing(**{cf.INVOICE_NUMBER: {"fieldKey": "cherry_invoice_number"}})
    assert plan_field_provisioning(listing).is_complete


def test_wrong_type_is_a_conflict_and_blocks_the_practice() -> None:
    listing = _listing(**{cf.ACCOUNT_BALANCE: {"dataType": "TEXT"}})
    plan = plan_field_provisioning(listing)
    assert not plan.can_sync
    assert [(c.field_key, c.field_id, c.expected_type, c.actual_type) for c in plan.conflicts] == [
        (cf.ACCOUNT_BALANCE, "cf_01", DataType.MONETORY, "TEXT")
    ]
    assert cf.ACCOUNT_BALANCE not in plan.existing_ids
    with pytest.raises(FieldsNotProvisioned) as caught:
        plan.field_ids()
    assert caught.value.conflicting == (cf.ACCOUNT_BALANCE,)


def test_missing_options_are_added_keeping_name_and_existing_options() -> None:
    listing = _listing(
        **{cf.BALANCE_STATUS: {"name": "Cherry Balance (renamed)", "picklistOptions": ["Available", "Legacy"]}}
    )
    plan = plan_field_provisioning(listing)
    assert plan.can_sync and not plan.to_create
    [update] = plan.option_updates
    assert update.field_id == "cf_02"
    assert update.missing_options == ("Partially Used", "Fully Used", "Expired")
    assert update.body == {
        "name": "Cherry Balance (renamed)",
        "options": ["Available", "Legacy", "Partially Used", "Fully Used", "Expired"],
    }
    assert plan.field_ids()[cf.BALANCE_STATUS] == "cf_02"


def test_same_name_different_key_is_not_matched() -> None:
    listing = _listing(**{cf.ACCOUNT_STATUS: {"fieldKey": "contact.account_status_old", "id": "other"}})
    plan = plan_field_provisioning(listing)
    assert [s.field_key for s in plan.to_create] == [cf.ACCOUNT_STATUS]
    assert "other" not in plan.existing_ids.values()


def test_opportunity_fields_are_ignored() -> None:
    listing = [
        {
            "id": "opp1",
            "name": "Cherry Account Status",
            "fieldKey": "opportunity.cherry_account_status",
            "dataType": "SINGLE_OPTIONS",
            "model": "opportunity",
        }
    ]
    assert len(plan_field_provisioning(listing).to_create) == len(CATALOGUE)


def test_field_ids_on_unprovisioned_location_names_missing_keys() -> None:
    with pytest.raises(FieldsNotProvisioned) as caught:
        field_ids(_listing()[:-1])
    assert caught.value.missing == (cf.PAYMENT_AMOUNT,)
