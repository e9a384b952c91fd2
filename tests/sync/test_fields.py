"""Custom-field provisioning against real locations: conflicts stop one practice, re-runs never duplicate."""

from __future__ import annotations

import pytest

from cherry_sync.domain import CATALOGUE
from cherry_sync.sync.fields import FieldConflictError
from cherry_sync.sync.practice_runs import backfill_practice, refresh_practice
from tests.sync.conftest import SyncEnv

PAGE = 50


def _create_field(env: SyncEnv, index: int, **body) -> dict:
    response = env.crm.client(index).post(f"/locations/{env.location_id(index)}/customFields", json=body)
    assert response.status_code == 201, response.text
    return response.json()["customField"]


def test_wrong_typed_field_stops_only_that_practice(sync_env: SyncEnv) -> None:
    env = sync_env
    _create_field(env, 0, name="Balance (legacy)", dataType="TEXT", fieldKey="contact.cherry_account_balance")

    with pytest.raises(FieldConflictError) as caught:
        backfill_practice(env.make_ctx(0), page_size=PAGE)
    assert caught.value.reason_code == "custom_field_conflict"
    assert "contact.cherry_account_balance" in str(caught.value)
    state = env.crm_state(0)
    assert state["counts"]["customFields"] == 1 and state["counts"]["contacts"] == 0
    assert env.store.get_checkpoint(env.slug(0), "active") is None
    with pytest.raises(FieldConflictError):
        refresh_practice(env.make_ctx(0), page_size=PAGE)

    # The other practice is not affected.
    other = backfill_practice(env.make_ctx(1), page_size=PAGE)
    assert other.patients.created > 0
    assert env.crm_state(1)["counts"]["customFields"] == len(CATALOGUE)


def test_provisioning_completes_existing_fields_and_never_duplicates(sync_env: SyncEnv) -> None:
    env = sync_env
    # Staff made two of ours by hand: one renamed (same key), one option field lacking an option.
    _create_field(
        env,
        0,
        name="Cherry status (renamed)",
        dataType="SINGLE_OPTIONS",
        fieldKey="contact.cherry_account_status",
        options=["Active"],
    )
    _create_field(env, 0, name="Cherry Invoice Number", dataType="TEXT", fieldKey="cherry_invoice_number")
    # And one of their own with a name like ours but another key: not ours, left alone.
    _create_field(env, 0, name="Cherry Account Balance", dataType="NUMERICAL", fieldKey="contact.cherry_balance_old")

    env.crm.reset_stats()
    first = backfill_practice(env.make_ctx(0), page_size=PAGE)
    assert len(first.fields["created"]) == len(CATALOGUE) - 2
    assert first.fields["options_added"] == ["contact.cherry_account_status"]
    assert env.crm_writes(0)["POST /locations/{locationId}/customFields"] == len(CATALOGUE) - 2

    fields = env.crm_state(0)["customFields"]
    keys = [f["fieldKey"] for f in fields]
    assert len(keys) == len(set(keys)) == len(CATALOGUE) + 1
    status = next(f for f in fields if f["fieldKey"] == "contact.cherry_account_status")
    assert status["name"] == "Cherry status (renamed)"
    assert status["picklistOptions"] == ["Active", "Inactive"]

    for run in (backfill_practice, refresh_practice):
        env.crm.reset_stats()
        again = run(env.make_ctx(0), page_size=PAGE)
        assert again.fields == {"created": [], "options_added": [], "fields": len(CATALOGUE)}
        assert env.crm_writes(0) == {}
    assert len(env.crm_state(0)["customFields"]) == len(CATALOGUE) + 1


@pytest.mark.parametrize("run", [backfill_practice, refresh_practice])
def test_deleted_field_is_recreated_and_every_synced_contact_rewritten(sync_env: SyncEnv, run) -> None:
    """A person deleted one of our fields in the CRM (its values went with it): the next run, backfill or refresh,
    re-creates it by its key and writes the values again on every contact synced before (inactive ones too, which
    an active-scope backfill does not page through), then a re-run writes nothing."""
    env = sync_env
    backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)
    before = env.canonical(0)
    deleted = "contact.cherry_account_status"
    assert any(deleted in c["custom"] for c in before["contacts"])
    field_id = next(f["id"] for f in env.crm_state(0)["customFields"] if f["fieldKey"] == deleted)
    assert env.crm.client(0).delete(f"/locations/{env.location_id(0)}/customFields/{field_id}").status_code == 200
    assert not any(deleted in c["custom"] for c in env.canonical(0)["contacts"])

    healed = run(env.make_ctx(0), page_size=PAGE)

    assert healed.fields["recreated"] == [deleted]
    assert healed.fields["contacts_rewritten"] == sum(1 for c in before["contacts"] if deleted in c["custom"])
    assert env.canonical(0) == before
    env.crm.reset_stats()
    again = run(env.make_ctx(0), page_size=PAGE)
    assert env.crm_writes(0) == {} and "recreated" not in again.fields


def test_a_heal_cut_short_is_finished_by_the_next_run(sync_env: SyncEnv) -> None:
    """The rewrite after a re-created field is interrupted (the location's daily budget runs out part-way): the
    field exists now, so nothing is created next time, yet the next run still finishes rewriting every contact."""
    from cherry_sync.hooks.errors import DailyBudgetExhaustedError

    env = sync_env
    backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)
    before = env.canonical(0)
    deleted = "contact.cherry_account_balance"
    field_id = next(f["id"] for f in env.crm_state(0)["customFields"] if f["fieldKey"] == deleted)
    assert env.crm.client(0).delete(f"/locations/{env.location_id(0)}/customFields/{field_id}").status_code == 200
    # An override restarts the location's counts: twelve more requests today, then the budget is spent.
    env.crm.override_rate_limits(env.location_id(0), daily_limit=12)

    with pytest.raises(DailyBudgetExhaustedError):
        refresh_practice(env.make_ctx(0), page_size=PAGE)
    partly = env.canonical(0)
    assert partly != before and any(deleted in c["custom"] for c in partly["contacts"])

    env.crm.clear_rate_limit_override(env.location_id(0))
    finished = refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert finished.fields["recreated"] == [] and finished.fields["contacts_rewritten"] > 0
    assert env.canonical(0) == before
    env.crm.reset_stats()
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert env.crm_writes(0) == {}
