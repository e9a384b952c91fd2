"""Backfill checkpoints: resume an unfinished backfill, start a finished one afresh."""

from __future__ import annotations

import pytest


def test_no_checkpoint_yet(store, slug):
    assert store.get_checkpoint(slug, "active") is None


def test_begin_save_resume(store, slug):
    fresh = store.begin_checkpoint(slug, "active")
    assert (fresh.cursor, fresh.pages_done, fresh.patients_done, fresh.completed) == (None, 0, 0, False)

    store.save_checkpoint(slug, "active", "page-3", pages_done=3, patients_done=300)
    resumed = store.begin_checkpoint(slug, "active")

    assert (resumed.cursor, resumed.pages_done, resumed.patients_done) == ("page-3", 3, 300)
    assert resumed.started_at == fresh.started_at


def test_completed_backfill_restarts_fresh(store, slug):
    store.save_checkpoint(slug, "all", "page-9", pages_done=9, patients_done=900)
    done = store.complete_checkpoint(slug, "all")
    assert done.completed and done.completed_at.tzinfo is not None

    again = store.begin_checkpoint(slug, "all")

    assert (again.cursor, again.pages_done, again.patients_done, again.completed_at) == (None, 0, 0, None)


def test_scopes_are_independent(store, slug):
    store.save_checkpoint(slug, "active", "a-2", 2, 20)
    store.save_checkpoint(slug, "all", "b-5", 5, 50)

    assert store.get_checkpoint(slug, "active").cursor == "a-2"
    assert store.get_checkpoint(slug, "all").cursor == "b-5"


def test_reset_starts_over(store, slug):
    store.save_checkpoint(slug, "active", "a-2", 2, 20)

    reset = store.reset_checkpoint(slug, "active")

    assert (reset.cursor, reset.pages_done, reset.patients_done) == (None, 0, 0)


def test_complete_without_checkpoint_fails(store, slug):
    with pytest.raises(LookupError):
        store.complete_checkpoint(slug, "active")
