"""Bring CRM contacts in line with a batch of Cherry patients: parse, store, diff, match, write.

One batch = one Cherry page (backfill) or the patients touched by one page of events (refresh). For each
patient: parse (a bad record is rejected with its reason and the rest go on), keep the newest snapshot in
the store, build the contact Cherry wants, and compare its hash with what was last written: unchanged ->
no CRM call. Otherwise find the contact (stored id, then email, phone, name + date of birth), plan the
non-destructive merge and write only what differs. Two patients resolving to one contact are flagged and
neither overwrites the other. Results are recorded per batch, after the CRM confirmed the writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cherry_sync.domain import (
    CherryPatient,
    CherryPayment,
    DesiredContact,
    Entity,
    Estimates,
    PracticeEstimates,
    RecordRejected,
    content_hash,
    desired_contact,
    latest_payment,
    match_keys,
    parse_patient,
    parse_payment,
    plan_contact_write,
)
from cherry_sync.domain.contact_points import email_match_key, normalise_phone
from cherry_sync.domain.matching import MatchKeys
from cherry_sync.hooks import errors
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.store import PatientSnapshot, PatientState, Rejection, SyncStore
from cherry_sync.sync.contacts import ContactDirectory

log = logging.getLogger(__name__)


class Stage:
    """Where in the pipeline a record was rejected (the store's `stage` column)."""

    PARSE = "parse"
    MAP = "map"
    MATCH = "match"
    CRM_WRITE = "crm_write"


@dataclass
class SyncCounts:
    """What a run did for one practice. Only counts and reason codes: safe to log and to put in XCom."""

    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    rejected: int = 0
    rejects_by_reason: Counter = field(default_factory=Counter)
    warnings_by_reason: Counter = field(default_factory=Counter)

    def add(self, other: SyncCounts) -> None:
        for name in ("read", "created", "updated", "unchanged", "stale", "rejected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejects_by_reason.update(other.rejects_by_reason)
        self.warnings_by_reason.update(other.warnings_by_reason)

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "stale": self.stale,
            "rejected": self.rejected,
            "rejects_by_reason": dict(sorted(self.rejects_by_reason.items())),
            "warnings_by_reason": dict(sorted(self.warnings_by_reason.items())),
        }


def opaque_id(raw: object) -> str:
    """A stable stand-in id for a record whose own id is missing (a hash: reveals nothing of the content)."""
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"no-id-{digest}"


def rejection_of(exc: RecordRejected, raw: object, stage: str = Stage.PARSE) -> Rejection:
    return Rejection(
        entity=exc.entity.value,
        source_id=exc.source_id or opaque_id(raw),
        stage=stage,
        reason_code=exc.reason_code.value,
        message=f"{exc.field or 'record'}: {exc.message}",
    )


def snapshot_of(patient: CherryPatient) -> PatientSnapshot:
    return PatientSnapshot(
        patient_id=patient.id,
        snapshot=patient.model_dump(mode="json", exclude={"warnings"}),
        source_updated_at=patient.updated_at,
        account_status=patient.account_status.value,
        balance_available=patient.balance_available,
    )


@dataclass
class _Planned:
    patient: CherryPatient
    desired: DesiredContact
    digest: str


class PatientSyncer:
    """Syncs batches of Cherry patients of one practice into its CRM location."""

    def __init__(
        self,
        *,
        store: SyncStore,
        crm: AesthetixCrmHook,
        slug: str,
        timezone: str,
        field_ids: dict[str, str],
        directory: ContactDirectory,
        practice_estimates: PracticeEstimates | None = None,
        patient_estimates: Callable[[str], Estimates | None] | None = None,
        dry_run: bool = False,
        index_owners: bool = False,
    ) -> None:
        self.store = store
        self.crm = crm
        self.slug = slug
        self.timezone = timezone
        self.field_ids = field_ids
        self.directory = directory
        self.practice_estimates = practice_estimates
        self.patient_estimates = patient_estimates
        self.dry_run = dry_run
        self.claimed: dict[str, str] = {}  # contact id -> patient id, for this run
        self.last_batch: set[str] = set()  # patient ids the last `sync_raw` brought up to date (or rejected)
        # contact id -> patient id as stored at the first lookup. A backfill matches most patients to a contact,
        # so it reads the practice's mapping once instead of asking the store per contact (index_owners=True);
        # a refresh touches a few patients and asks per contact.
        self._stored_owners: dict[str, str] | None = None if index_owners else {}
        self._index_owners = index_owners

    # -- entry points ----------------------------------------------------------------------------

    def sync_raw(self, raw_records: Iterable[object]) -> SyncCounts:
        """Parse, store and sync raw Cherry patient records (one page)."""
        counts = SyncCounts()
        rejections: list[Rejection] = []
        parsed: dict[str, CherryPatient] = {}
        for raw in raw_records:
            counts.read += 1
            try:
                patient = parse_patient(raw)
            except RecordRejected as exc:
                self._reject(counts, rejections, rejection_of(exc, raw))
                continue
            counts.warnings_by_reason.update(w.reason_code.value for w in patient.warnings)
            kept = parsed.get(patient.id)
            if kept is None or patient.updated_at >= kept.updated_at:
                parsed[patient.id] = patient
            if kept is not None and kept.updated_at != patient.updated_at:
                # Two versions in one batch (an out-of-order pair of events): the older one is stale.
                counts.stale += 1
        # The store mirrors Cherry even in a dry run; only CRM-side state (mappings, hashes) waits for real runs.
        applied = self.store.upsert_patient_snapshots(self.slug, [snapshot_of(p) for p in parsed.values()])
        stale = set(parsed) - applied
        counts.stale += len(stale)
        for patient_id in stale:
            # An older version than the store holds: the newer one was (or will be) synced instead.
            del parsed[patient_id]
        self._record_rejections(rejections)
        self._sync_patients(list(parsed.values()), counts)
        self.last_batch = set(parsed)
        return counts

    def resync_stored(self, patient_ids: Iterable[str]) -> SyncCounts:
        """Re-sync patients from their stored snapshots (e.g. after one of their payments changed)."""
        counts = SyncCounts()
        states = self.store.get_patient_states(self.slug, patient_ids)
        patients = []
        for state in states.values():
            try:
                patients.append(parse_patient(dict(state.snapshot)))
            except RecordRejected as exc:  # a snapshot we stored parsed before; only a contract change gets here
                self._reject(counts, [], rejection_of(exc, state.patient_id))
        counts.read += len(patients)
        self._sync_patients(patients, counts)
        return counts

    # -- the work --------------------------------------------------------------------------------

    def _sync_patients(self, patients: list[CherryPatient], counts: SyncCounts) -> None:
        if not patients:
            return
        rejections: list[Rejection] = []
        states = self.store.get_patient_states(self.slug, [p.id for p in patients])
        payments = self.store.get_payments_by_patient(self.slug, [p.id for p in patients])
        written: list[tuple[str, str, str]] = []
        synced: list[str] = []
        for patient in patients:
            planned = self._plan(patient, payments.get(patient.id, []), counts, rejections)
            if planned is None:
                continue
            state = states.get(patient.id)
            if state and state.crm_contact_id and state.written_hash == planned.digest:
                counts.unchanged += 1
                self.claimed[state.crm_contact_id] = patient.id
                synced.append(patient.id)
                continue
            outcome = self._write(planned, state.crm_contact_id if state else None, counts, rejections)
            if outcome is not None:
                written.append((patient.id, outcome, planned.digest))
                synced.append(patient.id)
        if not self.dry_run:
            self.store.mark_written(self.slug, written)
            self.store.resolve_rejections(self.slug, Entity.PATIENT.value, synced)
        self._record_rejections(rejections)

    def _plan(self, patient: CherryPatient, payment_states, counts, rejections) -> _Planned | None:
        try:
            payment_models: list[CherryPayment] = [parse_payment(dict(p.snapshot)) for p in payment_states]
            patient_est = self.patient_estimates(patient.id) if self.patient_estimates else None
            desired = desired_contact(
                patient,
                practice_tz=self.timezone,
                latest_payment=latest_payment(payment_models),
                practice_estimates=self.practice_estimates,
                patient_estimates=patient_est,
            )
        except RecordRejected as exc:
            self._reject(counts, rejections, rejection_of(exc, patient.id, Stage.MAP))
            return None
        return _Planned(patient, desired, content_hash(desired))

    def _write(self, planned: _Planned, stored_contact_id: str | None, counts, rejections) -> str | None:
        """Match and write one patient; returns the contact id, or None when rejected."""
        patient_id = planned.patient.id
        existing = self.directory.get(stored_contact_id) if stored_contact_id else None
        if existing is None:
            existing = self.directory.match(match_keys(planned.desired))
        if existing is not None and not self._claim(existing["id"], patient_id, counts, rejections):
            return None
        if existing is not None:
            taken = self._held_elsewhere(planned.desired, existing)
            if taken is not None:
                # The e-mail or phone Cherry now has belongs to another contact: the patient resolves to two
                # contacts (and the CRM would refuse the move as a duplicate). Flag it; touch neither.
                self._conflict(taken, patient_id, self._owner(taken), counts, rejections)
                return None
        write = plan_contact_write(planned.desired, existing, self.field_ids)
        if write is None:
            counts.unchanged += 1
            return existing["id"]
        try:
            if self.dry_run:
                contact_id = existing["id"] if existing else f"dry-run-{patient_id}"
                created = existing is None
                contact = {**(existing or {}), "id": contact_id}
            elif write.is_create:
                contact, created = self.crm.upsert_contact(write.upsert_body(self.crm.location_id))
                contact_id = contact["id"]
                if not created and not self._claim(contact_id, patient_id, counts, rejections):
                    return None
            else:
                contact = self.crm.update_contact(write.contact_id, write.update_body())
                contact_id, created = write.contact_id, False
        except errors.ValidationError as exc:
            # The CRM refused this one contact (e.g. a value it will not take): keep it and go on.
            self._reject(
                counts,
                rejections,
                Rejection(Entity.PATIENT.value, patient_id, Stage.CRM_WRITE, "crm_rejected", exc.api_message),
            )
            return None
        self.claimed[contact_id] = patient_id
        self.directory.remember({**(existing or {}), **_as_contact(write, contact_id), **(contact or {})})
        if created:
            counts.created += 1
        else:
            counts.updated += 1
        return contact_id

    def _owner(self, contact_id: str) -> str | None:
        """The Cherry patient a contact was synced from (in this run, else per the store), if any."""
        owner = self.claimed.get(contact_id)
        if owner is not None:
            return owner
        if self._index_owners:
            if self._stored_owners is None:
                self._stored_owners = self._load_owners()
            return self._stored_owners.get(contact_id)
        holder = self.store.find_patient_by_contact(self.slug, contact_id)
        return holder.patient_id if holder else None

    def _load_owners(self) -> dict[str, str]:
        """Every stored contact -> patient assignment of the practice (the most recently updated patient wins,
        as in `SyncStore.find_patient_by_contact`)."""
        owners: dict[str, PatientState] = {}
        for state in self.store.iter_patient_states(self.slug):
            if not state.crm_contact_id:
                continue
            kept = owners.get(state.crm_contact_id)
            if (
                kept is None
                or state.source_updated_at > kept.source_updated_at
                or (state.source_updated_at == kept.source_updated_at and state.patient_id < kept.patient_id)
            ):
                owners[state.crm_contact_id] = state
        return {contact_id: state.patient_id for contact_id, state in owners.items()}

    def _claim(self, contact_id: str, patient_id: str, counts, rejections) -> bool:
        """A contact belongs to at most one Cherry patient; a second claimant is flagged, not merged."""
        owner = self._owner(contact_id)
        if owner is None or owner == patient_id:
            return True
        self._conflict(contact_id, patient_id, owner, counts, rejections)
        return False

    def _held_elsewhere(self, desired: DesiredContact, contact: dict) -> str | None:
        """The id of another contact already holding the e-mail or phone this write would give `contact`."""
        keys = match_keys(desired)
        current_email = email_match_key(contact.get("email"))
        current_phone = normalise_phone(contact.get("phone")) if contact.get("phone") else None
        for email, phone in ((keys.email, None), (None, keys.phone)):
            if (email is None or email == current_email) and (phone is None or phone == current_phone):
                continue  # not given, or not changing: nothing moves onto this contact
            found = self.directory.match(MatchKeys(email=email, phone=phone, name_dob=None))
            if found is not None and found["id"] != contact["id"]:
                return found["id"]
        return None

    def _conflict(self, contact_id: str, patient_id: str, owner: str | None, counts, rejections) -> None:
        held = f"already synced from Cherry patient {owner}" if owner else "which holds its e-mail or phone"
        self._reject(
            counts,
            rejections,
            Rejection(
                Entity.PATIENT.value,
                patient_id,
                Stage.MATCH,
                "contact_conflict",
                f"resolves to CRM contact {contact_id}, {held}",
            ),
        )

    def _reject(self, counts: SyncCounts, rejections: list[Rejection], rejection: Rejection) -> None:
        counts.rejected += 1
        counts.rejects_by_reason[rejection.reason_code] += 1
        rejections.append(rejection)

    def _record_rejections(self, rejections: list[Rejection]) -> None:
        if rejections and not self.dry_run:
            self.store.record_rejections(self.slug, rejections)


def _as_contact(write, contact_id: str) -> dict:
    """What the contact holds after `write`, in the CRM's read shape (for the in-run directory)."""
    contact: dict[str, Any] = {"id": contact_id, **write.standard}
    if write.custom_fields:
        contact["customFields"] = [{"id": w.field_id, "value": w.as_json()["field_value"]} for w in write.custom_fields]
    return contact
