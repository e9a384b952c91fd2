"""One practice's smart-list run, end to end: the unit `SmartListOperator` calls (plain Python, no Airflow).

1. Compute membership and segments in SQL and diff them against what was applied (`smart_list_changes`).
2. Verify the CRM against the store when due (`verify.verification_due`); tags a person removed are re-added.
3. Push the differences with the bulk tag endpoints (`push.TagPusher`), recording every confirmed step.
4. Record failures as rejections (stage `smart_list`; resolved once the change lands), count members per
   segment, write the engineers' CSV export.
The returned summary (ledger details and XCom) holds counts, tag names and reason codes only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cherry_sync.context import PracticeContext
from cherry_sync.domain import Entity
from cherry_sync.reasons import ReasonCode
from cherry_sync.smart_list.export import write_export
from cherry_sync.smart_list.push import ADD, REMOVE, PushResult, TagPusher, planned_bulk_calls
from cherry_sync.smart_list.segments import SegmentPlan
from cherry_sync.smart_list.verify import Verification, verification_due, verify_practice
from cherry_sync.store import OutcomeOperation, OutcomeResult, Rejection, RunCounts
from cherry_sync.store.base import utc_now
from cherry_sync.store.smart_lists import ContactChange
from cherry_sync.sync.outcomes import OutcomeLog

log = logging.getLogger(__name__)

STAGE = "smart_list"
DEFAULT_VERIFY_EVERY_HOURS = 24.0


class SmartListSummary(dict[str, Any]):
    """What one practice's smart-list run did: a JSON-safe dict (counts, tag names, reason codes; no patient data)
    that also gives the run ledger its counters."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self)

    def ledger_counts(self) -> RunCounts:
        """Members read, (contact, tag) pairs added ("created") and removed ("updated"), members untouched, pairs
        that failed ("rejected")."""
        return RunCounts(
            read=self["members"],
            created=self["added"],
            updated=self["removed"],
            unchanged=max(0, self["members"] - self["planned"]["contacts"]),
            rejected=self["failed"],
        )


def _planned(changes: list[ContactChange], plan: SegmentPlan) -> dict[str, int]:
    return {
        "contacts": len(changes),
        "add": sum(len(c.to_add) for c in changes),
        "remove": sum(len(c.to_remove) for c in changes),
        "members_added": sum(1 for c in changes if plan.all_tag in c.to_add),
        "members_removed": sum(1 for c in changes if plan.all_tag in c.to_remove),
        "bulk_calls": planned_bulk_calls(changes),
    }


def update_smart_list(
    ctx: PracticeContext,
    *,
    dry_run: bool = False,
    verify: str = "auto",
    verify_every_hours: float = DEFAULT_VERIFY_EVERY_HOURS,
    export_dir: Path | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> SmartListSummary:
    """Bring the practice's CRM segment tags in line with the store; see the module docstring."""
    store, crm, slug = ctx.store, ctx.crm, ctx.slug
    plan = SegmentPlan.from_practice(ctx.practice)
    changes = store.smart_list_changes(slug, plan.tags, plan.threshold)
    planned = _planned(changes, plan)

    due, reason = verification_due(
        verify, bool(changes), store.smart_list_verified_at(slug), verify_every_hours, clock()
    )
    verification = Verification(ran=False, reason=reason)
    if due:
        verification = verify_practice(crm, store, slug, reason, dry_run=dry_run)
        if verification.tags_missing and not dry_run:
            changes = store.smart_list_changes(slug, plan.tags, plan.threshold)
            planned = _planned(changes, plan)

    push = PushResult()
    outcomes = OutcomeLog.for_context(ctx, "smart_list", dry_run=dry_run)
    try:
        if not dry_run and changes:
            push = TagPusher(crm, store, slug).push(changes)
    finally:
        # What landed is recorded even when the push stopped part-way (its error is raised after this).
        _note_outcomes(outcomes, changes, push, dry_run)
    if not dry_run:
        _record_outcome(ctx, push)

    counts = store.smart_list_counts(slug, plan.threshold)
    export = None if dry_run else write_export(store, slug, plan, export_dir)
    members = counts["all"]
    summary = SmartListSummary(
        {
            "practice": slug,
            "kind": "smart_list",
            "dry_run": dry_run,
            "members": members,
            "segments": {name: {"tag": tag, "members": counts[name]} for name, tag in plan.tags.items()},
            "planned": planned,
            "added": push.pairs_added,
            "removed": push.pairs_removed,
            "members_added": push.added[plan.all_tag],
            "members_removed": push.removed[plan.all_tag],
            "failed": push.pairs_failed,
            "failed_by_reason": dict(sorted(push.failed.items())),
            "contacts_missing": len(push.missing_contact_patients),
            "tag_calls": {
                "bulk": push.bulk_calls,
                "bulk_refused": push.bulk_rejected,
                "per_contact": push.single_calls,
                "per_contact_peak_in_flight": push.peak_in_flight,
            },
            "verification": verification.as_dict(),
            "export": {"file": export.path.name, "rows": export.rows} if export else None,
            "api_calls": dict(sorted(ctx.api_calls().items())),
            "crm_calls": ctx.crm_calls(),
        }
    )
    _log_summary(summary)
    return summary


def _note_outcomes(outcomes: OutcomeLog, changes: list[ContactChange], push: PushResult, dry_run: bool) -> None:
    """One outcome per contact and action: the tags added or removed, refused (with the reason) or, in a dry run,
    what would be sent."""
    patient = Entity.PATIENT.value
    operation = {ADD: OutcomeOperation.TAG_ADD, REMOVE: OutcomeOperation.TAG_REMOVE}
    if dry_run:
        for change in changes:
            for action, tags in ((REMOVE, change.to_remove), (ADD, change.to_add)):
                if tags:
                    outcomes.add(patient, change.patient_id, operation[action], crm_id=change.contact_id)
    for patient_id, contact_id, action, reason, trace in push.outcomes:
        if reason is None:
            result = OutcomeResult.OK
        elif reason in (ReasonCode.CRM_REJECTED, ReasonCode.CRM_CONTACT_MISSING):
            result = OutcomeResult.REJECTED
        else:
            result = OutcomeResult.FAILED
        outcomes.add(patient, patient_id, operation[action], result, crm_id=contact_id, reason=reason, trace_id=trace)
    outcomes.flush()


def _record_outcome(ctx: PracticeContext, push: PushResult) -> None:
    """Failures become rejections (opaque patient id, reason, redacted CRM message); landed ones are resolved.
    A contact the CRM does not know has its patient's `written_hash` cleared, so the next sync re-creates it."""
    store, slug = ctx.store, ctx.slug
    if push.failed_patients:
        store.record_rejections(
            slug,
            [
                Rejection(Entity.PATIENT.value, patient_id, STAGE, reason, push.failure_messages.get(patient_id, ""))
                for patient_id, reason in sorted(push.failed_patients.items())
            ],
        )
    if push.missing_contact_patients:
        store.clear_written_hashes(slug, sorted(push.missing_contact_patients))
    open_ids = [r.source_id for r in store.open_rejections(slug) if r.stage == STAGE]
    settled = [patient_id for patient_id in open_ids if patient_id not in push.failed_patients]
    if settled:
        # Still open but not failing now: the change landed, or the patient no longer needs it.
        store.resolve_rejections(slug, Entity.PATIENT.value, settled, stage=STAGE)


def _log_summary(summary: dict[str, Any]) -> None:
    segments = ", ".join(f"{name} {seg['members']}" for name, seg in summary["segments"].items())
    planned = summary["planned"]
    verification = summary["verification"]
    log.info(
        "practice %s smart list%s: members per segment: %s; planned +%d/-%d tags on %d contacts; "
        "applied +%d/-%d, failed %d %s; verification %s (%s, %d disagree); %d CRM calls",
        summary["practice"],
        " (dry run)" if summary["dry_run"] else "",
        segments,
        planned["add"],
        planned["remove"],
        planned["contacts"],
        summary["added"],
        summary["removed"],
        summary["failed"],
        summary["failed_by_reason"] or "",
        "ran" if verification["ran"] else "skipped",
        verification["reason"],
        verification["mismatched_members"],
        summary["crm_calls"],
    )
