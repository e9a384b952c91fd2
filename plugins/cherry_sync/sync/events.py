"""Apply one page of Cherry events to the store and the CRM (the incremental refresh).

Delivery is at-least-once and not ordered, so: events already processed are dropped by id; `test.ping` is
ignored; each object is kept only if it is newer than what the store holds (an older version never
overwrites a newer one); patient events re-sync the contact, payment events re-sync the contact's
payment fields and, for practices with a pipeline, update the payment's opportunity (each payment state
once). The caller advances the cursor only after `apply_page` returned, i.e. after the effects landed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cherry_sync.domain import (
    CherryPatient,
    CherryPayment,
    Entity,
    EventType,
    RecordRejected,
    parse_event,
    parse_event_subject,
)
from cherry_sync.hooks import errors
from cherry_sync.store import PaymentSnapshot, Rejection, SyncStore
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

    def apply_page(self, raw_events: list[object], counts: EventCounts, patient_counts: SyncCounts) -> None:
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
                rejections.append(rejection_of(exc, raw))
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
                rejections.append(rejection_of(exc, raw))
                continue
            if isinstance(subject, CherryPatient):
                # Kept raw: the syncer parses, stores (newer wins) and syncs in one place.
                patient_records.append(event.data)
            elif isinstance(subject, CherryPayment):
                payments.append(subject)
            elif event.type in (EventType.PATIENT_CREATED, EventType.PATIENT_REFRESHED):
                log.warning("event %s carried no patient object; ignored", event.id)

        patient_counts.add(self.syncer.sync_raw(patient_records))
        self._apply_payments(payments, counts, patient_counts)
        if rejections and not self.dry_run:
            self.store.record_rejections(self.slug, rejections)
        if not self.dry_run:
            self.store.mark_events_processed(self.slug, processed)

    def _apply_payments(self, payments: list[CherryPayment], counts: EventCounts, patient_counts: SyncCounts) -> None:
        if not payments:
            return
        if self.dry_run:
            return
        applied = self.store.upsert_payments(self.slug, [payment_snapshot(p) for p in payments])
        counts.stale_payments += len({p.id for p in payments} - applied)
        states = self.store.get_payments(self.slug, applied)
        # The contact shows the patient's latest payment: re-sync those patients from their snapshots.
        patient_ids = sorted({state.patient_id for state in states.values()})
        patient_counts.add(self.syncer.resync_stored(patient_ids))
        if self.opportunities is None:
            return
        contacts = self.store.get_patient_states(self.slug, patient_ids)
        marks: list[tuple[str, str, str | None]] = []
        rejections: list[Rejection] = []
        for state in states.values():
            if state.applied_status == state.status:
                continue  # this payment state was applied already
            patient = contacts.get(state.patient_id)
            if patient is None or not patient.crm_contact_id:
                continue  # no contact yet (patient unknown or rejected): applied when the contact exists
            try:
                opportunity_id = self.opportunities.apply(state, patient.crm_contact_id)
            except errors.ValidationError as exc:
                rejections.append(
                    Rejection(Entity.PAYMENT.value, state.payment_id, Stage.CRM_WRITE, "crm_rejected", exc.api_message)
                )
                counts.rejected += 1
                continue
            marks.append((state.payment_id, state.status, opportunity_id))
            counts.payments_applied += 1
            counts.opportunities_updated += opportunity_id is not None
        self.store.mark_payment_applied(self.slug, marks)
        if rejections:
            self.store.record_rejections(self.slug, rejections)
