"""Threshold alerts: measure one DAG run per practice from the run ledger, move the alert states, tell the operators.

Called by `tasks.summarize_run` once the run's ledger rows are final. For each practice of the run (and its
registry entry's `options.alerts`, defaults when the practice is no longer in the registry):
- rejection rate: rejected / read (the ledger's counters), raised above `rejection_rate_percent`;
- CRM-failure rate: failed CRM writes / attempted CRM writes, raised above `crm_failure_rate_percent`. Failed writes
  are the counts of CRM-write and API reason codes in the ledger details' `rejects_by_reason` / `failed_by_reason`
  (`CRM_WRITE_FAILURES`); attempted writes are the records created and updated plus those failures;
- silent: a successful run that read something and wrote nothing, where the practice's last `silent_after_runs`
  successful runs of that DAG all wrote something; it holds while the runs keep writing nothing and recovers at the
  first run that writes.
A kind a run cannot measure (nothing read, nothing attempted, a failed or dry run for the silent rule) leaves its
state as it is: no data is no news. Dry runs are never measured. Each state change owes one operators' notice
(`notify.send_alert_notice`); a notice that could not be sent is retried at the practice's next evaluation, so it
is never lost and never sent twice. Only slugs, DAG and run ids, rates and counts leave this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cherry_sync.reasons import ReasonCode
from cherry_sync.registry import AlertOptions, Registry
from cherry_sync.store import AlertState, LedgerEntry, SyncStore

log = logging.getLogger(__name__)

REJECTION_RATE = "rejection_rate"
CRM_FAILURE_RATE = "crm_failure_rate"
SILENT = "silent"

KIND_LABELS = {
    REJECTION_RATE: "rejection rate",
    CRM_FAILURE_RATE: "CRM write failure rate",
    SILENT: "silent run",
}

# A CRM write that was attempted and did not land: the CRM refused it, its contact was gone, or the call failed
# after the hook's retries. Not `cancelled` (nothing was sent) nor `contact_conflict` (decided before any write).
CRM_WRITE_FAILURES: frozenset[str] = frozenset(
    code.value
    for code in (
        ReasonCode.CRM_REJECTED,
        ReasonCode.CRM_CONTACT_MISSING,
        ReasonCode.API_ERROR,
        ReasonCode.AUTH_FAILED,
        ReasonCode.FORBIDDEN,
        ReasonCode.NOT_FOUND,
        ReasonCode.VALIDATION_FAILED,
        ReasonCode.RATE_LIMITED,
        ReasonCode.DAILY_BUDGET_EXHAUSTED,
        ReasonCode.SERVER_ERROR,
        ReasonCode.TIMEOUT,
        ReasonCode.UNAVAILABLE,
        ReasonCode.AMBIGUOUS_WRITE,
        ReasonCode.MALFORMED_RESPONSE,
    )
)
# The details' per-reason tallies of records that did not sync (not `warnings_by_reason`: those synced).
_FAILURE_TALLIES = ("rejects_by_reason", "failed_by_reason")
# How far back the silent rule looks for successful runs, in pages of ledger runs.
_HISTORY_PAGES = 10


def crm_write_failures(details: Any) -> int:
    """Failed CRM writes in one ledger row's details: `CRM_WRITE_FAILURES` codes in its per-reason tallies."""
    if not isinstance(details, Mapping):
        return 0
    failed = 0
    for key, value in details.items():
        if key in _FAILURE_TALLIES and isinstance(value, Mapping):
            failed += sum(n for code, n in value.items() if code in CRM_WRITE_FAILURES and isinstance(n, int))
        elif isinstance(value, Mapping):
            failed += crm_write_failures(value)
    return failed


@dataclass(frozen=True, slots=True)
class RunMeasure:
    """One practice's totals in one DAG run (all its ledger rows): counts only."""

    read: int = 0
    written: int = 0
    rejected: int = 0
    crm_attempted: int = 0
    crm_failed: int = 0
    succeeded: bool = True
    dry_run: bool = False

    @property
    def rejection_rate(self) -> float | None:
        return 100.0 * self.rejected / self.read if self.read else None

    @property
    def crm_failure_rate(self) -> float | None:
        return 100.0 * self.crm_failed / self.crm_attempted if self.crm_attempted else None

    def counts(self) -> dict[str, int]:
        return {
            "read": self.read,
            "written": self.written,
            "rejected": self.rejected,
            "crm_attempted": self.crm_attempted,
            "crm_failed": self.crm_failed,
        }


def measure_run(entries: Iterable[LedgerEntry]) -> RunMeasure:
    """Sum one practice's ledger rows of one run."""
    read = written = rejected = failed = 0
    succeeded, dry_run = True, False
    for entry in entries:
        read += entry.counts.read
        written += entry.counts.created + entry.counts.updated
        rejected += entry.counts.rejected
        failed += crm_write_failures(entry.details)
        succeeded = succeeded and entry.status == "success"
        dry_run = dry_run or bool(entry.details.get("dry_run"))
    return RunMeasure(
        read=read,
        written=written,
        rejected=rejected,
        crm_attempted=written + failed,
        crm_failed=failed,
        succeeded=succeeded,
        dry_run=dry_run,
    )


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One alert kind's verdict on one run: raised or not, the measured value and the threshold."""

    kind: str
    raised: bool
    value: float
    threshold: float


def evaluate(
    run: RunMeasure,
    options: AlertOptions,
    *,
    history: Callable[[int], Sequence[RunMeasure]],
    silent_raised: bool = False,
) -> list[Evaluation]:
    """The verdicts a run allows (see the module docstring); `history(n)` gives the practice's last n successful
    runs before this one (fewer when there are not n), `silent_raised` whether the silent alert is raised now."""
    found: list[Evaluation] = []
    if run.dry_run:
        return found
    rate = run.rejection_rate
    if rate is not None:
        found.append(
            Evaluation(REJECTION_RATE, rate > options.rejection_rate_percent, rate, options.rejection_rate_percent)
        )
    rate = run.crm_failure_rate
    if rate is not None:
        found.append(
            Evaluation(
                CRM_FAILURE_RATE, rate > options.crm_failure_rate_percent, rate, options.crm_failure_rate_percent
            )
        )
    if run.succeeded and run.read > 0:
        runs = options.silent_after_runs
        if run.written > 0:
            silent = False
        elif silent_raised:
            silent = True  # still silent: the runs since it was raised wrote nothing either
        else:
            before = history(runs)
            silent = len(before) == runs and all(prior.written > 0 for prior in before)
        found.append(Evaluation(SILENT, silent, float(run.written), float(runs)))
    return found


def _history(store: SyncStore, slug: str, dag_id: str, run_id: str) -> Callable[[int], list[RunMeasure]]:
    def last(count: int) -> list[RunMeasure]:
        # Dry runs count their planned writes; they are skipped, so page on until `count` real runs are found.
        found: list[RunMeasure] = []
        page = count + 5
        for number in range(_HISTORY_PAGES):
            runs = store.successful_runs(slug, dag_id, before_run_id=run_id, limit=page, offset=number * page)
            found.extend(m for m in map(measure_run, runs) if not m.dry_run)
            if len(found) >= count or len(runs) < page:
                break
        return found[:count]

    return last


def evaluate_run(store: SyncStore, registry: Registry, run_id: str, dag_id: str) -> list[AlertState]:
    """Measure every practice of one DAG run, move its alert states and send the notices owed; returns the states
    of the practices evaluated (all kinds, after this run)."""
    from cherry_sync.notify import send_alert_notice

    per_practice: dict[str, list[LedgerEntry]] = {}
    for entry in store.list_runs(run_id=run_id, dag_id=dag_id):
        per_practice.setdefault(entry.practice_slug, []).append(entry)
    states: list[AlertState] = []
    for slug, entries in sorted(per_practice.items()):
        practice = registry.get(slug)
        options = practice.options.alerts if practice is not None else AlertOptions()
        if not options.enabled:
            continue
        run = measure_run(entries)
        known = {state.alert_kind: state for state in store.alert_states(slug, dag_id=dag_id)}
        silent_now = known.get(SILENT)
        for verdict in evaluate(
            run,
            options,
            history=_history(store, slug, dag_id, run_id),
            silent_raised=silent_now is not None and silent_now.raised,
        ):
            change = store.set_alert_state(
                slug,
                dag_id,
                verdict.kind,
                raised=verdict.raised,
                value=verdict.value,
                threshold=verdict.threshold,
                run_id=run_id,
            )
            known[verdict.kind] = change.current
            if change.changed:
                log.warning(
                    "alert %s %s for practice %s in %s (%.1f against %.1f)",
                    KIND_LABELS[verdict.kind],
                    "raised" if verdict.raised else "recovered",
                    slug,
                    dag_id,
                    verdict.value,
                    verdict.threshold,
                )
        for kind, state in sorted(known.items()):
            if state.notice_due:
                counts = run.counts() if state.last_run_id == run_id else None
                if send_alert_notice(state, counts) and not store.mark_alert_notified(slug, dag_id, kind, state.since):
                    log.warning("alert %s of practice %s moved on while its notice was sent", kind, slug)
        states.extend(store.alert_states(slug, dag_id=dag_id))
    return states
