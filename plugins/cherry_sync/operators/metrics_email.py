"""`MetricsEmailOperator`: one practice's monthly Cherry metrics email.

Thin: resolves the practice (PracticeOperator), works out the report window from the run's logical date or the
`end_date` param, and calls `cherry_sync.reports.run.run_practice_report`. Outcomes:
- sent / already sent (a re-run or retry sends nothing more) / rendered only (`send` off): success;
- no report recipients in the registry: skipped, with the reason (`no_recipients`);
- a bad `end_date`, a missing or incomplete SMTP connection, an earlier attempt interrupted mid-send, or the
  registry's, Cherry's and the CRM location's time zones disagreeing (Cherry counts its figures in its zone):
  failed at once, no retries (a person must act);
- the SMTP server refusing the message: failed and retried (the send ledger marks it failed, so a retry sends).
Cherry's metrics endpoint failing does not fail the task: the report goes out saying those figures are unavailable.
The failures are `CherrySyncError`s: the base operator maps them onto Airflow and the run ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from cherry_sync.context import SMTP_CONN_ID
from cherry_sync.operators.practice import PracticeOperator

if TYPE_CHECKING:
    from cherry_sync.context import PracticeContext
    from cherry_sync.reports.run import ReportOutcome

log = logging.getLogger(__name__)


def _reference_time(context: Any) -> datetime:
    """The run's logical date; a run without one (manual, API-triggered) uses when it was due, else now."""
    if context:
        logical = context.get("logical_date")
        if isinstance(logical, datetime):
            return logical
        run_after = getattr(context.get("dag_run"), "run_after", None)
        if isinstance(run_after, datetime):
            return run_after
    return datetime.now(UTC)


class MetricsEmailOperator(PracticeOperator):
    """Render one practice's 90-day Cherry report and email it to its report recipients, once per window.

    `report_end_date`: the last day covered (a date or YYYY-MM-DD; None or empty = the day before the logical
    date). Not `end_date`, which every Airflow operator already has (the date after which the task stops being
    scheduled).
    """

    template_fields: Sequence[str] = (*PracticeOperator.template_fields, "report_end_date", "send", "force")
    ui_color = "#fbe6c2"

    def __init__(
        self,
        *,
        report_end_date: str | date | None = None,
        send: bool = True,
        force: bool = False,
        smtp_conn_id: str = SMTP_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.report_end_date = report_end_date
        self.send = send
        self.force = force
        self.smtp_conn_id = smtp_conn_id
        self._reference: datetime | None = None
        self._run_id = "manual"

    def execute(self, context) -> dict[str, Any]:
        self._reference = _reference_time(context)
        self._run_id = context["run_id"] if context else "manual"
        return super().execute(context)

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool, arguments: Mapping[str, Any]) -> ReportOutcome:
        from cherry_sync.reports.run import NO_RECIPIENTS, NoRecipients, run_practice_report
        from cherry_sync.reports.window import parse_end_date, resolve_window
        from cherry_sync.smtp import send_message, smtp_sender
        from cherry_sync.sync.zones import agreed_zone

        practice = ctx.practice
        zone = agreed_zone(practice, ctx.cherry, ctx.crm)
        send = self.send and not dry_run
        window = resolve_window(
            zone,
            reference=self._reference or datetime.now(UTC),
            end_date=parse_end_date(self.report_end_date),
        )
        sender = deliver = None
        if send and practice.options.report_recipients:
            sender = smtp_sender(self.smtp_conn_id)
            conn_id = self.smtp_conn_id

            def deliver(message, conn_id=conn_id) -> int:
                return send_message(message, conn_id=conn_id)

        outcome = run_practice_report(
            practice,
            ctx.store,
            ctx.cherry,
            window,
            send=send,
            force=self.force,
            run_id=self._run_id,
            sender=sender,
            deliver=deliver,
        )
        if outcome.outcome == NO_RECIPIENTS:
            raise NoRecipients()
        outcome.api_calls = ctx.api_calls()
        log.info(
            "practice %s: report %s..%s %s (recipients %d, Cherry metrics %s, store %s)",
            ctx.slug,
            outcome.window_start,
            outcome.window_end,
            outcome.outcome,
            outcome.recipients,
            _state(outcome.metrics_available),
            _state(outcome.store_available),
        )
        return outcome


def _state(available: bool | None) -> str:
    return "not read" if available is None else ("available" if available else "unavailable")
