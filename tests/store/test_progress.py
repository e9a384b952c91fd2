"""Cursors per stream and at-least-once event dedupe."""

from __future__ import annotations

from datetime import timedelta

from tests.store.conftest import T0, make_practice


def test_cursor_round_trip(store, slug):
    assert store.get_cursor(slug, "events") is None

    store.set_cursor(slug, "events", "cur-1")
    store.set_cursor(slug, "events", "cur-2")
    store.set_cursor(slug, "payments", "pay-9")

    assert store.get_cursor(slug, "events") == "cur-2"
    assert store.get_cursor(slug, "payments") == "pay-9"


def test_cursors_are_per_practice(store, slug):
    store.sync_practices([make_practice("lumen-medspa")])
    store.set_cursor(slug, "events", "a")

    assert store.get_cursor("lumen-medspa", "events") is None


def test_event_dedupe(store, slug):
    assert store.filter_new_events(slug, ["e1", "e2", "e3"]) == {"e1", "e2", "e3"}

    assert store.mark_events_processed(slug, ["e1", "e2", "e1"]) == 2
    assert store.mark_events_processed(slug, ["e2", "e4"]) == 1

    assert store.filter_new_events(slug, ["e1", "e2", "e3", "e4", "e5"]) == {"e3", "e5"}


def test_event_ids_are_per_practice(store, slug):
    store.sync_practices([make_practice("lumen-medspa")])
    store.mark_events_processed(slug, ["e1"])

    assert store.filter_new_events("lumen-medspa", ["e1"]) == {"e1"}


def test_prune_processed_events(store, slug):
    clock = [T0]
    store._clock = lambda: clock[0]
    store.mark_events_processed(slug, ["old"])
    clock[0] = T0 + timedelta(days=30)
    store.mark_events_processed(slug, ["new"])

    assert store.prune_processed_events(older_than=T0 + timedelta(days=7)) == 1
    assert store.filter_new_events(slug, ["old", "new"]) == {"old"}
