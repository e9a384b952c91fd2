"""Rejected records: recorded once, bumped on repeat, resolved when fixed, counted by reason."""

from __future__ import annotations

from datetime import timedelta

from cherry_sync.store import Rejection
from cherry_sync.store.models import REJECTION, WARNING
from tests.store.conftest import T0, make_practice


def test_record_and_list(store, slug):
    store.record_rejections(
        slug,
        [
            Rejection("patient", "p1", "parse", "missing_id", "patient record has no id"),
            Rejection("patient", "p2", "map", "invalid_phone", "phone field unusable"),
        ],
    )

    open_ = store.open_rejections(slug)

    assert {(r.source_id, r.reason_code, r.attempts) for r in open_} == {
        ("p1", "missing_id", 1),
        ("p2", "invalid_phone", 1),
    }
    assert store.rejection_counts(slug) == {"missing_id": 1, "invalid_phone": 1}


def test_rejecting_again_bumps_attempts_and_reason(store, slug):
    clock = [T0]
    store._clock = lambda: clock[0]
    store.record_rejections(slug, [Rejection("patient", "p1", "map", "invalid_phone", "first")])
    clock[0] = T0 + timedelta(hours=1)

    store.record_rejections(slug, [Rejection("patient", "p1", "map", "invalid_email", "second")])

    [record] = store.open_rejections(slug)
    assert (record.attempts, record.reason_code, record.message) == (2, "invalid_email", "second")
    assert (record.first_seen_at, record.last_seen_at) == (T0, T0 + timedelta(hours=1))


def test_resolve_then_reject_again_reopens(store, slug):
    store.record_rejections(
        slug,
        [Rejection("patient", "p1", "map", "invalid_phone"), Rejection("patient", "p1", "crm_write", "crm_422")],
    )

    assert store.resolve_rejections(slug, "patient", ["p1"]) == 2
    assert store.open_rejections(slug) == []
    assert store.resolve_rejections(slug, "patient", ["p1"]) == 0

    store.record_rejections(slug, [Rejection("patient", "p1", "map", "invalid_phone")])
    [reopened] = store.open_rejections(slug)
    assert (reopened.stage, reopened.attempts, reopened.resolved_at) == ("map", 2, None)


def test_resolve_one_stage_only(store, slug):
    store.record_rejections(
        slug,
        [Rejection("payment", "L-1", "map", "bad_amount"), Rejection("payment", "L-1", "crm_write", "crm_500")],
    )

    store.resolve_rejections(slug, "payment", ["L-1"], stage="crm_write")

    assert [r.stage for r in store.open_rejections(slug)] == ["map"]


def test_counts_across_practices(store, slug):
    store.sync_practices([make_practice("lumen-medspa")])
    store.record_rejections(slug, [Rejection("patient", "p1", "map", "invalid_phone")])
    store.record_rejections("lumen-medspa", [Rejection("patient", "p9", "map", "invalid_phone")])

    assert store.rejection_counts() == {"invalid_phone": 2}
    assert store.rejection_counts("lumen-medspa") == {"invalid_phone": 1}
    assert len(store.open_rejections()) == 2


def test_messages_are_redacted_and_clipped(store, slug):
    store.record_rejections(
        slug, [Rejection("patient", "p1", "crm_write", "crm_400", "CRM said: jane@example.com is taken " + "x" * 900)]
    )

    [record] = store.open_rejections(slug)
    assert "jane@example.com" not in record.message
    assert len(record.message) <= 500


def test_warnings_are_kept_beside_rejections_and_counted_apart(store, slug):
    store.record_rejections(
        slug,
        [
            Rejection("patient", "p1", "match", "contact_conflict", "resolves to CRM contact c1"),
            Rejection("patient", "p2", "match", "shared_contact_point", "phone: held by CRM contact c1", WARNING),
        ],
    )

    assert {(r.source_id, r.kind) for r in store.open_rejections(slug)} == {("p1", REJECTION), ("p2", WARNING)}
    assert [r.source_id for r in store.open_rejections(slug, kind=WARNING)] == ["p2"]
    assert store.rejection_counts(slug) == {"contact_conflict": 1}
    assert store.warning_counts(slug) == {"shared_contact_point": 1}
    assert store.open_source_ids(slug, "patient", "shared_contact_point") == ["p2"]

    # Resolved like a rejection once the record syncs in full.
    store.resolve_rejections(slug, "patient", ["p2"])
    assert store.warning_counts(slug) == {}
    assert store.open_source_ids(slug, "patient", "shared_contact_point") == []


def test_a_rejection_that_becomes_a_warning_changes_kind(store, slug):
    store.record_rejections(slug, [Rejection("patient", "p1", "match", "contact_conflict")])
    store.record_rejections(slug, [Rejection("patient", "p1", "match", "shared_contact_point", "", WARNING)])

    [record] = store.open_rejections(slug)
    assert (record.kind, record.reason_code, record.attempts) == (WARNING, "shared_contact_point", 2)
    assert store.rejection_counts(slug) == {}
