"""Apply one page of Cherry events to the store and the CRM (the incremental refresh).

Delivery is at-least-once and not ordered, so: events already processed are dropped by id; `test.ping` is
ignored; each object is kept only if it is newer than what the store holds (an older version never
overwrites a newer one); patient events re-sync the contact, payment events re-sync the contact's
payment fields and, for practices with a pipeline, update the payment's opportunity (each payment state
once). The caller advances the cursor only after `apply_page` returned, i.e. after the effects landed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from cherry_sync.domain import (
    CherryPatient,
    CherryPayment,
    Entity,
    EventType,
    PaymentStatus,
    RecordRejected,
    parse_event,
    parse_event_subject,
)
from cherry_sync.hooks import errors
from cherry_sync.hooks.crm import trace_id_of
from cherry_sync.hooks.inflight import Job, WriteWindow
from cherry_sync.reasons import ReasonCode
from cherry_sync.store import OutcomeOperation, OutcomeResult, PaymentSnapshot, PaymentState, Rejection, SyncStore
from cherry_sync.sync.opportunities import OpportunityUpdater
from cherry_sync.sync.patients import PatientSyncer, Stage, SyncCounts, rejection_of

log = logging.getLogger(__name__)


@dataclass
class EventCounts:
    """Per-run event counters (no patient data)."""

    events: int = 0
    duplicates: int = 0
    pings: int = 0
    stale_payments: int = 0
    payments_applied: int = 0
    opportunities_updated: int = 0
    rejected: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def payment_snapshot(payment: CherryPayment) -> PaymentSnapshot:
    return PaymentSnapshot(
        payment_id=payment.id,
        patient_id=payment.patient_id,
        snapshot=payment.model_dump(mode="json"),
        status=payment.status.value,
        amount=payment.amount,
        refund_amount=payment.refund_amount,
        source_updated_at=payment.updated_at,
    )


class EventApplier:
    """Applies event pages for one practice."""

    def __init__(
        self,
        *,
        store: SyncStore,
        syncer: PatientSyncer,
        opportunities: OpportunityUpdater | None,
        dry_run: bool = False,
    ) -> None:
        self.store = store
        self.syncer = syncer
        self.opportunities = opportunities
        self.dry_run = dry_run
        self.slug = syncer.slug
        self.outcomes = syncer.outcomes  # one log per run: the page's outcomes are written together

    def apply_page(self, raw_events: list[object], counts: EventCounts, patient_counts: SyncCounts) -> None:
        """Apply one page; every record's outcome is recorded on the way out, even when the page fails."""
        try:
            self._apply_page(raw_events, counts, patient_counts)
        finally:
            self.outcomes.flush()

    def _rejected(self, rejection: Rejection) -> Rejection:
        """Note a record the page rejects before any write (an unreadable event or subject)."""
        self.outcomes.add(
            rejection.entity,
            rejection.source_id,
            OutcomeOperation.SKIP,
            OutcomeResult.REJECTED,
            reason=rejection.reason_code,
        )
        return rejection

    def _payment(self, state: PaymentState, operation: OutcomeOperation, result=OutcomeResult.OK, **kwargs) -> None:
        self.outcomes.add(Entity.PAYMENT.value, state.payment_id, operation, result, **kwargs)

    def _apply_page(self, raw_events: list[object], counts: EventCounts, patient_counts: SyncCounts) -> None:
        rejections: list[Rejection] = []
        fresh_ids = self.store.filter_new_events(
            self.slug, [e.get("id") for e in raw_events if isinstance(e, dict) and e.get("id")]
        )
        seen: set[str] = set()
        patient_records: list[dict] = []
        payments: list[CherryPayment] = []
        processed: list[str] = []
        for raw in raw_events:
            counts.events += 1
            try:
                event = parse_event(raw)
            except RecordRejected as exc:
                counts.rejected += 1
                rejections.append(self._rejected(rejection_of(exc, raw)))
                continue
            if event.id not in fresh_ids or event.id in seen:
                counts.duplicates += 1
                continue
            seen.add(event.id)
            processed.append(event.id)
            counts.by_type[event.type.value] = counts.by_type.get(event.type.value, 0) + 1
            if event.is_ping:
                counts.pings += 1
                continue
            try:
                subject = parse_event_subject(event)
            except RecordRejected as exc:
                counts.rejected += 1
                rejections.append(self._rejected(rejection_of(exc, raw)))
                continue
            if isinstance(subject, CherryPatient):
                # Kept raw: the syncer parses, stores (newer wins) and syncs in one place.
                patient_records.append(event.data)
            elif isinstance(subject, CherryPayment):
                payments.append(subject)
            elif event.type in (EventType.PATIENT_CREATED, EventType.PATIENT_REFRESHED):
                log.warning("event %s carried no patient object; ignored", event.id)

        # Payments first, so the patients synced below already show their latest payment (one contact write
        # per patient per page, not one for the patient event and another for the payment event).
        payment_states = self._store_payments(payments, counts)
        patient_counts.add(self.syncer.sync_raw(patient_records))
        self._apply_payments(payment_states, counts, patient_counts)
        if rejections and not self.dry_run:
            self.store.record_rejections(self.slug, rejections)
        if not self.dry_run:
            self.store.mark_events_processed(self.slug, processed)

    def _store_payments(self, payments: list[CherryPayment], counts: EventCounts) -> dict[str, PaymentState]:
        """Keep the newer payment versions; returns the stored state of those applied (not stale).

        As for patients, the store mirrors Cherry even in a dry run (the backfill's dry run loads payments too),
        so a dry run re-syncs and counts what the real run will; only CRM-side state waits for a real run.
        """
        if not payments:
            return {}
        applied = self.store.upsert_payments(self.slug, [payment_snapshot(p) for p in payments])
        stale = {p.id for p in payments} - applied
        counts.stale_payments += len(stale)
        for payment_id in sorted(stale):  # an older version than the store holds: nothing to apply
            self.outcomes.add(Entity.PAYMENT.value, payment_id, OutcomeOperation.SKIP)
        return self.store.get_payments(self.slug, applied)

    def _apply_payments(self, states: dict[str, PaymentState], counts: EventCounts, patient_counts: SyncCounts) -> None:
        if not states:
            return
        # The contact shows the patient's latest payment: re-sync those patients from their snapshots, unless
        # this page's patient events just did.
        patient_ids = sorted({state.patient_id for state in states.values()})
        patient_counts.add(self.syncer.resync_stored(sorted(set(patient_ids) - self.syncer.last_batch)))
        if self.opportunities is None:
            for state in states.values():  # no pipeline: the payment shows on the contact only (recorded there)
                self._payment(state, OutcomeOperation.SKIP)
            return
        contacts = self.store.get_patient_states(self.slug, patient_ids)
        marks: list[tuple[str, str, str | None]] = []
        rejections: list[Rejection] = []
        # One opportunity per contact and pipeline: it follows the newest payment applied to it. Settlements
        # are applied before completions, so an older payment's refund in the same page cannot undo a newer
        # payment's win, and a settlement of a payment whose opportunity a newer one took over leaves it alone.
        newest = self._newest_per_opportunity(patient_ids)
        completed = PaymentStatus.COMPLETED.value
        # The opportunity each patient's last completed payment went to, so the next one can go straight to it.
        since = self.opportunities.trusted_since
        known = (
            self.store.get_opportunity_ids(self.slug, patient_ids, applied_status=completed, applied_since=since)
            if since
            else {}
        )
        # One chain of payment states per contact, in that order; chains go out several at a time (no two writes
        # for one contact at once), and what they did is recorded here, in order, once all have answered.
        chains: dict[str, list[PaymentState]] = {}
        for state in sorted(states.values(), key=lambda s: (s.status == completed, _rank(s))):
            if state.applied_status == state.status:
                self._payment(state, OutcomeOperation.UNCHANGED, crm_id=state.crm_opportunity_id)
                continue  # this payment state was applied already
            patient = contacts.get(state.patient_id)
            if patient is None or not patient.crm_contact_id:
                self._payment(state, OutcomeOperation.SKIP)
                continue  # no contact yet (patient unknown or rejected): applied when the contact exists
            chains.setdefault(patient.crm_contact_id, []).append(state)
        self.opportunities.prefetch(
            {
                contact_id
                for contact_id, chain in chains.items()
                if self.opportunities.needs_search(chain[0], known.get(chain[0].patient_id))
            }
        )
        lock = threading.Lock()

        # (what happened, the payment state, the opportunity id / CRM message / error, the CRM's trace id)
        def run_chain(contact_id: str, chain: list[PaymentState]) -> list[tuple[str, PaymentState, object, object]]:
            done: list[tuple[str, PaymentState, object, object]] = []
            for state in chain:
                with lock:
                    holder = newest.get(state.crm_opportunity_id) if state.crm_opportunity_id else None
                if state.status != completed and holder is not None and holder > _rank(state):
                    done.append(("superseded", state, None, None))
                    continue
                try:
                    opportunity_id = self.opportunities.apply(state, contact_id, known.get(state.patient_id))
                except errors.ValidationError as exc:
                    done.append(("rejected", state, exc.api_message, trace_id_of(exc)))
                    continue
                except Exception as exc:  # noqa: BLE001 - recorded below after the chain's confirmed states
                    done.append(("failed", state, exc, trace_id_of(exc)))
                    break
                done.append(("applied", state, opportunity_id, self.opportunities.crm.last_trace_id))
                if opportunity_id is not None:
                    with lock:
                        newest[opportunity_id] = max(newest.get(opportunity_id, _rank(state)), _rank(state))
                        known[state.patient_id] = opportunity_id
            return done

        with WriteWindow(self.opportunities.crm) as window:
            outcomes = window.run([Job(cid, partial(run_chain, cid, chain)) for cid, chain in chains.items()])
        failure: BaseException | None = None
        for outcome in outcomes:
            if not outcome.ok:
                failure = failure or outcome.error
                continue
            for kind, state, value, trace in outcome.result:
                if kind == "failed":
                    failure = failure or value
                    reason = getattr(value, "reason_code", None)
                    self._payment(
                        state, OutcomeOperation.OPPORTUNITY_UPDATE, OutcomeResult.FAILED, reason=reason, trace_id=trace
                    )
                elif kind == "rejected":
                    rejections.append(
                        Rejection(
                            Entity.PAYMENT.value, state.payment_id, Stage.CRM_WRITE, ReasonCode.CRM_REJECTED, value
                        )
                    )
                    counts.rejected += 1
                    self._payment(
                        state,
                        OutcomeOperation.OPPORTUNITY_UPDATE,
                        OutcomeResult.REJECTED,
                        reason=ReasonCode.CRM_REJECTED,
                        trace_id=trace,
                    )
                else:
                    marks.append((state.payment_id, state.status, value))
                    counts.payments_applied += 1
                    counts.opportunities_updated += kind == "applied" and value is not None
                    if kind == "applied" and value is not None:
                        created = value in self.opportunities.created
                        operation = (
                            OutcomeOperation.OPPORTUNITY_CREATE if created else OutcomeOperation.OPPORTUNITY_UPDATE
                        )
                        self._payment(state, operation, crm_id=value, trace_id=trace)
                    else:  # superseded by a newer payment, or nothing was won for it to settle
                        self._payment(state, OutcomeOperation.SKIP, crm_id=value)
        if not self.dry_run:
            self.store.mark_payment_applied(self.slug, marks)
            if rejections:
                self.store.record_rejections(self.slug, rejections)
        if failure is not None:
            raise failure

    def _newest_per_opportunity(self, patient_ids: list[str]) -> dict[str, tuple[datetime, str]]:
        """Opportunity id -> rank of the newest payment applied to it, from the store."""
        newest: dict[str, tuple[datetime, str]] = {}
        for payments in self.store.get_payments_by_patient(self.slug, patient_ids).values():
            for payment in payments:
                key = payment.crm_opportunity_id
                if key and payment.applied_status:
                    rank = _rank(payment)
                    if key not in newest or rank > newest[key]:
                        newest[key] = rank
        return newest


def _rank(payment: PaymentState) -> tuple[datetime, str]:
    """Payments by age: `created_at` (when the checkout happened), ties broken by id, as `latest_payment`."""
    created = payment.snapshot.get("created_at") if isinstance(payment.snapshot, dict) else None
    try:
        when = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        when = payment.source_updated_at
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when, payment.payment_id
