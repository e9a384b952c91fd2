"""The metrics-report send ledger and the report's narrow reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from cherry_sync.store import PatientSnapshot, PaymentSnapshot
from tests.store.conftest import T0

START, END = date(2026, 1, 1), date(2026, 3, 31)


def test_first_claim_wins_and_a_second_claim_finds_it_in_flight(store, slug):
    first = store.claim_report_send(slug, START, END, run_id="r1", recipients_count=2)
    second = store.claim_report_send(slug, START, END, run_id="r2", recipients_count=2)

    assert first.claimed and first.row.status == "sending" and first.row.attempts == 1
    assert not second.claimed
    assert second.row.status == "sending" and second.row.run_id == "r1"


def test_a_sent_report_is_never_claimed_again_without_force(store, slug):
    store.claim_report_send(slug, START, END, run_id="r1", recipients_count=2)
    store.mark_report_sent(slug, START, END, message_id="<m1@x>", figures={"net_volume": {"value": "12.50"}})

    again = store.claim_report_send(slug, START, END, run_id="r2", recipients_count=2)
    forced = store.claim_report_send(slug, START, END, run_id="r3", recipients_count=3, force=True)

    assert not again.claimed and again.row.status == "sent"
    assert again.row.message_id == "<m1@x>"
    assert again.row.figures == {"net_volume": {"value": "12.50"}}
    assert forced.claimed and forced.row.status == "sending"
    assert forced.row.attempts == 2 and forced.row.run_id == "r3" and forced.row.recipients_count == 3


def test_a_failed_send_can_be_claimed_again(store, slug):
    store.claim_report_send(slug, START, END, run_id="r1", recipients_count=1)
    store.mark_report_failed(slug, START, END, error="ReportSendError")

    failed = store.get_report_send(slug, START, END)
    retry = store.claim_report_send(slug, START, END, run_id="r1", recipients_count=1)

    assert failed.status == "failed" and failed.error == "ReportSendError"
    assert retry.claimed and retry.row.attempts == 2 and retry.row.error is None


def test_windows_and_practices_are_separate_ledger_entries(store, slug):
    from tests.store.conftest import make_practice

    store.sync_practices([make_practice("lumen-medspa")])
    store.claim_report_send(slug, START, END, run_id="r", recipients_count=1)
    store.mark_report_sent(slug, START, END, message_id="<a@x>")

    other_window = store.claim_report_send(
        slug, START + timedelta(days=1), END + timedelta(days=1), run_id="r", recipients_count=1
    )
    other_practice = store.claim_report_send("lumen-medspa", START, END, run_id="r", recipients_count=1)

    assert other_window.claimed and other_practice.claimed
    assert [(r.practice_slug, r.window_end) for r in store.list_report_sends(slug)] == [
        (slug, END + timedelta(days=1)),
        (slug, END),
    ]
    assert len(store.list_report_sends()) == 3


def test_marking_an_unknown_report_fails_loudly(store, slug):
    with pytest.raises(LookupError):
        store.mark_report_sent(slug, START, END, message_id="<m@x>")


def test_practice_data_synced_at_needs_a_real_sync(store, slug):
    assert store.practice_data_synced_at(slug) is None

    store.begin_checkpoint(slug, "active")
    assert store.practice_data_synced_at(slug) is None  # a backfill under way is not a complete copy

    store.complete_checkpoint(slug, "active")
    completed = store.practice_data_synced_at(slug)
    assert completed is not None and completed.tzinfo is not None

    store.set_cursor(slug, "events", "cursor-1")
    assert store.practice_data_synced_at(slug) >= completed


def test_patient_rows_carry_status_balance_and_increase_eligibility_only(store, slug):
    rows = [
        PatientSnapshot(
            patient_id=f"p{i}",
            snapshot={"id": f"p{i}", "first_name": "Synthetic", "increase_eligible": eligible},
            source_updated_at=T0,
            account_status=status,
            balance_available=balance,
        )
        for i, (status, balance, eligible) in enumerate(
            [("ACTIVE", Decimal("5000.00"), True), ("ACTIVE", Decimal("10.05"), False), ("INACTIVE", None, False)]
        )
    ]
    store.upsert_patient_snapshots(slug, rows)

    found = sorted(store.report_patient_rows(slug), key=lambda r: (r.account_status, r.balance_available or 0))

    assert [(r.account_status, r.balance_available, r.increase_eligible) for r in found] == [
        ("ACTIVE", Decimal("10.05"), False),
        ("ACTIVE", Decimal("5000.00"), True),
        ("INACTIVE", None, False),
    ]
    assert not hasattr(found[0], "snapshot")


def test_payment_rows_are_those_changed_since_the_moment_asked(store, slug):
    def payment(pid: str, minutes: int, status: str = "COMPLETED") -> PaymentSnapshot:
        moment = T0 + timedelta(minutes=minutes)
        return PaymentSnapshot(
            payment_id=pid,
            patient_id="p1",
            snapshot={"id": pid, "apr": "0.00", "created_at": moment.isoformat().replace("+00:00", "Z")},
            status=status,
            amount=Decimal("1200.10"),
            refund_amount=Decimal("0"),
            source_updated_at=moment,
        )

    store.upsert_payments(slug, [payment("old", -10), payment("new", 10, "REFUNDED")])

    rows = store.report_payment_rows(slug, changed_since=T0)

    assert [(r.status, r.amount, r.apr, r.created_at, r.updated_at) for r in rows] == [
        ("REFUNDED", Decimal("1200.10"), "0.00", "2026-03-01T12:10:00Z", T0 + timedelta(minutes=10))
    ]
