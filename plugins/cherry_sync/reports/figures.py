"""The report's figures: Cherry's reporting metrics joined with the sync store, computed with pandas.

Sources (each figure has exactly one; docs/metrics-email.md has the full definitions):
- Cherry `GET /v1/reports/metrics`, for the window and for the 90 days before: applications started and
  completed, approvals, approval rate, approved amount, share of transactions at 0 % APR.
- The store's `payments` (the mirror the backfill and refresh keep): payments completed (count and amount),
  refunds, cancellations, net volume, average ticket, and the weekly volume chart. Both windows are computed
  from the same rows, so a change compares like with like.
- The store's `cherry_patients` (latest snapshot of each patient): active patients, available balance, patients
  at or above the balance threshold, increase-eligible patients. These are point-in-time figures: the store keeps
  only each patient's latest state, so they are shown "as of" the last sync, without a change.

Money is exact: amounts become integer cents for pandas (exact in int64) and Decimal again for the report; no
float ever holds money. A source that is missing makes its figures "unavailable", never zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

import pandas as pd

from cherry_sync.domain.cherry_records import AccountStatus, PaymentStatus
from cherry_sync.domain.contract import MAX_MONEY, MONEY_PLACES, Count, decimal_type
from cherry_sync.domain.errors import Entity, RecordRejected
from cherry_sync.domain.validation import ContractModel, validate_record
from cherry_sync.reasons import ReasonCode
from cherry_sync.reports.window import ReportWindow

CENT = Decimal("0.01")
REFUNDED = (PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED)
WEEK_DAYS = 7

# Figure keys, in the order the report shows them within each section.
APPLICATION_KEYS = ("applications_started", "applications_completed", "approvals", "approval_rate", "approved_amount")
PAYMENT_KEYS = (
    "payments_completed",
    "payment_volume",
    "refunds",
    "refund_amount",
    "cancellations",
    "cancelled_amount",
    "net_volume",
    "average_ticket",
    "promo_share",
)
PATIENT_KEYS = ("active_patients", "available_balance", "patients_over_threshold", "increase_eligible")
HEADLINE_KEYS = ("net_volume", "payments_completed", "approval_rate", "active_patients")


class Kind(StrEnum):
    COUNT = "count"
    MONEY = "money"
    RATIO = "ratio"


class Source(StrEnum):
    CHERRY = "cherry"  # Cherry's reporting metrics endpoint
    PAYMENTS = "payments"  # the store's payments
    PATIENTS = "patients"  # the store's patients (point in time)


Number = int | Decimal


@dataclass(frozen=True, slots=True)
class Change:
    """How a figure moved against the previous window, for people: arrow, words, and whether that is good."""

    arrow: str  # ▲ ▼ or ■ (flat)
    text: str  # "up 12%", "down 2.1 pts", "no change", "up from 0"
    tone: str  # good | bad | neutral


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure of the report.

    `value` None means: unavailable (`available` False: its source is missing) or not applicable (`available`
    True, e.g. an average of nothing). `previous` is the same figure over the previous window (None: not compared
    or not known). `higher_is_better` picks the colour of a change (refunds going up is bad news; None: neither).
    """

    key: str
    label: str
    kind: Kind
    source: Source
    value: Number | None
    previous: Number | None = None
    available: bool = True
    compared: bool = True
    higher_is_better: bool | None = True
    empty_note: str = "n/a"

    def change(self) -> Change | None:
        """The change against the previous window; None when there is nothing to compare."""
        if not (self.available and self.compared) or self.value is None or self.previous is None:
            return None
        value, previous = Decimal(self.value), Decimal(self.previous)
        if value == previous:
            return Change("■", "no change", "neutral")
        up = value > previous
        tone = "neutral" if self.higher_is_better is None else ("good" if up == self.higher_is_better else "bad")
        arrow = "▲" if up else "▼"
        word = "up" if up else "down"
        if self.kind is Kind.RATIO:
            points = (abs(value - previous) * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
            return Change(arrow, f"{word} {points} pts", tone)
        if previous == 0:
            return Change(arrow, f"{word} from 0", tone)
        percent = (abs(value - previous) / abs(previous) * 100).quantize(Decimal("1"), ROUND_HALF_UP)
        return Change(arrow, f"{word} {percent:,}%" if percent >= 1 else f"{word} <1%", tone)


@dataclass(frozen=True, slots=True)
class WeekVolume:
    """Completed payments created in one week of the window (the oldest week may be shorter)."""

    start: date
    end: date
    payments: int
    volume: Decimal


@dataclass(frozen=True, slots=True)
class SourceState:
    """Whether a source answered; `reason` is a short code when it did not."""

    available: bool
    reason: str | None = None
    as_of: datetime | None = None


@dataclass(frozen=True)
class PracticeReport:
    """Everything a report shows for one practice and window (aggregate figures only, no patient data)."""

    slug: str
    display_name: str
    timezone: str
    window: ReportWindow
    figures: Mapping[str, Figure]
    weeks: Sequence[WeekVolume]
    metrics: SourceState
    store: SourceState
    balance_threshold: Decimal
    generated_at: datetime
    previous_metrics: SourceState = field(default_factory=lambda: SourceState(True))

    @property
    def previous_window(self) -> ReportWindow:
        return self.window.previous()

    def figure(self, key: str) -> Figure:
        return self.figures[key]

    def has_activity(self) -> bool:
        """Any application or payment in the window (False also when the figures are unavailable)."""
        keys = ("applications_started", "payments_completed", "refunds", "cancellations")
        return any(self.figures[k].value for k in keys if self.figures[k].available)

    def figures_json(self) -> dict[str, dict[str, str | None]]:
        """The figures as text (exact), for the send ledger: {key: {"value", "previous"}}."""
        return {
            key: {
                "value": None if f.value is None else str(f.value),
                "previous": None if f.previous is None else str(f.previous),
            }
            for key, f in self.figures.items()
        }


# -- Cherry reporting metrics -------------------------------------------------------------------------

# The contract writes every number as a JSON string; the reporting endpoint is read to the letter.
MetricsMoney = decimal_type(
    ReasonCode.INVALID_MONEY, places=MONEY_PLACES, maximum=MAX_MONEY, required=True, json_numbers=False, what="amount"
)
# approval_rate and promo_share: shares from 0 to 1 written with four places, null when there is nothing to divide.
Ratio = decimal_type(ReasonCode.INVALID_NUMBER, places=4, maximum=Decimal(1), json_numbers=False, what="ratio")


class CherryMetrics(ContractModel):
    """Cherry's `GET /v1/reports/metrics` answer for one window (aggregates only; see docs/cherry-contract.md)."""

    applications_started: Count
    applications_completed: Count
    approvals: Count
    transactions: Count
    refunds: Count
    approved_amount: MetricsMoney
    volume: MetricsMoney
    refund_amount: MetricsMoney
    approval_rate: Ratio
    promo_share: Ratio


class MalformedMetrics(RecordRejected):
    """The metrics body is not what the contract promises (the figures are then unavailable).

    `reason_code` is the rule it broke, with the same code a patient or payment gets for the same fault.
    """


def parse_metrics(body: Any) -> dict[str, Number | None]:
    """Validate a `GET /v1/reports/metrics` body into ints and Decimals (ratios may be None)."""
    return validate_record(CherryMetrics, body, Entity.METRICS, rejection=MalformedMetrics).model_dump()


# -- the store's payments ----------------------------------------------------------------------------


def _cents(value: Any) -> int:
    return int((Decimal(value) * 100).to_integral_value(ROUND_HALF_UP))


def _money(cents: Any) -> Decimal:
    return (Decimal(int(cents)) / 100).quantize(CENT)


def payments_frame(rows: Iterable[Any]) -> pd.DataFrame:
    """Payment rows (status, amount, refund_amount, apr, created_at, updated_at) as a frame with integer cents."""
    records = [
        {
            "status": row.status,
            "amount_cents": _cents(row.amount),
            "refund_cents": _cents(row.refund_amount),
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
        for row in rows
    ]
    frame = pd.DataFrame.from_records(
        records, columns=["status", "amount_cents", "refund_cents", "created_at", "updated_at"]
    )
    frame["amount_cents"] = frame["amount_cents"].astype("int64")
    frame["refund_cents"] = frame["refund_cents"].astype("int64")
    # A snapshot without a parseable creation time cannot be placed in a window: it counts nowhere.
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, errors="coerce", format="ISO8601")
    frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True, errors="coerce")
    return frame


def _between(series: pd.Series, window: ReportWindow) -> pd.Series:
    lo, hi = window.utc_bounds()
    return (series >= pd.Timestamp(lo)) & (series < pd.Timestamp(hi))


def payment_figures(frame: pd.DataFrame, window: ReportWindow) -> dict[str, Number | None]:
    """Payments completed, refunds, cancellations, net volume and average ticket over one window.

    - completed: created in the window and not cancelled (Cherry's "transactions");
    - refunds / cancellations: payments refunded (fully or partly) / cancelled in the window, dated by their last
      change (a payment carries no separate refund time);
    - net volume: completed amount minus the amount refunded in the window.
    """
    completed = frame[_between(frame["created_at"], window) & (frame["status"] != PaymentStatus.CANCELLED)]
    changed = _between(frame["updated_at"], window)
    refunded = frame[changed & frame["status"].isin(REFUNDED)]
    cancelled = frame[changed & (frame["status"] == PaymentStatus.CANCELLED)]
    count = len(completed)
    volume = int(completed["amount_cents"].sum())
    refund_cents = int(refunded["refund_cents"].sum())
    average = (Decimal(volume) / count / 100).quantize(CENT, ROUND_HALF_UP) if count else None
    return {
        "payments_completed": count,
        "payment_volume": _money(volume),
        "refunds": len(refunded),
        "refund_amount": _money(refund_cents),
        "cancellations": len(cancelled),
        "cancelled_amount": _money(cancelled["amount_cents"].sum()),
        "net_volume": _money(volume - refund_cents),
        "average_ticket": average,
    }


def weekly_volume(frame: pd.DataFrame, window: ReportWindow) -> list[WeekVolume]:
    """Completed payments per week, counted back from the window's last day (oldest week first).

    Weeks end on the window's last day, so the recent weeks are whole; with 90 days the oldest has 6 days.
    """
    completed = frame[_between(frame["created_at"], window) & (frame["status"] != PaymentStatus.CANCELLED)]
    local_days = completed["created_at"].dt.tz_convert(window.timezone).dt.date
    weeks_back = local_days.map(lambda day: (window.end - day).days // WEEK_DAYS)
    grouped = completed.assign(week=weeks_back).groupby("week")["amount_cents"].agg(["count", "sum"])
    count = -(-window.days // WEEK_DAYS)
    out = []
    for back in range(count - 1, -1, -1):
        end = window.end - timedelta(days=back * WEEK_DAYS)
        start = max(window.start, end - timedelta(days=WEEK_DAYS - 1))
        payments, cents = (int(grouped.at[back, "count"]), grouped.at[back, "sum"]) if back in grouped.index else (0, 0)
        out.append(WeekVolume(start, end, payments, _money(cents)))
    return out


# -- the store's patients ----------------------------------------------------------------------------


def patient_figures(rows: Iterable[Any], threshold: Decimal) -> dict[str, Number]:
    """Point-in-time figures over the latest stored snapshot of each patient.

    - active patients: account status ACTIVE;
    - available balance: sum of the available balances of active patients;
    - patients at or above the threshold: active, with an available balance >= the registry's threshold;
    - increase-eligible: patients Cherry marks eligible for a higher limit (only active ones can be).
    """
    frame = pd.DataFrame.from_records(
        [
            {
                "active": row.account_status == AccountStatus.ACTIVE,
                "balance_cents": None if row.balance_available is None else _cents(row.balance_available),
                "increase_eligible": bool(row.increase_eligible),
            }
            for row in rows
        ],
        columns=["active", "balance_cents", "increase_eligible"],
    )
    frame["active"] = frame["active"].astype(bool)
    frame["increase_eligible"] = frame["increase_eligible"].astype(bool)
    balance = frame["balance_cents"].astype("Int64")
    active_balance = balance[frame["active"]]
    return {
        "active_patients": int(frame["active"].sum()),
        "available_balance": _money(active_balance.sum(skipna=True)),
        "patients_over_threshold": int((active_balance >= _cents(threshold)).fillna(False).sum()),
        "increase_eligible": int(frame["increase_eligible"].sum()),
    }


# -- the report -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spec:
    label: str
    kind: Kind
    source: Source
    higher_is_better: bool | None = True
    empty_note: str = "n/a"


def _threshold(value: Decimal) -> str:
    return f"${value:,.0f}" if value == value.to_integral_value() else f"${value:,.2f}"


def _specs(threshold: Decimal) -> dict[str, _Spec]:
    return {
        "applications_started": _Spec("Applications started", Kind.COUNT, Source.CHERRY),
        "applications_completed": _Spec("Applications completed", Kind.COUNT, Source.CHERRY),
        "approvals": _Spec("Approvals", Kind.COUNT, Source.CHERRY),
        "approval_rate": _Spec("Approval rate", Kind.RATIO, Source.CHERRY, empty_note="n/a (none completed)"),
        "approved_amount": _Spec("Amount approved", Kind.MONEY, Source.CHERRY),
        "payments_completed": _Spec("Payments completed", Kind.COUNT, Source.PAYMENTS),
        "payment_volume": _Spec("Payment volume", Kind.MONEY, Source.PAYMENTS),
        "refunds": _Spec("Refunds", Kind.COUNT, Source.PAYMENTS, higher_is_better=False),
        "refund_amount": _Spec("Amount refunded", Kind.MONEY, Source.PAYMENTS, higher_is_better=False),
        "cancellations": _Spec("Cancellations", Kind.COUNT, Source.PAYMENTS, higher_is_better=False),
        "cancelled_amount": _Spec("Amount cancelled", Kind.MONEY, Source.PAYMENTS, higher_is_better=False),
        "net_volume": _Spec("Net volume", Kind.MONEY, Source.PAYMENTS),
        "average_ticket": _Spec("Average ticket", Kind.MONEY, Source.PAYMENTS, empty_note="n/a (no payments)"),
        "promo_share": _Spec(
            "Share paid at 0% APR", Kind.RATIO, Source.CHERRY, higher_is_better=None, empty_note="n/a (no payments)"
        ),
        "active_patients": _Spec("Patients with an active Cherry account", Kind.COUNT, Source.PATIENTS),
        "available_balance": _Spec("Available to spend (active accounts)", Kind.MONEY, Source.PATIENTS),
        "patients_over_threshold": _Spec(
            f"Patients with {_threshold(threshold)}+ available", Kind.COUNT, Source.PATIENTS
        ),
        "increase_eligible": _Spec("Patients eligible for a higher limit", Kind.COUNT, Source.PATIENTS),
    }


def build_report(
    *,
    slug: str,
    display_name: str,
    window: ReportWindow,
    balance_threshold: Decimal,
    metrics: Mapping[str, Number | None] | None,
    previous_metrics: Mapping[str, Number | None] | None,
    metrics_state: SourceState,
    previous_metrics_state: SourceState | None = None,
    payment_rows: Iterable[Any] | None,
    patient_rows: Iterable[Any] | None,
    store_state: SourceState,
    generated_at: datetime,
) -> PracticeReport:
    """Join the sources into the report. `metrics`/`payment_rows`/`patient_rows` None: that source is missing."""
    previous_window = window.previous()
    current: dict[str, Number | None] = {}
    previous: dict[str, Number | None] = {}
    available: dict[Source, bool] = {
        Source.CHERRY: metrics is not None,
        Source.PAYMENTS: payment_rows is not None,
        Source.PATIENTS: patient_rows is not None,
    }
    if metrics is not None:
        current.update({k: metrics[k] for k in (*APPLICATION_KEYS, "promo_share")})
    if previous_metrics is not None:
        previous.update({k: previous_metrics[k] for k in (*APPLICATION_KEYS, "promo_share")})
    weeks: list[WeekVolume] = []
    if payment_rows is not None:
        frame = payments_frame(payment_rows)
        current.update(payment_figures(frame, window))
        previous.update(payment_figures(frame, previous_window))
        weeks = weekly_volume(frame, window)
    if patient_rows is not None:
        current.update(patient_figures(patient_rows, balance_threshold))

    figures: dict[str, Figure] = {}
    for key, spec in _specs(balance_threshold).items():
        point_in_time = spec.source is Source.PATIENTS
        figures[key] = Figure(
            key=key,
            label=spec.label,
            kind=spec.kind,
            source=spec.source,
            value=current.get(key),
            previous=None if point_in_time else previous.get(key),
            available=available[spec.source],
            compared=not point_in_time,
            higher_is_better=spec.higher_is_better,
            empty_note=spec.empty_note,
        )
    return PracticeReport(
        slug=slug,
        display_name=display_name,
        timezone=window.timezone,
        window=window,
        figures=figures,
        weeks=weeks,
        metrics=metrics_state,
        previous_metrics=previous_metrics_state or SourceState(previous_metrics is not None),
        store=store_state,
        balance_threshold=balance_threshold,
        generated_at=generated_at,
    )
