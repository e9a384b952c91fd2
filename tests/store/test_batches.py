"""Batches: 10,000 rows go through in a few statements and come back exactly (correctness only, no timing)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from cherry_sync.store import PatientSnapshot
from tests.store.conftest import T0

N = 10_000


def _rows(minutes: int, status: str) -> list[PatientSnapshot]:
    return [
        PatientSnapshot(
            patient_id=f"pt-{i:05d}",
            snapshot={"id": f"pt-{i:05d}", "status": status},
            source_updated_at=T0 + timedelta(minutes=minutes),
            account_status=status,
            balance_available=Decimal(i) / 4,
        )
        for i in range(N)
    ]


def test_ten_thousand_upserts(store, slug):
    assert len(store.upsert_patient_snapshots(slug, _rows(0, "active"))) == N

    # Half newer, half older than what is stored: exactly the newer half applies.
    mixed = [row for row in _rows(5, "inactive")[: N // 2]] + [row for row in _rows(-5, "stale")[N // 2 :]]
    applied = store.upsert_patient_snapshots(slug, mixed)

    assert applied == {f"pt-{i:05d}" for i in range(N // 2)}
    states = store.get_patient_states(slug, [f"pt-{i:05d}" for i in range(N)])
    assert len(states) == N == store.count_patients(slug)
    assert sum(1 for s in states.values() if s.account_status == "inactive") == N // 2
    assert sum(1 for s in states.values() if s.account_status == "stale") == 0
    assert states["pt-09999"].balance_available == Decimal("2499.75")

    written = store.mark_written(slug, [(f"pt-{i:05d}", f"c-{i}", f"h-{i}") for i in range(N)])
    assert written == N
    assert store.find_patient_by_contact(slug, "c-4242").patient_id == "pt-04242"
    assert sum(1 for _ in store.iter_patient_states(slug)) == N


def test_ten_thousand_events(store, slug):
    ids = [f"evt-{i}" for i in range(N)]

    assert store.mark_events_processed(slug, ids[: N // 2]) == N // 2
    assert store.filter_new_events(slug, ids) == set(ids[N // 2 :])
