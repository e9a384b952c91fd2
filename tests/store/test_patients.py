"""Patient snapshots: newer wins (in SQL), batch reads, CRM write bookkeeping, lookups by contact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cherry_sync.store import PatientSnapshot
from tests.store.conftest import T0, patient


def test_insert_then_read_back(store, slug):
    applied = store.upsert_patient_snapshots(slug, [patient("p1"), patient("p2", balance="6000.50")])

    states = store.get_patient_states(slug, ["p1", "p2", "unknown"])

    assert applied == {"p1", "p2"}
    assert set(states) == {"p1", "p2"}
    p2 = states["p2"]
    assert p2.snapshot == {"id": "p2", "status": "active", "version": 0}
    assert p2.balance_available == Decimal("6000.50")
    assert p2.source_updated_at == T0
    assert p2.source_updated_at.tzinfo is not None
    assert p2.crm_contact_id is None and p2.written_hash is None
    assert p2.first_seen_at.tzinfo is not None


def test_newer_snapshot_replaces_older(store, slug):
    store.upsert_patient_snapshots(slug, [patient("p1", minutes=0, status="active")])

    applied = store.upsert_patient_snapshots(slug, [patient("p1", minutes=5, status="inactive")])

    state = store.get_patient_states(slug, ["p1"])["p1"]
    assert applied == {"p1"}
    assert state.account_status == "inactive"
    assert state.snapshot["version"] == 5
    assert state.source_updated_at == T0 + timedelta(minutes=5)


def test_older_snapshot_never_overwrites_newer(store, slug):
    store.upsert_patient_snapshots(slug, [patient("p1", minutes=10, status="inactive", balance="0")])

    applied = store.upsert_patient_snapshots(
        slug, [patient("p1", minutes=3, status="active", balance="9000"), patient("p2", minutes=1)]
    )

    state = store.get_patient_states(slug, ["p1"])["p1"]
    assert applied == {"p2"}
    assert state.account_status == "inactive"
    assert state.balance_available == Decimal("0.00")
    assert state.snapshot["version"] == 10


def test_stale_snapshot_still_counts_as_seen(store, slug):
    clock = [T0]
    store._clock = lambda: clock[0]
    store.upsert_patient_snapshots(slug, [patient("p1", minutes=10)])
    clock[0] = T0 + timedelta(days=1)

    store.upsert_patient_snapshots(slug, [patient("p1", minutes=3)])

    state = store.get_patient_states(slug, ["p1"])["p1"]
    assert state.last_seen_at == T0 + timedelta(days=1)
    assert state.first_seen_at == T0
    assert state.snapshot["version"] == 10


def test_same_timestamp_is_reapplied(store, slug):
    store.upsert_patient_snapshots(slug, [patient("p1", minutes=5)])

    assert store.upsert_patient_snapshots(slug, [patient("p1", minutes=5)]) == {"p1"}


def test_newest_wins_within_one_batch(store, slug):
    applied = store.upsert_patient_snapshots(
        slug, [patient("p1", minutes=7, status="late"), patient("p1", minutes=2, status="early")]
    )

    assert applied == {"p1"}
    assert store.get_patient_states(slug, ["p1"])["p1"].account_status == "late"


def test_other_timezones_compare_by_instant(store, slug):
    # 12:00 UTC vs 08:00 in New York (12:00 UTC + 1 minute): the later instant wins, not the later wall clock.
    from zoneinfo import ZoneInfo

    later = datetime(2026, 3, 1, 7, 1, tzinfo=ZoneInfo("America/New_York"))
    store.upsert_patient_snapshots(slug, [PatientSnapshot("p1", {"v": "later"}, later, "active", None)])

    applied = store.upsert_patient_snapshots(slug, [PatientSnapshot("p1", {"v": "earlier"}, T0, "active", None)])

    assert applied == set()
    assert store.get_patient_states(slug, ["p1"])["p1"].snapshot == {"v": "later"}


def test_snapshot_with_decimals_and_dates_is_stored_as_json_text(store, slug):
    row = PatientSnapshot("p1", {"balance": Decimal("12.30"), "since": datetime(2026, 1, 2, tzinfo=UTC)}, T0)

    store.upsert_patient_snapshots(slug, [row])

    assert store.get_patient_states(slug, ["p1"])["p1"].snapshot == {
        "balance": "12.30",
        "since": "2026-01-02T00:00:00+00:00",
    }


def test_mark_written_and_find_by_contact(store, slug):
    store.upsert_patient_snapshots(slug, [patient("p1"), patient("p2")])

    updated = store.mark_written(
        slug, [("p1", "contact-1", "hash-1"), ("p2", "contact-2", "hash-2"), ("ghost", "c", "h")]
    )

    assert updated == 2
    found = store.find_patient_by_contact(slug, "contact-2")
    assert found.patient_id == "p2" and found.written_hash == "hash-2"
    assert found.written_at is not None
    assert store.find_patient_by_contact(slug, "contact-404") is None


def test_new_snapshot_keeps_crm_bookkeeping(store, slug):
    store.upsert_patient_snapshots(slug, [patient("p1", minutes=0)])
    store.mark_written(slug, [("p1", "contact-1", "hash-1")])

    store.upsert_patient_snapshots(slug, [patient("p1", minutes=1, status="inactive")])

    state = store.get_patient_states(slug, ["p1"])["p1"]
    assert (state.crm_contact_id, state.written_hash, state.account_status) == ("contact-1", "hash-1", "inactive")


def test_practices_are_isolated(store, slug):
    from tests.store.conftest import make_practice

    store.sync_practices([make_practice("lumen-medspa")])
    store.upsert_patient_snapshots(slug, [patient("p1", status="active")])
    store.upsert_patient_snapshots("lumen-medspa", [patient("p1", status="inactive")])

    assert store.get_patient_states(slug, ["p1"])["p1"].account_status == "active"
    assert store.get_patient_states("lumen-medspa", ["p1"])["p1"].account_status == "inactive"
    assert store.count_patients(slug) == 1


def test_iterate_all_patients_in_pages(store, slug):
    store.upsert_patient_snapshots(slug, [patient(f"p{i:03d}") for i in range(25)])

    seen = [state.patient_id for state in store.iter_patient_states(slug, batch_size=10)]

    assert seen == [f"p{i:03d}" for i in range(25)]


def test_empty_inputs_do_nothing(store, slug):
    assert store.upsert_patient_snapshots(slug, []) == set()
    assert store.get_patient_states(slug, []) == {}
    assert store.mark_written(slug, []) == 0


def test_mark_written_keeps_what_the_contact_holds(store, slug):
    store.upsert_patient_snapshots(slug, [patient("p1"), patient("p2")])
    held = {"id": "contact-1", "firstName": "A", "customFields": [{"id": "f1", "value": 12.5}]}
    store.mark_written(slug, [("p1", "contact-1", "hash-1", held), ("p2", "contact-2", "hash-2")])
    states = store.get_patient_states(slug, ["p1", "p2"])
    assert states["p1"].written_contact == held
    assert states["p2"].written_contact is None
    store.mark_written(slug, [("p1", "contact-1", "hash-3", None)])
    assert store.get_patient_states(slug, ["p1"])["p1"].written_contact is None
