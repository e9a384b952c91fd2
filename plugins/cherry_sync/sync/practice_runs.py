"""One practice's backfill or refresh, end to end: the units the Airflow operators call.

Plain Python over the hooks and the store, so it is testable without a scheduler. The returned summaries
hold counts, reason codes and opaque ids only: they go to logs, the run ledger and XCom.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cherry_sync.context import PracticeContext
from cherry_sync.domain import RecordRejected, parse_payment
from cherry_sync.domain.cherry_records import AccountStatus
from cherry_sync.store import OutcomeOperation, OutcomeResult, RunCounts
from cherry_sync.sync.contacts import LiveDirectory, PrefetchedDirectory
from cherry_sync.sync.estimates import PatientEstimates, practice_estimates
from cherry_sync.sync.events import EventApplier, EventCounts, payment_snapshot
from cherry_sync.sync.fields import ProvisionResult, provision_fields
from cherry_sync.sync.inbox import apply_inbox
from cherry_sync.sync.opportunities import OpportunityUpdater, PipelineTarget, resolve_pipeline
from cherry_sync.sync.outcomes import OutcomeLog
from cherry_sync.sync.patients import PatientSyncer, SyncCounts, rejection_of
from cherry_sync.sync.zones import agreed_zone

log = logging.getLogger(__name__)

EVENTS_STREAM = "events"
FIELDS_STREAM = "crm_fields"  # the CRM field ids the practice's contacts were last written against
# The location and pipeline the opportunity ids recorded in the store are in, and since when.
OPPORTUNITIES_STREAM = "crm_opportunities"
SCOPES = ("active", "all")


@dataclass
class RunSummary:
    """What a practice run did; `as_dict()` is JSON-safe and free of patient data."""

    slug: str
    kind: str
    dry_run: bool
    patients: SyncCounts = field(default_factory=SyncCounts)
    events: EventCounts | None = None
    pages: int = 0
    webhooks: int = 0  # webhook inbox rows read (the refresh)
    payments_loaded: int = 0
    resumed_from_page: int = 0
    fields: dict[str, Any] = field(default_factory=dict)
    api_calls: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "practice": self.slug,
            "kind": self.kind,
            "dry_run": self.dry_run,
            "pages": self.pages,
            "resumed_from_page": self.resumed_from_page,
            "payments_loaded": self.payments_loaded,
            "patients": self.patients.as_dict(),
            "fields": self.fields,
            "api_calls": dict(sorted(self.api_calls.items())),
            "crm_calls": sum(n for op, n in self.api_calls.items() if op.startswith("crm ")),
        }
        if self.events is not None:
            out["events"] = self.events.as_dict()
            out["webhooks"] = self.webhooks
        return out

    def ledger_counts(self) -> RunCounts:
        """The run ledger's counters: the patients read, created, updated, unchanged and rejected."""
        p = self.patients
        return RunCounts(read=p.read, created=p.created, updated=p.updated, unchanged=p.unchanged, rejected=p.rejected)


def _syncer(
    ctx: PracticeContext,
    zone: str,
    field_ids: dict[str, str],
    directory,
    dry_run: bool,
    *,
    index_owners: bool = False,
    outcomes: OutcomeLog | None = None,
) -> PatientSyncer:
    options = ctx.practice.options
    return PatientSyncer(
        store=ctx.store,
        crm=ctx.crm,
        slug=ctx.slug,
        timezone=zone,
        field_ids=field_ids,
        directory=directory,
        practice_estimates=practice_estimates(ctx.cherry, options.estimate_amounts),
        patient_estimates=PatientEstimates(ctx.cherry) if options.patient_estimates else None,
        dry_run=dry_run,
        index_owners=index_owners,
        outcomes=outcomes,
    )


def load_payments(
    ctx: PracticeContext, summary: RunSummary, page_size: int = 500, outcomes: OutcomeLog | None = None
) -> None:
    """Mirror every Cherry payment of the practice into the store (newer versions win). Payments no CRM write is
    made for here; those rejected are noted in `outcomes`."""
    rejections = []
    for page in ctx.cherry.iter_payment_pages(limit=page_size):
        parsed = []
        for raw in page.items:
            try:
                parsed.append(payment_snapshot(parse_payment(raw)))
            except RecordRejected as exc:
                rejection = rejection_of(exc, raw)
                rejections.append(rejection)
                if outcomes is not None:
                    outcomes.add(
                        rejection.entity,
                        rejection.source_id,
                        OutcomeOperation.SKIP,
                        OutcomeResult.REJECTED,
                        reason=rejection.reason_code,
                    )
        ctx.store.upsert_payments(ctx.slug, parsed)
        summary.payments_loaded += len(parsed)
        if outcomes is not None:
            outcomes.flush()
    if rejections and not summary.dry_run:
        ctx.store.record_rejections(ctx.slug, rejections)


def _fields_marker(location_id: str, field_ids: dict[str, str]) -> str:
    """What the practice's contacts were written against: the location and a digest of its Cherry field ids."""
    digest = hashlib.sha256(json.dumps(sorted(field_ids.items())).encode()).hexdigest()[:32]
    return f"{location_id}:{digest}"


def rewrite_after_recreated_fields(
    ctx: PracticeContext, fields: ProvisionResult, syncer: PatientSyncer, summary: RunSummary
) -> None:
    """Heal a Cherry custom field someone deleted in the CRM: provisioning has just re-created it (by its key), and
    the values the deleted field held went with it. So every contact synced before is written again now (only the
    values that differ are sent), instead of waiting for each patient's next change in Cherry.

    The store remembers which field ids the contacts were written against (stream `crm_fields`), and moves it on
    only after the rewrite finished: a run that dies part-way (or runs out of daily budget) leaves it behind, so
    the next run rewrites again. A field created on a location with no synced contact (the first provisioning)
    needs nothing; neither does a practice moved to another CRM location (that is not a deleted field).
    """
    if summary.dry_run:
        return
    location_id = ctx.crm.location_id
    current = _fields_marker(location_id, fields.field_ids)
    written_against = ctx.store.get_cursor(ctx.slug, FIELDS_STREAM)
    if written_against == current:
        return
    same_location = written_against is None or written_against.split(":", 1)[0] == location_id
    changed = bool(fields.created) or written_against is not None
    synced = [state.patient_id for state in ctx.store.iter_patient_states(ctx.slug) if state.crm_contact_id]
    if synced and same_location and changed:
        log.warning(
            "practice %s: Cherry custom field(s) were missing in the CRM (deleted there?) and were re-created%s; "
            "rewriting the values of %d synced contact(s)",
            ctx.slug,
            f": {', '.join(fields.created)}" if fields.created else " by an earlier run",
            len(synced),
        )
        ctx.store.clear_written_hashes(ctx.slug, synced)
        counts = syncer.resync_stored(synced)
        summary.fields["recreated"] = list(fields.created)
        summary.fields["contacts_rewritten"] = counts.updated + counts.created
        summary.fields["contacts_rewrite_rejected"] = counts.rejected
    ctx.store.set_cursor(ctx.slug, FIELDS_STREAM, current)


def opportunity_ids_since(ctx: PracticeContext, target: PipelineTarget) -> datetime:
    """Since when the opportunity ids the store records are in this location and pipeline.

    The store keeps each payment's opportunity id, not where it lives. The `crm_opportunities` stream remembers
    the location and pipeline and the moment they were first used; when either changes (or on the first run
    that keeps this), the marker moves to now, so ids recorded before then are searched for again, not written.
    """
    where = f"{ctx.crm.location_id}:{target.pipeline_id}"
    marker = ctx.store.get_cursor(ctx.slug, OPPORTUNITIES_STREAM)
    if marker:
        recorded_where, _, since = marker.rpartition("@")
        if recorded_where == where:
            try:
                return datetime.fromisoformat(since)
            except ValueError:
                log.warning("practice %s: unreadable %s marker; starting it again", ctx.slug, OPPORTUNITIES_STREAM)
    now = datetime.now(UTC)
    ctx.store.set_cursor(ctx.slug, OPPORTUNITIES_STREAM, f"{where}@{now.isoformat()}")
    return now


def mark_event_feed_start(ctx: PracticeContext) -> None:
    """Before the first backfill pages, remember where the event feed ends now.

    The backfill covers everything up to this point, so the refresh starts here instead of replaying the
    practice's whole event history (and creating contacts for patients outside the backfill's scope).
    An existing cursor is never moved.
    """
    if ctx.store.get_cursor(ctx.slug, EVENTS_STREAM) is not None:
        return
    tail = None
    for page in ctx.cherry.iter_event_pages():
        tail = page.next_cursor or tail
    if tail:
        ctx.store.set_cursor(ctx.slug, EVENTS_STREAM, tail)


def backfill_practice(
    ctx: PracticeContext, *, scope: str = "active", page_size: int = 500, dry_run: bool = False
) -> RunSummary:
    """Pull every (active) Cherry patient of the practice into the CRM, resuming from the last checkpoint.

    The checkpoint moves past a page only after the CRM confirmed that page's writes, so a killed task
    resumes at the first unconfirmed page; re-processing a page is harmless (writes are diffed).
    First the practice's three time zones must agree (`TimezoneMismatch` otherwise, before any write).
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}")
    zone = agreed_zone(ctx.practice, ctx.cherry, ctx.crm)
    summary = RunSummary(ctx.slug, "backfill", dry_run)
    fields = provision_fields(ctx.crm, dry_run=dry_run)
    summary.fields = fields.summary()
    outcomes = OutcomeLog.for_context(ctx, "backfill", dry_run=dry_run)
    load_payments(ctx, summary, outcomes=outcomes)
    syncer = _syncer(
        ctx, zone, fields.field_ids, PrefetchedDirectory(ctx.crm), dry_run, index_owners=True, outcomes=outcomes
    )
    rewrite_after_recreated_fields(ctx, fields, syncer, summary)

    if not dry_run:
        mark_event_feed_start(ctx)
    checkpoint = None if dry_run else ctx.store.begin_checkpoint(ctx.slug, scope)
    cursor = checkpoint.cursor if checkpoint else None
    pages_done = checkpoint.pages_done if checkpoint else 0
    patients_done = checkpoint.patients_done if checkpoint else 0
    summary.resumed_from_page = pages_done
    if pages_done:
        log.info("resuming backfill of %s at page %d", ctx.slug, pages_done + 1)
    status = AccountStatus.ACTIVE if scope == "active" else None
    for page in ctx.cherry.iter_patient_pages(status=status, limit=page_size, cursor=cursor):
        summary.patients.add(syncer.sync_raw(page.items))
        summary.pages += 1
        pages_done += 1
        patients_done += len(page.items)
        if not dry_run:
            ctx.store.save_checkpoint(ctx.slug, scope, page.next_cursor, pages_done, patients_done)
    if not dry_run:
        ctx.store.complete_checkpoint(ctx.slug, scope)
    summary.api_calls = ctx.api_calls()
    return summary


def refresh_practice(
    ctx: PracticeContext, *, page_size: int = 500, dry_run: bool = False, max_pages: int = 200, read_feed: bool = True
) -> RunSummary:
    """Apply the webhooks waiting in the inbox, then (unless `read_feed` is false) Cherry events after the stored
    cursor; the cursor advances page by page, after each page landed. Both go through one `EventApplier`, so an
    event seen both ways is applied once.

    First the practice's three time zones must agree (`TimezoneMismatch` otherwise, before any write)."""
    zone = agreed_zone(ctx.practice, ctx.cherry, ctx.crm)
    summary = RunSummary(ctx.slug, "refresh", dry_run, events=EventCounts())
    fields = provision_fields(ctx.crm, dry_run=dry_run)
    summary.fields = fields.summary()
    outcomes = OutcomeLog.for_context(ctx, "refresh", dry_run=dry_run)
    syncer = _syncer(ctx, zone, fields.field_ids, LiveDirectory(ctx.crm), dry_run, outcomes=outcomes)
    rewrite_after_recreated_fields(ctx, fields, syncer, summary)
    opportunity = ctx.practice.options.opportunity
    updater = None
    if opportunity is not None:
        target = resolve_pipeline(ctx.crm, opportunity.pipeline, opportunity.stage)
        since = None if dry_run else opportunity_ids_since(ctx, target)
        updater = OpportunityUpdater(ctx.crm, target, dry_run=dry_run, trusted_since=since)
    applier = EventApplier(store=ctx.store, syncer=syncer, opportunities=updater, dry_run=dry_run)
    summary.webhooks = apply_inbox(
        ctx.store, ctx.slug, applier, summary.events, summary.patients, page_size=page_size, dry_run=dry_run
    )
    if not read_feed:
        summary.api_calls = ctx.api_calls()
        return summary

    cursor = ctx.store.get_cursor(ctx.slug, EVENTS_STREAM)
    for page in ctx.cherry.iter_event_pages(cursor=cursor, limit=page_size):
        applier.apply_page(page.items, summary.events, summary.patients)
        summary.pages += 1
        if page.next_cursor and not dry_run:
            ctx.store.set_cursor(ctx.slug, EVENTS_STREAM, page.next_cursor)
        if summary.pages >= max_pages:
            log.info("refresh of %s stopped after %d pages; the next run continues", ctx.slug, max_pages)
            break
    summary.api_calls = ctx.api_calls()
    return summary
