"""`MetricsEmailOperator`: one practice's monthly Cherry metrics email (issue 7).

Thin: resolves the practice (PracticeOperator), works out the report window from the run's logical date or the
`end_date` param, and calls `cherry_sync.reports.run.run_practice_report`. Outcomes:
- sent / already sent (a re-run or retry sends nothing more) / rendered only (`send` off): success;
- no report recipients in the registry: skipped, with the reason;
- a bad `end_date`, a missing or incomplete SMTP connection, or an earlier attempt interrupted mid-send:
  failed at once, no retries (a person must act);
- the SMTP server refusing the message: failed and retried (the send ledger marks it failed, so a retry sends).
Cherry's metrics endpoint failing does not fail the task: the report goes out saying those figures are unavailable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from cherry_sync.operators.practice import PracticeOperator, _as_bool

if TYPE_CHECKING:
    from cherry_sync.sync.practice_runs import PracticeContext

log = logging.getLogger(__name__)

DEFAULT_SMTP_CONN_ID = "cherry_sync_smtp"
_SKIPPED_OUTCOMES = frozenset({"no_recipients"})


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

    `report_end_date`: the last day covered (YYYY-MM-DD; empty = the day before the logical date). Not `end_date`,
    which every Airflow operator already has (the date after which the task stops being scheduled).
    """

    template_fields: Sequence[str] = (*PracticeOperator.template_fields, "report_end_date", "send", "force")
    ui_color = "#fbe6c2"

    def __init__(
        self,
        *,
        report_end_date: Any = None,
        send: Any = True,
        force: Any = False,
        smtp_conn_id: str = DEFAULT_SMTP_CONN_ID,
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
        result = super().execute(context)
        if result.get("outcome") in _SKIPPED_OUTCOMES:
            raise AirflowSkipException(
                f"practice {self.practice}: no report recipients (options.report_recipients in the registry); "
                "nothing sent"
            )
        return result

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool) -> dict[str, Any]:
        from cherry_sync.reports.run import run_practice_report
        from cherry_sync.reports.send import send_message, smtp_sender
        from cherry_sync.reports.window import parse_end_date, resolve_window

        practice = ctx.practice
        send = _as_bool(self.send) and not dry_run
        force = _as_bool(self.force)
        window = resolve_window(
            practice.timezone,
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
            force=force,
            run_id=self._run_id,
            sender=sender,
            deliver=deliver,
        )
        summary = outcome.as_dict()
        summary["api_calls"] = ctx.api_calls()
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
        return summary

    def _guarded(self, work: Callable[[], dict[str, Any]], ctx: PracticeContext, ledger_id: int) -> dict[str, Any]:
        from cherry_sync.reports.run import SendInterrupted
        from cherry_sync.reports.send import SmtpConfigError
        from cherry_sync.reports.window import WindowError

        try:
            return super()._guarded(work, ctx, ledger_id)
        except (SendInterrupted, SmtpConfigError, WindowError) as exc:
            # Already recorded as failed in the ledger (with the exception's class as reason); no retries.
            raise AirflowFailException(str(exc)) from None

    @staticmethod
    def _finish(ctx: PracticeContext, ledger_id: int, status: str, counts, details: dict) -> None:
        if status == "success" and details.get("outcome") in _SKIPPED_OUTCOMES:
            status = "skipped"
        PracticeOperator._finish(ctx, ledger_id, status, counts, details)


def _state(available: bool | None) -> str:
    return "not read" if available is None else ("available" if available else "unavailable")
