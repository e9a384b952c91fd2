"""`GET /v1/reports/metrics`: a practice's Cherry usage over a date range in its own time zone.

Definitions (all counts over the inclusive local-date range [start, end]):
* applications_started / applications_completed: applications by started_at / completed_at.
* approvals, approved_amount: of the applications completed in range, those approved so far (a manual
  review may approve one later), and their approved amounts. So approval_rate never exceeds 1.
* approval_rate: approvals / applications_completed, 4 decimals; null when nothing was completed.
* transactions, volume: payments created in range that were not cancelled, and the sum of their amounts.
* refunds, refund_amount: payments (fully or partially) refunded in range, and the sum refunded.
* average_ticket: volume / transactions (cents); promo_share: share of those transactions at 0% APR.
The range is turned into two UTC stamps once, so every row is a string comparison.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sandbox.cherry.book import PracticeBook
from sandbox.cherry.formats import epoch_of, money, ratio, stamp

MAX_RANGE_DAYS = 366


def utc_bounds(start: date, end: date, timezone: str) -> tuple[str, str]:
    """[local midnight of start, local midnight after end) as canonical UTC stamps."""
    tz = ZoneInfo(timezone)
    lo = datetime.combine(start, time(0), tz)
    hi = datetime.combine(end + timedelta(days=1), time(0), tz)
    return stamp(epoch_of(lo)), stamp(epoch_of(hi))


def report(book: PracticeBook, start: date, end: date) -> dict:
    lo, hi = utc_bounds(start, end, book.practice.timezone)

    def within(moment: str | None) -> bool:
        return moment is not None and lo <= moment < hi

    started = completed = approvals = 0
    approved_amount = Decimal(0)
    for app in book.applications:
        started += within(app.started_at)
        if within(app.completed_at):
            completed += 1
            if app.decision == "APPROVED":
                approvals += 1
                approved_amount += Decimal(app.approved_amount)

    transactions = promo = refunds = 0
    volume = refunded = Decimal(0)
    for payment in book.payments.values():
        if payment.status != "CANCELLED" and within(payment.created_at):
            transactions += 1
            volume += Decimal(payment.amount)
            promo += Decimal(payment.apr) == 0
        if payment.status in ("REFUNDED", "PARTIALLY_REFUNDED") and within(payment.settled_at):
            refunds += 1
            refunded += Decimal(payment.refund_amount)

    return {
        "practice_id": book.practice.id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "currency": "USD",
        "applications_started": started,
        "applications_completed": completed,
        "approvals": approvals,
        "approval_rate": ratio(approvals, completed),
        "approved_amount": money(approved_amount),
        "transactions": transactions,
        "volume": money(volume),
        "refunds": refunds,
        "refund_amount": money(refunded),
        "average_ticket": money(volume / transactions) if transactions else None,
        "promo_share": ratio(promo, transactions),
    }
