"""`OutcomeLog`: what a run did to each record, collected while a page is worked and written once per page.

The sync decides each record's fate in several places (parse, match, the CRM's answer, the smart list's tag
calls); each notes it here with opaque ids, an operation, a result, a reason code, the CRM's trace id and the hash
written, and the page's entry point flushes the lot in one batched insert (`SyncStore.record_outcomes`). In a dry
run what would have been written is noted with result `dry_run` (rejections stay `rejected`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from cherry_sync.context import PracticeContext, RunIdentity
from cherry_sync.store import OutcomeOperation, OutcomeResult, RecordOutcome, SyncStore
from cherry_sync.store.outcomes import opaque_or_none

OK_RESULTS = (OutcomeResult.OK, OutcomeResult.WARNING)


def manual_run(task_id: str) -> RunIdentity:
    """The identity of work started outside Airflow (tests, benchmarks, the CLI)."""
    return RunIdentity("manual", f"manual__{datetime.now(UTC).isoformat()}", task_id)


class OutcomeLog:
    """Outcomes of one practice's run, buffered until `flush` (one call per page)."""

    def __init__(self, store: SyncStore, slug: str, run: RunIdentity, *, dry_run: bool = False) -> None:
        self.store = store
        self.slug = slug
        self.run = run
        self.dry_run = dry_run
        self._pending: list[RecordOutcome] = []
        self.recorded = 0

    @classmethod
    def for_context(cls, ctx: PracticeContext, task_id: str, *, dry_run: bool = False) -> OutcomeLog:
        return cls(ctx.store, ctx.slug, ctx.run or manual_run(task_id), dry_run=dry_run)

    def add(
        self,
        entity: str,
        source_id: str,
        operation: OutcomeOperation,
        result: OutcomeResult = OutcomeResult.OK,
        *,
        crm_id: str | None = None,
        reason: str | None = None,
        trace_id: str | None = None,
        payload_hash: str | None = None,
    ) -> None:
        """Note one record's outcome. A source id that is not an opaque token (a malformed record's) is stored
        as the same stand-in its rejection gets."""
        if opaque_or_none(source_id) is None:
            from cherry_sync.sync.patients import opaque_id  # patients builds on this module

            source_id = opaque_id(source_id)
        if self.dry_run and result in OK_RESULTS:
            result = OutcomeResult.DRY_RUN
            trace_id = None
        self._pending.append(
            RecordOutcome(
                dag_id=self.run.dag_id,
                run_id=self.run.run_id,
                task_id=self.run.task_id,
                practice_slug=self.slug,
                entity=entity,
                source_id=source_id,
                operation=operation.value,
                result=result.value,
                crm_id=crm_id if crm_id and not str(crm_id).startswith("dry-run-") else None,
                reason_code=str(reason) if reason is not None else None,
                trace_id=trace_id,
                payload_hash=payload_hash,
            )
        )

    def flush(self) -> int:
        """Write what was noted since the last flush; returns rows written."""
        pending, self._pending = self._pending, []
        if not pending:
            return 0
        written = self.store.record_outcomes(pending)
        self.recorded += written
        return written
