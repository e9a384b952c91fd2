"""Per-record outcome history: batched append, look-up by either id, a run's rows streamed, pruning by age."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cherry_sync.store import RecordOutcome, SyncStore
from cherry_sync.store import outcomes as outcomes_module
from tests.store.conftest import T0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self):
        return self.now


def outcome(source_id: str, **overrides) -> RecordOutcome:
    fields = {
        "dag_id": "cherry_refresh",
        "run_id": "scheduled__2026-03-01T12:00:00+00:00",
        "task_id": "practice.apply_events",
        "practice_slug": "glow-aesthetics",
        "entity": "patient",
        "source_id": source_id,
        "operation": "update",
        "result": "ok",
        "crm_id": f"c_{source_id}",
    }
    return RecordOutcome(**(fields | overrides))


@pytest.fixture
def clocked(store) -> tuple[SyncStore, Clock]:
    clock = Clock()
    return SyncStore(store.engine, clock=clock), clock


def test_record_and_look_up_by_either_id_newest_first(clocked):
    store, clock = clocked
    store.record_outcomes([outcome("pat_1", operation="create", trace_id="5b0c2f9e-1d7c-4a35-9d7e-3f1f0f6d8a11")])
    clock.now = T0 + timedelta(hours=1)
    store.record_outcomes(
        [
            outcome("pat_1", operation="unchanged", payload_hash="ab" * 32),
            outcome("pat_2"),
            outcome("pat_1", practice_slug="other-practice", crm_id="c_other"),
        ]
    )

    by_source = store.record_history("glow-aesthetics", source_id="pat_1")
    assert [(o.operation, o.recorded_at) for o in by_source] == [("unchanged", clock.now), ("create", T0)]
    assert by_source[1].trace_id == "5b0c2f9e-1d7c-4a35-9d7e-3f1f0f6d8a11"
    assert by_source[0].payload_hash == "ab" * 32
    assert all(o.id is not None for o in by_source)
    by_crm = store.record_history("glow-aesthetics", crm_id="c_pat_1")
    assert [o.id for o in by_crm] == [o.id for o in by_source]
    assert {o.practice_slug for o in store.record_history(None, source_id="pat_1")} == {
        "glow-aesthetics",
        "other-practice",
    }
    assert len(store.record_history(None, source_id="pat_1", limit=1)) == 1
    with pytest.raises(ValueError):
        store.record_history("glow-aesthetics")
    with pytest.raises(ValueError):
        store.record_history("glow-aesthetics", source_id="pat_1", crm_id="c_pat_1")


def test_closed_sets_and_opaque_ids_are_enforced_before_anything_is_written(store):
    bad = [
        outcome("pat_1", operation="merge"),
        outcome("pat_1", result="fine"),
        outcome("pat_1", reason_code="because"),
        outcome("jane.doe@example.com"),
        outcome("pat_1", crm_id="Jane Doe"),
        outcome("pat_1", payload_hash="not a hash"),
        outcome("pat_1", entity="Patient Name"),
    ]
    for row in bad:
        with pytest.raises(ValueError) as info:
            store.record_outcomes([outcome("pat_ok"), row])
        assert "jane" not in str(info.value).lower()
    assert store.record_history(None, source_id="pat_ok") == []
    # A trace id that does not look like one is dropped, the row kept.
    store.record_outcomes([outcome("pat_1", trace_id="call me at 555 0100", reason_code="crm_rejected")])
    (row,) = store.record_history(None, source_id="pat_1")
    assert (row.trace_id, row.reason_code) == (None, "crm_rejected")


def test_run_outcomes_streams_one_run_of_one_practice_in_order(clocked, monkeypatch):
    store, _ = clocked
    monkeypatch.setattr(outcomes_module, "STREAM_BATCH", 7)
    store.record_outcomes(outcome(f"pat_{i:03d}") for i in range(30))
    store.record_outcomes([outcome("pat_x", run_id="another-run"), outcome("pat_y", practice_slug="other")])

    streamed = list(store.run_outcomes("scheduled__2026-03-01T12:00:00+00:00", "glow-aesthetics"))
    assert [o.source_id for o in streamed] == [f"pat_{i:03d}" for i in range(30)]
    assert list(store.run_outcomes("no-such-run", "glow-aesthetics")) == []


def test_record_outcomes_batches_large_inputs(store):
    assert store.record_outcomes(outcome(f"pat_{i}") for i in range(2_345)) == 2_345
    assert sum(1 for _ in store.run_outcomes("scheduled__2026-03-01T12:00:00+00:00", "glow-aesthetics")) == 2_345


def test_prune_deletes_only_older_rows_in_batches_and_dry_run_counts(clocked):
    store, clock = clocked
    for day in range(20):
        clock.now = T0 + timedelta(days=day)
        store.record_outcomes([outcome(f"pat_{day}_{i}") for i in range(5)])
    cutoff = T0 + timedelta(days=6)

    assert store.prune_outcomes(cutoff, dry_run=True) == 30
    assert store.prune_outcomes(cutoff, batch=7) == 30
    assert store.prune_outcomes(cutoff) == 0
    left = list(store.run_outcomes("scheduled__2026-03-01T12:00:00+00:00", "glow-aesthetics"))
    assert len(left) == 70
    assert min(o.recorded_at for o in left) == cutoff
    with pytest.raises(ValueError):
        store.prune_outcomes(cutoff, batch=0)
