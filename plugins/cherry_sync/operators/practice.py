"""Per-practice operators: provision custom fields, sync patients (backfill), apply events (refresh).

Each task instance runs one batch of practices (`cherry_sync.batches`: the run's first task read the registry once
and handed every task its practices' validated entries), one practice after the other. Each practice gets its own
run-ledger row and its own outcome, and the task returns a JSON summary of counts per practice (no patient data)
to XCom. `PracticeOperator` is their base and the one place where a failure becomes a task state. Every error the
product raises is a `CherrySyncError` whose disposition says what happens to that practice (`cherry_sync.errors`):
- bad credentials / key not activated / wrong-typed custom field / unknown opportunity pipeline / the registry's,
  Cherry's and the CRM location's time zones disagreeing: the practice fails, and is not retried (a person must
  act);
- daily CRM budget exhausted: the practice is deferred (ledger status "deferred") until the next run;
- anything transient that survived the hook's own retries: the practice fails, and Airflow's retry of the task
  runs it again;
- the task running past its `execution_timeout`: the ledger says `task_timeout` for the practice it was on, and
  Airflow retries the task.
The other practices of the batch carry on either way. Then the task fails (naming every failed practice with its
reason; retried when a retry may cure one of them), is skipped when no practice had work to do (all deferred or
skipped), or succeeds. A retry of the task skips the practices already done in an earlier try of this run (their
ledger rows say so), so it redoes only what failed. The ledger keeps the reason code either way.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, AirflowTaskTimeout

from cherry_sync.errors import CherrySyncError, Disposition, PracticeFailed
from cherry_sync.reasons import ReasonCode

if TYPE_CHECKING:
    from cherry_sync.batches import PracticeWork
    from cherry_sync.context import PracticeContext
    from cherry_sync.hooks.pacing import Pacer
    from cherry_sync.store import LedgerEntry, RunCounts, SyncStore
    from cherry_sync.sync.practice_runs import RunSummary

# The sync engine (hooks, store, domain) is imported inside execute(): DAG files import these operators at
# parse time, and the engine's imports (SQLAlchemy, requests, phonenumbers...) would make parsing slow.

log = logging.getLogger(__name__)

# The run ledger's status for a failure that reached the operator.
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


@dataclass
class PracticeOutcome:
    """How one practice of a batch ended: its ledger status, and for a failure or skip the sentence to report."""

    slug: str
    status: str  # success / failed / deferred / skipped (the ledger's)
    message: str = ""
    retry: bool = False  # failed, and a retry of the task may cure it
    reason: ReasonCode | None = None
    details: dict[str, Any] = field(default_factory=dict)
    earlier: bool = False  # decided by an earlier try of this task in this run

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, **self.details}
        if self.reason is not None:
            data["reason"] = self.reason.value
        if self.earlier:
            data["earlier_try"] = True
        return data


class PracticeOperator(BaseOperator):
    """Base: runs each practice of its batch in a ledger entry of its own and maps the outcomes onto Airflow.

    `batch` comes from the mapping over the run's batches (`cherry_sync.batches.plan_batches`; a mapped value is
    never rendered). The DAGs render templates as native objects, so `dry_run` arrives as the form's boolean.
    `requires_task` names a task of the same run (and task group) each practice must have succeeded in first
    (the backfill's patients need their custom fields); a practice that did not is skipped with the reason.
    """

    template_fields: Sequence[str] = ("batch", "dry_run")
    ui_color = "#f7d9e3"
    requires_task: str | None = None

    def __init__(self, *, batch: Mapping[str, Any], dry_run: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.dry_run = dry_run
        # What the failure email names: the batch's label, then the practices that failed.
        self.practice = batch.get("label", "") if isinstance(batch, Mapping) else ""

    @property
    def label(self) -> str:
        """The task instance's label in the UI (`map_index_template`): its practice, or its batch's range."""
        return str(self.batch.get("label", "")) if isinstance(self.batch, Mapping) else ""

    def run_for_practice(
        self, ctx: PracticeContext, dry_run: bool, arguments: Mapping[str, Any]
    ) -> PracticeReport:  # pragma: no cover
        raise NotImplementedError

    def execute(self, context) -> dict[str, Any]:
        from cherry_sync.batches import unpack_batch
        from cherry_sync.context import STORE_CONN_ID
        from cherry_sync.runtime import shared_pacer
        from cherry_sync.store import get_store

        try:
            work = unpack_batch(self.batch)
        except ValueError as exc:  # pydantic's ValidationError is one; its text holds no input (hide_input_in_errors)
            raise AirflowFailException(f"this task's practice batch is malformed: {type(exc).__name__}") from None
        run_id = context["run_id"] if context else "manual"
        store = get_store(STORE_CONN_ID)
        store.sync_practices([item.practice for item in work])
        slugs = [item.slug for item in work]
        earlier = store.task_outcomes(run_id, self.dag_id, self.task_id, slugs)
        blocked = self._not_ready(store, run_id, slugs)
        # Every practice of the batch paces through the same limiter: its connection is looked up once.
        pacer = shared_pacer()
        outcomes = []
        for item in work:
            previous = _decided(earlier.get(item.slug))
            if previous is not None:
                outcomes.append(previous)
            elif item.slug in blocked:
                outcomes.append(blocked[item.slug])
            else:
                outcomes.append(self._run_one(item, store, run_id, pacer))
        return self._conclude(outcomes)

    def _not_ready(self, store: SyncStore, run_id: str, slugs: list[str]) -> dict[str, PracticeOutcome]:
        """Practices that did not succeed in `requires_task` in this run (none when the task has no such upstream)."""
        if self.requires_task is None:
            return {}
        upstream = next((t for t in self.upstream_task_ids if t.split(".")[-1] == self.requires_task), None)
        if upstream is None:
            return {}
        done = store.task_outcomes(run_id, self.dag_id, upstream, slugs)
        return {
            slug: PracticeOutcome(slug, "skipped", f"{self.requires_task} did not succeed for it in this run")
            for slug in slugs
            if slug not in done or done[slug].status != "success"
        }

    def _run_one(self, item: PracticeWork, store: SyncStore, run_id: str, pacer: Pacer) -> PracticeOutcome:
        from cherry_sync.context import RunIdentity
        from cherry_sync.runtime import practice_context

        slug = item.slug
        if not item.practice.enabled:  # switched off after the run was planned: nothing touched, nothing recorded
            log.info("practice %s skipped: disabled in the registry", slug)
            return PracticeOutcome(slug, "skipped", "disabled in the registry (enabled: false); nothing is synced")
        ledger_id = store.start_run(run_id, self.dag_id, slug, self.task_id)
        ctx = None
        try:
            ctx = practice_context(item.practice, store, pacer)
            ctx.run = RunIdentity(self.dag_id, run_id, self.task_id)
            report = self.run_for_practice(ctx, self.dry_run, item.arguments)
        except CherrySyncError as exc:
            status = _LEDGER_STATUS[exc.disposition]
            _finish(store, ctx, ledger_id, status, {**exc.ledger_details(), "disposition": exc.disposition.value})
            return _outcome(slug, exc)
        except AirflowTaskTimeout:
            _finish(store, ctx, ledger_id, "failed", {"reason": ReasonCode.TASK_TIMEOUT.value})
            raise
        except Exception as exc:
            # The message of a library's exception may hold request data: the type and the frames are logged, and
            # Airflow's retry runs the practice again.
            log.error(
                "practice %s failed with %s:\n%s",
                slug,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            _finish(store, ctx, ledger_id, "failed", {"reason": type(exc).__name__, "disposition": "retry"})
            return PracticeOutcome(
                slug, "failed", f"unexpected {type(exc).__name__}", retry=True, reason=ReasonCode.UNEXPECTED_ERROR
            )
        details = report.as_dict()
        _finish(store, ctx, ledger_id, "success", details, report.ledger_counts())
        return PracticeOutcome(slug, "success", details=details)

    def _conclude(self, outcomes: list[PracticeOutcome]) -> dict[str, Any]:
        """The task's state from its practices' outcomes: fail naming each failed practice (retryable when one
        may be cured by a retry), skip when none had work done, else succeed with every practice's summary."""
        failed = [o for o in outcomes if o.status == "failed"]
        if failed:
            self.practice = ", ".join(o.slug for o in failed)
            text = "; ".join(f"practice {o.slug}: {o.message}" for o in failed)
            if len(outcomes) > 1:
                others = len(outcomes) - len(failed)
                text += f" ({others} other practice(s) of this task " + ("done)" if others else "none)")
            retryable = [o for o in failed if o.retry]
            if retryable:  # no cause is chained: a library's own message can hold request URLs with query values
                raise PracticeFailed(text, retryable[0].reason or ReasonCode.UNEXPECTED_ERROR) from None
            raise AirflowFailException(text) from None
        if not any(o.status == "success" for o in outcomes):
            raise AirflowSkipException(
                "; ".join(
                    f"practice {o.slug}{' deferred' if o.status == 'deferred' else ''}: {o.message}" for o in outcomes
                )
            )
        return {"practices": {o.slug: o.as_dict() for o in outcomes}}


def _decided(entry: LedgerEntry | None) -> PracticeOutcome | None:
    """A practice an earlier try of this task already settled in this run: done, deferred, skipped, or failed in a
    way no retry cures. None: (re)run it."""
    if entry is None or entry.status == "running":
        return None
    if entry.status == "failed" and entry.details.get("disposition") != Disposition.FAIL.value:
        return None
    reason = entry.details.get("reason")
    return PracticeOutcome(
        entry.practice_slug,
        entry.status,
        f"{reason} (in an earlier try)" if reason else "",
        reason=ReasonCode(reason) if reason in ReasonCode._value2member_map_ else None,
        earlier=True,
    )


def _outcome(slug: str, exc: CherrySyncError) -> PracticeOutcome:
    """A practice's failure, deferral or skip, logged once with its sentence."""
    cause = exc.describe()
    if exc.disposition is Disposition.SKIP:
        log.info("practice %s skipped: %s", slug, cause)
        return PracticeOutcome(slug, "skipped", cause, reason=exc.reason_code)
    if exc.disposition is Disposition.DEFER:
        log.error("practice %s deferred: %s", slug, cause)
        return PracticeOutcome(slug, "deferred", cause, reason=exc.reason_code)
    log.error("practice %s: %s", slug, cause)
    if exc.disposition is Disposition.FAIL:
        return PracticeOutcome(
            slug, "failed", cause + (f". {exc.advice}" if exc.advice else ""), reason=exc.reason_code
        )
    return PracticeOutcome(slug, "failed", cause, retry=True, reason=exc.reason_code)


def _finish(
    store: SyncStore,
    ctx: PracticeContext | None,
    ledger_id: int,
    status: str,
    details: dict[str, Any],
    counts: RunCounts | None = None,
) -> None:
    """Close the ledger row; the API calls are the hooks' own count, whatever the outcome."""
    from cherry_sync.store import RunCounts

    api_calls = ctx.api_calls() if ctx is not None else {}
    counts = replace(counts or RunCounts(), api_calls=sum(api_calls.values()))
    store.finish_run(ledger_id, status, counts, {**details, "api_calls": api_calls})


class ProvisionCustomFieldsOperator(PracticeOperator):
    """Create the 14 Cherry contact fields on the practice's CRM location (idempotent; by fieldKey)."""

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool, arguments: Mapping[str, Any]) -> PracticeReport:
        from cherry_sync.sync.fields import provision_practice_fields

        report = provision_practice_fields(ctx, dry_run=dry_run)
        log.info("practice %s: custom fields ready (%s)", ctx.slug, report.fields)
        return report


class SyncPatientsOperator(PracticeOperator):
    """Backfill: every (active) Cherry patient of the practice into the CRM, resumable page by page (only for the
    practices whose custom fields were provisioned in this run, when that task is upstream)."""

    requires_task = "provision_custom_fields"

    template_fields: Sequence[str] = (*PracticeOperator.template_fields, "scope", "page_size")

    def __init__(self, *, scope: str = "active", page_size: int = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scope = scope
        self.page_size = page_size

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool, arguments: Mapping[str, Any]) -> PracticeReport:
        from cherry_sync.sync.practice_runs import backfill_practice

        summary = backfill_practice(ctx, scope=self.scope, page_size=self.page_size, dry_run=dry_run)
        _log_summary(summary)
        return summary


class ApplyEventsOperator(PracticeOperator):
    """Refresh: apply the webhooks waiting in the inbox, then Cherry events after the stored cursor (contacts,
    payment fields, opportunities); `read_feed=False` (per practice in the batch's arguments, or for all) applies
    the inbox only (a webhook wake-up)."""

    template_fields: Sequence[str] = (*PracticeOperator.template_fields, "page_size")

    def __init__(self, *, page_size: int = 500, read_feed: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.page_size = page_size
        self.read_feed = read_feed

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool, arguments: Mapping[str, Any]) -> PracticeReport:
        from cherry_sync.sync.practice_runs import refresh_practice

        read_feed = bool(arguments.get("read_feed", self.read_feed))
        summary = refresh_practice(ctx, page_size=self.page_size, dry_run=dry_run, read_feed=read_feed)
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
