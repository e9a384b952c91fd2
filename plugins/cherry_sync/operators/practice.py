"""Per-practice operators: provision custom fields, sync patients (backfill), apply events (refresh).

Each runs for one practice (they are mapped over the practices), records its work in the run ledger and
returns a JSON summary of counts (no patient data) to XCom. Failures are sorted so the operator of the
pipeline sees one clear message per practice:
- bad credentials / key not activated / wrong-typed custom field: failed at once, no retries (a person must act);
- daily CRM budget exhausted: the practice is deferred (skipped, ledger status "deferred") until the next run;
- disabled or invalid in the registry: skipped, nothing touched;
- anything transient that survived the hook's own retries: failed, and Airflow's retries take over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

if TYPE_CHECKING:
    from cherry_sync.sync.practice_runs import PracticeContext, RunSummary

# The sync engine (hooks, store, domain) is imported inside execute(): DAG files import these operators at
# parse time, and the engine's imports (SQLAlchemy, requests, phonenumbers...) would make parsing slow.

log = logging.getLogger(__name__)


def _as_bool(value: Any) -> bool:
    """Templated params arrive as strings ("True"/"false") when rendered; accept both forms."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class PracticeOperator(BaseOperator):
    """Base: resolves the practice at run time, wraps the work in a ledger entry and sorts failures."""

    template_fields: Sequence[str] = ("practice", "dry_run")
    ui_color = "#f7d9e3"

    def __init__(self, *, practice: str, dry_run: Any = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.practice = practice
        self.dry_run = dry_run

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def execute(self, context) -> dict[str, Any]:
        from cherry_sync.runtime import PracticeUnavailable, practice_config, practice_context

        slug = str(self.practice)
        dry_run = _as_bool(self.dry_run)
        try:
            practice = practice_config(slug)
        except PracticeUnavailable as exc:
            raise AirflowSkipException(str(exc)) from None
        ctx = practice_context(practice)
        ctx.store.sync_practices([practice])
        run_id = context["run_id"] if context else "manual"
        ledger_id = ctx.store.start_run(run_id, self.dag_id, slug, self.task_id)
        return self._guarded(lambda: self.run_for_practice(ctx, dry_run), ctx, ledger_id)

    def _guarded(self, work: Callable[[], dict[str, Any]], ctx: PracticeContext, ledger_id: int) -> dict[str, Any]:
        from cherry_sync.hooks import errors
        from cherry_sync.store import RunCounts
        from cherry_sync.sync.fields import FieldConflictError
        from cherry_sync.sync.opportunities import PipelineNotFoundError

        slug = ctx.slug
        try:
            result = work()
        except errors.DailyBudgetExhaustedError as exc:
            self._finish(ctx, ledger_id, "deferred", None, {"reason": exc.reason_code})
            log.error("practice %s deferred: the CRM location's daily request budget is used up", slug)
            raise AirflowSkipException(f"practice {slug} deferred: daily CRM request budget exhausted") from None
        except (errors.AuthError, errors.ForbiddenError) as exc:
            self._finish(ctx, ledger_id, "failed", None, _failure_details(exc))
            cause = errors.describe(exc)
            log.error("practice %s: %s", slug, cause)
            raise AirflowFailException(
                f"practice {slug}: {cause}. Not retried: fix the connection, then re-run."
            ) from None
        except (FieldConflictError, PipelineNotFoundError) as exc:
            self._finish(ctx, ledger_id, "failed", None, {"reason": exc.reason_code})
            raise AirflowFailException(f"practice {slug}: {exc}") from None
        except errors.ApiError as exc:
            self._finish(ctx, ledger_id, "failed", None, _failure_details(exc))
            cause = errors.describe(exc)
            log.error("practice %s: %s", slug, cause)
            # Re-raised without the chained cause: requests' own messages can contain URLs with query values.
            raise RuntimeError(f"practice {slug}: {cause}") from None
        except Exception as exc:
            self._finish(ctx, ledger_id, "failed", None, {"reason": type(exc).__name__})
            raise
        counts = result.get("patients", {})
        self._finish(
            ctx,
            ledger_id,
            "success",
            RunCounts(
                read=counts.get("read", 0),
                created=counts.get("created", 0),
                updated=counts.get("updated", 0),
                unchanged=counts.get("unchanged", 0),
                rejected=counts.get("rejected", 0),
                api_calls=sum(result.get("api_calls", {}).values()),
            ),
            result,
        )
        return result

    @staticmethod
    def _finish(ctx: PracticeContext, ledger_id: int, status: str, counts, details: dict) -> None:
        from cherry_sync.store import RunCounts

        if counts is None:
            counts = RunCounts(api_calls=ctx.cherry.api_calls + ctx.crm.api_calls)
        ctx.store.finish_run(ledger_id, status, counts, {**details, "api_calls": ctx.api_calls()})


class ProvisionCustomFieldsOperator(PracticeOperator):
    """Create the 14 Cherry contact fields on the practice's CRM location (idempotent; by fieldKey)."""

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool) -> dict[str, Any]:
        from cherry_sync.sync.fields import provision_fields

        result = provision_fields(ctx.crm, dry_run=dry_run)
        ctx.store.set_practice_ids(ctx.slug, crm_location_id=ctx.crm.location_id)
        summary = {"practice": ctx.slug, "dry_run": dry_run, "fields": result.summary(), "api_calls": ctx.api_calls()}
        log.info("practice %s: custom fields ready (%s)", ctx.slug, result.summary())
        return summary


class SyncPatientsOperator(PracticeOperator):
    """Backfill: every (active) Cherry patient of the practice into the CRM, resumable page by page."""

    template_fields: Sequence[str] = (*PracticeOperator.template_fields, "scope", "page_size")

    def __init__(self, *, scope: str = "active", page_size: Any = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scope = scope
        self.page_size = page_size

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool) -> dict[str, Any]:
        from cherry_sync.sync.practice_runs import backfill_practice

        summary = backfill_practice(ctx, scope=str(self.scope), page_size=int(self.page_size), dry_run=dry_run)
        return _log_summary(summary)


class ApplyEventsOperator(PracticeOperator):
    """Refresh: apply Cherry events after the stored cursor (contacts, payment fields, opportunities)."""

    template_fields: Sequence[str] = (*PracticeOperator.template_fields, "page_size")

    def __init__(self, *, page_size: Any = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.page_size = page_size

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool) -> dict[str, Any]:
        from cherry_sync.sync.practice_runs import refresh_practice

        summary = refresh_practice(ctx, page_size=int(self.page_size), dry_run=dry_run)
        return _log_summary(summary)


def _failure_details(exc) -> dict[str, Any]:
    """Ledger details of a failed API call: reason code, operation, which API and connection (no values)."""
    details = {"reason": exc.reason_code, "operation": exc.operation, "service": exc.service, "conn_id": exc.conn_id}
    if exc.status is not None:
        details["status"] = exc.status
    return details


def _log_summary(summary: RunSummary) -> dict[str, Any]:
    data = summary.as_dict()
    p = data["patients"]
    log.info(
        "practice %s %s%s: read %d, created %d, updated %d, unchanged %d, rejected %d %s; %d pages; %d CRM calls",
        summary.slug,
        summary.kind,
        " (dry run)" if summary.dry_run else "",
        p["read"],
        p["created"],
        p["updated"],
        p["unchanged"],
        p["rejected"],
        p["rejects_by_reason"] or "",
        data["pages"],
        data["crm_calls"],
    )
    return data
