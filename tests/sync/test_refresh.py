"""Refresh: at-least-once, unordered event delivery converges on what a fresh backfill would write."""

from __future__ import annotations

from datetime import datetime

from cherry_sync.sync.practice_runs import EVENTS_STREAM, backfill_practice, refresh_practice
from tests.sync.conftest import SyncEnv, assert_same_state, family_contact_points, without_shared

PAGE = 40


def test_duplicate_and_out_of_order_events_converge_on_a_fresh_backfill(sync_env_factory) -> None:
    env: SyncEnv = sync_env_factory()
    slug = env.slug(0)
    backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)
    start_cursor = env.store.get_cursor(slug, EVENTS_STREAM)
    assert start_cursor
    shared = family_contact_points(env.cherry_patients(0))

    advanced = env.cherry.advance(
        minutes=180,
        new_patients=6,
        refreshed=30,
        payments=5,
        refunds=2,
        cancellations=1,
        pings=3,
        duplicate_share=0.3,
        out_of_order_share=0.5,
        practice_id=env.cherry.practices[0].id,
    )
    made = advanced["practices"][env.cherry.practices[0].id]
    assert made["duplicates"] > 0 and made["out_of_order"] > 0

    summary = refresh_practice(env.make_ctx(0), page_size=PAGE)
    events = summary.events
    assert events.events == made["events"]
    assert events.pings == made["pings"] == 3
    assert events.duplicates >= made["duplicates"]
    assert "test.ping" in events.by_type
    assert summary.patients.stale > 0, "the older half of an out-of-order pair must be dropped"
    assert summary.patients.rejected == 0 or set(summary.patients.rejects_by_reason) <= {
        "contact_conflict",
        "no_contact_point",
    }
    cursor = env.store.get_cursor(slug, EVENTS_STREAM)
    assert cursor and cursor != start_cursor

    # An older version never overwrote a newer one: the store holds exactly what Cherry serves now.
    served = {row["id"]: row for row in env.cherry_patients(0)}
    for state in env.store.iter_patient_states(slug):
        assert state.source_updated_at == _ts(served[state.patient_id]["updated_at"]), state.patient_id

    # The CRM holds what a fresh backfill of the same source writes into an empty location.
    fresh = sync_env_factory(store="sqlite", cherry_of=env)
    backfill_practice(fresh.make_ctx(0), scope="all", page_size=PAGE)
    # An e-mail or phone that family members share goes to whoever is synced first (the other's contact is
    # written without it), and the feed reorders patients, so family contacts are compared in test_conflicts.
    shared |= family_contact_points(list(served.values()))
    actual, expected = without_shared(env.canonical(0), shared), without_shared(fresh.canonical(0), shared)
    assert len(actual["contacts"]) > 40
    assert_same_state(actual, expected)

    # Nothing left to do: a second refresh reads the feed's tail and writes nothing.
    env.crm.reset_stats()
    again = refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert env.crm_writes(0) == {}
    assert again.events.events == 0
    assert env.store.get_cursor(slug, EVENTS_STREAM) == cursor


def test_replayed_events_are_not_reapplied(sync_env: SyncEnv) -> None:
    """Events already processed are dropped by id, so re-reading the feed from an older cursor is harmless."""
    env = sync_env
    slug = env.slug(0)
    backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)
    start_cursor = env.store.get_cursor(slug, EVENTS_STREAM)
    env.cherry.advance(minutes=60, new_patients=3, refreshed=10, payments=2, practice_id=env.cherry.practices[0].id)
    first = refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert first.patients.created + first.patients.updated > 0
    before = env.canonical(0)

    env.store.set_cursor(slug, EVENTS_STREAM, start_cursor)
    env.crm.reset_stats()
    replay = refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert replay.events.duplicates == replay.events.events == first.events.events
    assert env.crm_writes(0) == {}
    assert env.canonical(0) == before


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_dry_run_refresh_predicts_the_real_refresh(sync_env: SyncEnv) -> None:
    env = sync_env
    slug = env.slug(0)
    backfill_practice(
        env.make_ctx(0, opportunity={"pipeline": "Patient Journey", "stage": "Financing"}), page_size=PAGE
    )
    cursor = env.store.get_cursor(slug, EVENTS_STREAM)
    env.cherry.advance(
        minutes=90, new_patients=4, refreshed=12, payments=4, refunds=1, pings=2, practice_id=env.cherry.practices[0].id
    )

    env.crm.reset_stats()
    dry = refresh_practice(env.make_ctx(0), page_size=PAGE, dry_run=True)
    assert env.crm_writes(0) == {}
    assert env.store.get_cursor(slug, EVENTS_STREAM) == cursor

    real = refresh_practice(env.make_ctx(0), page_size=PAGE)
    for name in ("read", "created", "updated", "unchanged", "stale", "rejected"):
        assert getattr(dry.patients, name) == getattr(real.patients, name), name
    for name in ("events", "duplicates", "pings", "stale_payments", "rejected", "by_type"):
        assert getattr(dry.events, name) == getattr(real.events, name), name
    assert real.patients.updated > 0 and real.events.payments_applied > 0


def test_refresh_costs_about_one_crm_call_per_contact_written(sync_env_factory) -> None:
    """No read before an update (the store knows what was written), one search for a batch's new patients."""
    env: SyncEnv = sync_env_factory()
    backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)
    env.cherry.advance(minutes=120, new_patients=8, refreshed=40, practice_id=env.cherry.practices[0].id)
    env.crm.reset_stats()

    summary = refresh_practice(env.make_ctx(0), page_size=PAGE)

    written = summary.patients.created + summary.patients.updated
    assert summary.patients.created >= 5 and summary.patients.updated >= 5
    calls = env.endpoint_counts(0)
    assert calls.get("GET /contacts/{contactId}", 0) == 0, "an update is planned against the stored contact"
    contact_writes = calls.get("POST /contacts/upsert", 0) + calls.get("PUT /contacts/{contactId}", 0)
    assert contact_writes == written
    # One search per batch of new patients (plus the rare duplicate lookup for a point the search did not cover,
    # e.g. a patient's changed e-mail); the location and field checks are made once per run.
    lookups = calls.get("POST /contacts/search", 0) + calls.get("GET /contacts/search/duplicate", 0)
    assert lookups <= 1 + summary.patients.updated // 10, calls
    setup = calls.get("GET /locations/{locationId}", 0) + calls.get("GET /locations/{locationId}/customFields", 0)
    assert sum(calls.values()) - setup <= 1.15 * written, calls

    # And what it wrote equals what a fresh backfill of the same source writes.
    fresh = sync_env_factory(store="sqlite", cherry_of=env)
    backfill_practice(fresh.make_ctx(0), scope="all", page_size=PAGE)
    shared = family_contact_points(env.cherry_patients(0))
    assert_same_state(without_shared(env.canonical(0), shared), without_shared(fresh.canonical(0), shared))
