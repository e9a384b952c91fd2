"""Synthetic report inputs (no real person): metrics bodies, store payment and patient rows, a report builder."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from cherry_sync.reports.figures import SourceState, build_report, parse_metrics
from cherry_sync.reports.window import ReportWindow

WINDOW = ReportWindow(date(2026, 1, 1), date(2026, 3, 31), "America/New_York")  # previous: Oct 3 - Dec 31, 2025
NOW = datetime(2026, 4, 2, tzinfo=UTC)
METRICS = {
    "applications_started": 20,
    "applications_completed": 16,
    "approvals": 12,
    "approval_rate": "0.7500",
    "approved_amount": "36000.00",
    "transactions": 3,
    "volume": "3000.30",
    "refunds": 1,
    "refund_amount": "100.10",
    "average_ticket": "1000.10",
    "promo_share": "0.3333",
}


@dataclass
class Pay:
    status: str
    amount: Decimal
    refund_amount: Decimal
    apr: str
    created_at: str
    updated_at: datetime


@dataclass
class Pat:
    account_status: str | None
    balance_available: Decimal | None
    increase_eligible: bool | None


def pay(status: str, amount: str, created: str, updated: str | None = None, refund: str = "0.00") -> Pay:
    changed = datetime.fromisoformat((updated or created).replace("Z", "+00:00"))
    return Pay(status, Decimal(amount), Decimal(refund), "0.00", created, changed)


PAYMENTS = [
    # In the window (local New York days): 0.10 + 0.20 style amounts that float arithmetic gets wrong.
    pay("COMPLETED", "1000.10", "2026-01-01T05:00:00Z"),  # Jan 1 00:00 local: first instant of the window
    pay("PARTIALLY_REFUNDED", "1000.10", "2026-02-10T15:00:00Z", "2026-03-01T10:00:00Z", refund="100.10"),
    pay("REFUNDED", "1000.10", "2026-03-31T23:00:00Z", "2026-04-01T03:59:59Z", refund="1000.10"),  # Mar 31 local
    pay("CANCELLED", "555.55", "2026-02-01T12:00:00Z", "2026-02-02T12:00:00Z"),
    pay("COMPLETED", "999.99", "2026-04-01T04:00:00Z"),  # Apr 1 00:00 local: after the window
    pay("COMPLETED", "700.00", "2026-01-01T04:59:59Z"),  # Dec 31 local: the previous window
    pay("REFUNDED", "250.00", "2025-11-01T12:00:00Z", "2025-12-01T12:00:00Z", refund="250.00"),
]
PATIENTS = [
    Pat("ACTIVE", Decimal("5000.00"), True),
    Pat("ACTIVE", Decimal("4999.99"), False),
    Pat("ACTIVE", None, False),
    Pat("EXPIRED", Decimal("9000.00"), False),
    Pat("INACTIVE", None, None),
]


def make_report(**overrides):
    kwargs = {
        "slug": "glow-aesthetics",
        "display_name": "Glow Aesthetics",
        "window": WINDOW,
        "balance_threshold": Decimal("5000.00"),
        "metrics": parse_metrics(METRICS),
        "previous_metrics": parse_metrics({**METRICS, "approvals": 8, "approval_rate": "0.5000"}),
        "metrics_state": SourceState(True),
        "payment_rows": PAYMENTS,
        "patient_rows": PATIENTS,
        "store_state": SourceState(True, as_of=NOW),
        "generated_at": NOW,
    }
    return build_report(**{**kwargs, **overrides})


ZERO_METRICS = {
    **METRICS,
    **dict.fromkeys(("applications_started", "applications_completed", "approvals", "transactions", "refunds"), 0),
    "approval_rate": None,
    "approved_amount": "0.00",
    "volume": "0.00",
    "refund_amount": "0.00",
    "average_ticket": None,
    "promo_share": None,
}


def zero_report(**overrides):
    """A practice with no applications, payments or patients at all."""
    zero = parse_metrics(ZERO_METRICS)
    return make_report(
        **{"metrics": zero, "previous_metrics": zero, "payment_rows": [], "patient_rows": [], **overrides}
    )
