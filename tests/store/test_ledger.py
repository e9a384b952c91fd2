"""Run ledger: one row per (run, DAG, practice, task); a retry reuses its row."""

from __future__ import annotations

import pytest

from cherry_sync.store import RunCounts


def test_start_and_finish(store):
    ledger_id = store.start_run("manual__2026-03-01", "cherry_sync_incremental", "glow-aesthetics", task_id="sync")

    store.finish_run(
        ledger_id,
        "success",
        RunCounts(read=10, created=2, updated=3, unchanged=4, rejected=1, api_calls=17),
        {"rejects_by_reason": {"invalid_phone": 1}, "api_calls": {"GET /patients": 12, "PUT /contacts": 5}},
    )

    entry = store.get_run(ledger_id)
    assert (entry.status, entry.task_id, entry.attempts) == ("success", "sync", 1)
    assert entry.counts == RunCounts(read=10, created=2, updated=3, unchanged=4, rejected=1, api_calls=17)
    assert entry.details["api_calls"]["GET /patients"] == 12
    assert entry.finished_at >= entry.started_at


def test_retry_reuses_the_row_and_resets_it(store):
    first = store.start_run("run-1", "dag", "glow-aesthetics", task_id="sync")
    store.finish_run(first, "failed", RunCounts(read=5, api_calls=3), {"error": "timeout"})

    retry = store.start_run("run-1", "dag", "glow-aesthetics", task_id="sync")

    entry = store.get_run(retry)
    assert retry == first
    assert (entry.status, entry.attempts, entry.finished_at) == ("running", 2, None)
    assert entry.counts == RunCounts()
    assert entry.details == {}


def test_run_level_rows_are_idempotent_too(store):
    first = store.start_run("run-1", "dag", "glow-aesthetics")
    again = store.start_run("run-1", "dag", "glow-aesthetics")

    assert first == again
    assert store.get_run(first).task_id is None


def test_rows_are_per_practice_and_task(store):
    ids = {
        store.start_run("run-1", "dag", "glow-aesthetics", task_id="a"),
        store.start_run("run-1", "dag", "glow-aesthetics", task_id="b"),
        store.start_run("run-1", "dag", "lumen-medspa", task_id="a"),
        store.start_run("run-2", "dag", "glow-aesthetics", task_id="a"),
    }

    assert len(ids) == 4
    assert {e.practice_slug for e in store.list_runs(run_id="run-1")} == {"glow-aesthetics", "lumen-medspa"}
    assert len(store.list_runs(slug="glow-aesthetics", dag_id="dag")) == 3


def test_finish_rejects_unknown_status_and_row(store):
    ledger_id = store.start_run("run-1", "dag", "glow-aesthetics")

    with pytest.raises(ValueError):
        store.finish_run(ledger_id, "done")
    with pytest.raises(ValueError):
        store.finish_run(ledger_id, "running")
    with pytest.raises(LookupError):
        store.finish_run(ledger_id + 1000, "success")
