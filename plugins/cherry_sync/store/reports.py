"""Queries for: Monthly metrics reports and the email send ledger.

The send ledger makes a report for one practice and window go out once: a send is *claimed* (status `sending`)
in one conditional upsert before the SMTP conversation starts, then marked `sent` or `failed`. A claim succeeds
only when there is no row yet, the last attempt `failed` (nothing was accepted, so trying again is safe), or the
caller forces it. A row left in `sending` means an attempt was interrupted mid-send: whether the message went out
is unknown, so nothing claims it again without `force`.

The report's inputs are read here too, narrowly: per patient only its account status, available balance and
increase eligibility; per payment only status, amounts, APR and its two timestamps. No names or contact details
are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, true, update

from cherry_sync.store.base import StoreBase
from cherry_sync.store.schema import backfill_checkpoints, cherry_patients, payments, sync_cursors
from cherry_sync.store.schema_reports import metrics_reports as reports

# The refresh's event-feed cursor (cherry_sync.sync.practice_runs.EVENTS_STREAM); the first real backfill sets it.
EVENTS_STREAM = "events"


@dataclass(frozen=True, slots=True)
class ReportSend:
    """One practice's report for one window, as the send ledger knows it."""

    practice_slug: str
    window_start: date
    window_end: date
    status: str
    attempts: int
    recipients_count: int
    run_id: str
    message_id: str | None
    error: str | None
    claimed_at: datetime
    sent_at: datetime | None
    figures: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReportClaim:
    """The outcome of `claim_report_send`: `claimed` means this caller may send now; `row` is the ledger row."""

    claimed: bool
    row: ReportSend


@dataclass(frozen=True, slots=True)
class PatientFigureRow:
    """What a report needs of one stored patient (no identity or contact data)."""

    account_status: str | None
    balance_available: Decimal | None
    increase_eligible: bool | None


@dataclass(frozen=True, slots=True)
class PaymentFigureRow:
    """What a report needs of one stored payment. Timestamps are the snapshot's RFC 3339 text (UTC)."""

    status: str
    amount: Decimal
    refund_amount: Decimal
    apr: str | None
    created_at: str | None
    updated_at: datetime


def _send(row) -> ReportSend:
    data = dict(row._mapping)
    data["figures"] = data.get("figures") or {}
    return ReportSend(**data)


def _key(slug: str, start: date, end: date):
    return (reports.c.practice_slug == slug, reports.c.window_start == start, reports.c.window_end == end)


class ReportQueries(StoreBase):
    """Monthly metrics reports and the email send ledger: reads and writes, in batches."""

    # -- send ledger ------------------------------------------------------------------------------

    def get_report_send(self, slug: str, start: date, end: date) -> ReportSend | None:
        with self.engine.begin() as conn:
            row = conn.execute(select(reports).where(*_key(slug, start, end))).first()
        return _send(row) if row else None

    def list_report_sends(self, slug: str | None = None) -> list[ReportSend]:
        """Ledger rows, newest window first (one practice's, or every practice's)."""
        query = select(reports)
        if slug is not None:
            query = query.where(reports.c.practice_slug == slug)
        query = query.order_by(reports.c.window_end.desc(), reports.c.practice_slug)
        with self.engine.begin() as conn:
            return [_send(row) for row in conn.execute(query)]

    def claim_report_send(
        self, slug: str, start: date, end: date, *, run_id: str, recipients_count: int, force: bool = False
    ) -> ReportClaim:
        """Claim the right to send this report now (see the module docstring); atomic across racing tasks."""
        now = self._now()
        ins = self._insert(reports).values(
            practice_slug=slug,
            window_start=start,
            window_end=end,
            status="sending",
            attempts=1,
            recipients_count=recipients_count,
            run_id=run_id,
            message_id=None,
            error=None,
            figures=None,
            claimed_at=now,
            sent_at=None,
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[reports.c.practice_slug, reports.c.window_start, reports.c.window_end],
            set_={
                "status": "sending",
                "attempts": reports.c.attempts + 1,
                "recipients_count": recipients_count,
                "run_id": run_id,
                "error": None,
                "claimed_at": now,
            },
            where=true() if force else reports.c.status == "failed",
        ).returning(reports.c.attempts)
        with self.engine.begin() as conn:
            claimed = conn.execute(stmt).first() is not None
            row = conn.execute(select(reports).where(*_key(slug, start, end))).one()
        return ReportClaim(claimed=claimed, row=_send(row))

    def mark_report_sent(
        self, slug: str, start: date, end: date, *, message_id: str, figures: Mapping[str, Any] | None = None
    ) -> None:
        """Record that the SMTP server accepted the report. `figures` are the practice's aggregate figures."""
        self._finish_send(slug, start, end, status="sent", message_id=message_id, sent_at=self._now(), figures=figures)

    def mark_report_failed(self, slug: str, start: date, end: date, *, error: str) -> None:
        """Record that the send failed before the server accepted it (a later attempt may claim it again).

        `error` is a short reason (an exception class or code), never a recipient address or SMTP reply text.
        """
        self._finish_send(slug, start, end, status="failed", error=error[:200])

    def _finish_send(self, slug: str, start: date, end: date, *, status: str, **values: Any) -> None:
        if "figures" in values:
            values["figures"] = dict(values["figures"]) if values["figures"] is not None else None
        with self.engine.begin() as conn:
            result = conn.execute(update(reports).where(*_key(slug, start, end)).values(status=status, **values))
        if result.rowcount == 0:
            raise LookupError(f"no metrics report ledger row for {slug} {start}..{end}")

    # -- report inputs ----------------------------------------------------------------------------

    def practice_data_synced_at(self, slug: str) -> datetime | None:
        """When the store last took in this practice's Cherry data (None: never synced, nothing to report).

        The later of a completed backfill and the event-feed cursor's last move (the first real backfill sets the
        cursor, each refresh moves it). A dry-run backfill sets neither.
        """
        with self.engine.begin() as conn:
            completed = conn.execute(
                select(func.max(backfill_checkpoints.c.completed_at)).where(
                    backfill_checkpoints.c.practice_slug == slug
                )
            ).scalar_one_or_none()
            cursor_moved = conn.execute(
                select(sync_cursors.c.updated_at).where(
                    sync_cursors.c.practice_slug == slug, sync_cursors.c.stream == EVENTS_STREAM
                )
            ).scalar_one_or_none()
        moments = [m for m in (completed, cursor_moved) if m is not None]
        if not moments:
            return None
        # Normalised defensively: an aggregate's result type is inferred from its argument, not declared.
        return max(_as_utc(m) for m in moments)

    def report_patient_rows(self, slug: str) -> list[PatientFigureRow]:
        """Account status, available balance and increase eligibility of every stored patient of the practice."""
        query = select(
            cherry_patients.c.account_status,
            cherry_patients.c.balance_available,
            cherry_patients.c.snapshot["increase_eligible"].as_boolean().label("increase_eligible"),
        ).where(cherry_patients.c.practice_slug == slug)
        with self.engine.begin() as conn:
            return [PatientFigureRow(**row._mapping) for row in conn.execute(query)]

    def report_payment_rows(self, slug: str, *, changed_since: datetime) -> list[PaymentFigureRow]:
        """Stored payments of the practice last changed at or after `changed_since`.

        A payment created (or refunded, or cancelled) after that moment has a last change after it too, so this
        holds every payment a report window starting at `changed_since` can count.
        """
        query = select(
            payments.c.status,
            payments.c.amount,
            payments.c.refund_amount,
            payments.c.snapshot["apr"].as_string().label("apr"),
            payments.c.snapshot["created_at"].as_string().label("created_at"),
            payments.c.source_updated_at.label("updated_at"),
        ).where(payments.c.practice_slug == slug, payments.c.source_updated_at >= changed_since)
        with self.engine.begin() as conn:
            return [PaymentFigureRow(**row._mapping) for row in conn.execute(query)]


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
