"""Payments: newer wins, applied state bookkeeping, reads by id and by patient."""

from __future__ import annotations

from decimal import Decimal

from tests.store.conftest import payment


def test_upsert_and_read(store, slug):
    applied = store.upsert_payments(slug, [payment("L-1", "p1"), payment("L-2", "p1", minutes=1), payment("L-3", "p2")])

    states = store.get_payments(slug, ["L-1", "L-3", "L-404"])

    assert applied == {"L-1", "L-2", "L-3"}
    assert set(states) == {"L-1", "L-3"}
    assert states["L-1"].amount == Decimal("2500.00")
    assert states["L-1"].refund_amount == Decimal("0.00")
    assert states["L-1"].applied_status is None
    assert [p.payment_id for p in store.get_patient_payments(slug, "p1")] == ["L-1", "L-2"]


def test_older_payment_state_never_overwrites_newer(store, slug):
    store.upsert_payments(slug, [payment("L-1", minutes=10, status="REFUNDED")])

    applied = store.upsert_payments(slug, [payment("L-1", minutes=1, status="FUNDED")])

    assert applied == set()
    assert store.get_payments(slug, ["L-1"])["L-1"].status == "REFUNDED"


def test_newer_payment_state_applies(store, slug):
    store.upsert_payments(slug, [payment("L-1", minutes=1, status="FUNDED")])

    assert store.upsert_payments(slug, [payment("L-1", minutes=2, status="REFUNDED")]) == {"L-1"}
    assert store.get_payments(slug, ["L-1"])["L-1"].status == "REFUNDED"


def test_mark_payment_applied_keeps_opportunity_when_not_given(store, slug):
    store.upsert_payments(slug, [payment("L-1"), payment("L-2")])

    assert store.mark_payment_applied(slug, [("L-1", "FUNDED", "opp-1"), ("L-2", "FUNDED", None)]) == 2
    store.mark_payment_applied(slug, [("L-1", "REFUNDED", None)])

    states = store.get_payments(slug, ["L-1", "L-2"])
    assert (states["L-1"].applied_status, states["L-1"].crm_opportunity_id) == ("REFUNDED", "opp-1")
    assert states["L-1"].applied_at is not None
    assert (states["L-2"].applied_status, states["L-2"].crm_opportunity_id) == ("FUNDED", None)


def test_new_payment_snapshot_keeps_applied_state(store, slug):
    store.upsert_payments(slug, [payment("L-1", minutes=0)])
    store.mark_payment_applied(slug, [("L-1", "FUNDED", "opp-1")])

    store.upsert_payments(slug, [payment("L-1", minutes=5, status="REFUNDED")])

    state = store.get_payments(slug, ["L-1"])["L-1"]
    assert (state.status, state.applied_status, state.crm_opportunity_id) == ("REFUNDED", "FUNDED", "opp-1")


def test_opportunity_ids_by_patient_come_from_the_latest_payment_applied_in_that_state(store, slug):
    store.upsert_payments(slug, [payment("L-1", "p1"), payment("L-2", "p1", minutes=1), payment("L-3", "p2")])
    store.upsert_payments(slug, [payment("L-4", "p3"), payment("L-5", "p4")])
    store.mark_payment_applied(slug, [("L-1", "FUNDED", "opp-old"), ("L-3", "FUNDED", "opp-3")])
    since = store.get_payments(slug, ["L-1"])["L-1"].applied_at
    store.mark_payment_applied(slug, [("L-2", "FUNDED", "opp-new")])
    store.mark_payment_applied(slug, [("L-4", "REFUNDED", "opp-4")])  # another state: not counted

    found = store.get_opportunity_ids(
        slug, ["p1", "p2", "p3", "p4", "p-404"], applied_status="FUNDED", applied_since=since
    )
    assert found == {"p1": "opp-new", "p2": "opp-3"}

    later = store.get_payments(slug, ["L-2"])["L-2"].applied_at
    assert store.get_opportunity_ids(slug, ["p1", "p2"], applied_status="FUNDED", applied_since=later) == {
        "p1": "opp-new"
    }
