"""Backfill: idempotent re-runs and dry runs that predict the real run."""

from __future__ import annotations

from cherry_sync.sync.practice_runs import backfill_practice
from tests.sync.conftest import SyncEnv, duplicates_by_contact_point


def test_rerun_makes_no_crm_writes(sync_env: SyncEnv) -> None:
    env = sync_env
    first = backfill_practice(env.make_ctx(0), page_size=25)
    assert first.patients.created > 0
    assert first.pages >= 2
    before = env.canonical(0)
    assert not duplicates_by_contact_point(env.contacts(0))

    env.crm.reset_stats()
    again = backfill_practice(env.make_ctx(0), page_size=25)

    assert env.crm_writes(0) == {}, "an unchanged re-run must not write to the CRM"
    assert again.patients.created == again.patients.updated == 0
    assert again.patients.unchanged == first.patients.created + first.patients.updated
    assert again.patients.rejected == first.patients.rejected
    assert again.resumed_from_page == 0  # the first backfill completed: the second starts over
    assert env.canonical(0) == before
    # Beyond the one-time setup, a re-run costs the field listing and the prefetch of contacts.
    assert set(again.api_calls) >= {"crm GET /locations/{id}/customFields", "crm POST /contacts/search"}
    assert sum(n for op, n in again.api_calls.items() if op.startswith("crm ")) <= 3


def test_dry_run_predicts_the_real_run(sync_env: SyncEnv) -> None:
    env = sync_env
    env.crm.reset_stats()
    dry = backfill_practice(env.make_ctx(0), page_size=25, dry_run=True)
    assert env.crm_writes(0) == {}, "a dry run must not write to the CRM"
    assert env.crm_state(0)["counts"]["contacts"] == 0
    assert env.store.open_rejections(env.slug(0)) == []
    assert env.store.get_checkpoint(env.slug(0), "active") is None

    real = backfill_practice(env.make_ctx(0), page_size=25)
    for name in ("read", "created", "updated", "unchanged", "rejected"):
        assert getattr(dry.patients, name) == getattr(real.patients, name), name
    assert dry.patients.rejects_by_reason == real.patients.rejects_by_reason
    assert dry.fields["created"] == real.fields["created"]
