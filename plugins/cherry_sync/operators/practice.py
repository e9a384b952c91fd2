"""Per-practice operators: provision custom fields, sync patients (backfill), apply events (refresh).

Each runs for one practice (they are mapped over the practices), records its work in the run ledger and
returns a JSON summary of counts (no patient data) to XCom. `PracticeOperator` is their base and the one place
where a failure becomes a task state. Every error the product raises is a `CherrySyncError` whose disposition
says what happens (`cherry_sync.errors`), so the operator of the pipeline sees one clear message per practice:
- bad credentials / key not activated / wrong-typed custom field / unknown opportunity pipeline / the registry's,
  Cherry's and the CRM location's time zones disagreeing: failed at once, no retries (a person must act);
- daily CRM budget exhausted: the practice is deferred (skipped, ledger status "deferred") until the next run;
- disabled or invalid in the registry: skipped, nothing touched;
- anything transient that survived the hook's own retries: failed, and Airflow's retries take over;
- the task running past its `execution_timeout`: the ledger says `task_timeout`, and Airflow retries it.
The ledger keeps the reason code either way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, AirflowTaskTimeout

from cherry_sync.errors import CherrySyncError, Disposition, PracticeFailed
from cherry_sync.reasons import ReasonCode

if TYPE_CHECKING:
    from cherry_sync.context import PracticeContext
    from cherry_sync.store import RunCounts
    from cherry_sync.sync.practice_runs import RunSummary

# The sync engine (hooks, store, domain) is imported inside execute(): DAG files import these operators at
# parse time, and the engine's imports (SQLAlchemy, requests, phonenumbers...) would make parsing slow.

log = logging.getLogger(__name__)

# The run ledger's status for a failure that reached the task.
_LEDGER_STATUS = {
    Disposition.RETRY: "failed",
    Disposition.FAIL: "failed",
    Disposition.DEFER: "deferred",
    Disposition.SKIP: "skipped",
}


class PracticeReport(Protocol):
    """What a practice's work returns: its summary for XCom and the ledger's details, and the ledger's counters.

    Each feature's summary implements it (`RunSummary`, `SmartListSummary`, `ReportOutcome`, ...), so the base
    operator records any of them without knowing their shape. The API calls are counted by the base.
    """

    def as_dict(self) -> dict[str, Any]: ...

    def ledger_counts(self) -> RunCounts: ...


class PracticeOperator(BaseOperator):
    """Base: resolves the practice at run time, wraps the work in a ledger entry and maps failures onto Airflow.

    `practice` comes from the mapping over the selected practices (a task group's mapped argument is resolved as a
    template field; a mapped value is never rendered). The DAGs render templates as native objects, so `dry_run`
    arrives as the form's boolean.
    """

    template_fields: Sequence[str] = ("practice", "dry_run")
    ui_color = "#f7d9e3"

    def __init__(self, *, practice: str, dry_run: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.practice = practice
        self.dry_run = dry_run

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool) -> PracticeReport:  # pragma: no cover
        raise NotImplementedError

    def execute(self, context) -> dict[str, Any]:
        from cherry_sync.runtime import practice_config, practice_context

        slug = self.practice
        try:
            practice = practice_config(slug)
        except CherrySyncError as exc:  # unknown, disabled or invalid: nothing touched, nothing recorded
            raise _to_airflow(slug, exc) from None
        ctx = practice_context(practice)
        ctx.store.sync_practices([practice])
        run_id = context["run_id"] if context else "manual"
        from cherry_sync.context import RunIdentity

        ctx.run = RunIdentity(self.dag_id, run_id, self.task_id)
        ledger_id = ctx.store.start_run(run_id, self.dag_id, slug, self.task_id)
        try:
            report = self.run_for_practice(ctx, self.dry_run)
        except CherrySyncError as exc:
            _finish(ctx, ledger_id, _LEDGER_STATUS[exc.disposition], exc.ledger_details())
            raise _to_airflow(slug, exc) from None
        except AirflowTaskTimeout:
            _finish(ctx, ledger_id, "failed", {"reason": ReasonCode.TASK_TIMEOUT.value})
            raise
        except Exception as exc:
            _finish(ctx, ledger_id, "failed", {"reason": type(exc).__name__})
            raise
        details = report.as_dict()
        _finish(ctx, ledger_id, "success", details, report.ledger_counts())
        return details


def _to_airflow(slug: str, exc: CherrySyncError) -> Exception:
    """The one mapping of a failure onto Airflow: its disposition decides the exception, its sentence the message."""
    cause = exc.describe()
    if exc.disposition is Disposition.SKIP:
        log.info("practice %s skipped: %s", slug, cause)
        return AirflowSkipException(f"practice {slug}: {cause}")
    if exc.disposition is Disposition.DEFER:
        log.error("practice %s deferred: %s", slug, cause)
        return AirflowSkipException(f"practice {slug} deferred: {cause}")
    log.error("practice %s: %s", slug, cause)
    if exc.disposition is Disposition.FAIL:
        return AirflowFailException(f"practice {slug}: {cause}" + (f". {exc.advice}" if exc.advice else ""))
    return PracticeFailed(f"practice {slug}: {cause}", exc.reason_code)


def _finish(
    ctx: PracticeContext, ledger_id: int, status: str, details: dict[str, Any], counts: RunCounts | None = None
) -> None:
    """Close the ledger row; the API calls are the hooks' own count, whatever the outcome."""
    from cherry_sync.store import RunCounts

    api_calls = ctx.api_calls()
    counts = replace(counts or RunCounts(), api_calls=sum(api_calls.values()))
    ctx.store.finish_run(ledger_id, status, counts, {**details, "api_calls": api_calls})


class ProvisionCustomFieldsOperator(PracticeOperator):
    """Create the 14 Cherry contact fields on the practice's CRM location (idempotent; by fieldKey)."""

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool) -> PracticeReport:
        from cherry_sync.sync.fields import provision_practice_fields

        report = provision_practice_fields(ctx, dry_run=dry_run)
        log.info("practice %s: custom fields ready (%s)", ctx.slug, report.fields)
        return report


class SyncPatientsOperator(PracticeOperator):
    """Backfill: every (active) Cherry patient of the practice into the CRM, resumable page by page."""

    template_fields: Sequence[str] = (*PracticeOperator.template_fields, "scope", "page_size")

    def __init__(self, *, scope: str = "active", page_size: int = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scope = scope
        self.page_size = page_size

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool) -> PracticeReport:
        from cherry_sync.sync.practice_runs import backfill_practice

        summary = backfill_practice(ctx, scope=self.scope, page_size=self.page_size, dry_run=dry_run)
        _log_summary(summary)
        return summary


class ApplyEventsOperator(PracticeOperator):
    """Refresh: apply the webhooks waiting in the inbox, then Cherry events after the stored cursor (contacts,
    payment fields, opportunities); `read_feed=False` applies the inbox only (a webhook wake-up)."""

    template_fields: Sequence[str] = (*PracticeOperator.template_fields, "page_size")

    def __init__(self, *, page_size: int = 500, read_feed: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.page_size = page_size
        self.read_feed = read_feed

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool) -> PracticeReport:
        from cherry_sync.sync.practice_runs import refresh_practice

        summary = refresh_practice(ctx, page_size=self.page_size, dry_run=dry_run, read_feed=self.read_feed)
        _log_summary(summary)
        return summary


def _log_summary(summary: RunSummary) -> None:
    data = summary.as_dict()
    p = data["patients"]
    log.info(
        "practice %s %s%s: read %d, created %d, updated %d, unchanged %d, rejected %d %s, warnings %s; %d pages; "
        "%d CRM calls",
        summary.slug,
        summary.kind,
        " (dry run)" if summary.dry_run else "",
        p["read"],
        p["created"],
        p["updated"],
        p["unchanged"],
        p["rejected"],
        p["rejects_by_reason"] or "",
        p["warnings_by_reason"] or "none",
        data["pages"],
        data["crm_calls"],
    )
