"""Bring CRM contacts in line with a batch of Cherry patients: parse, store, diff, match, write.

One batch = one Cherry page (backfill) or the patients touched by one page of events (refresh). For each
patient: parse (a bad record is rejected with its reason and the rest go on), keep the newest snapshot in
the store, build the contact Cherry wants, and compare its hash with what was last written: unchanged ->
no CRM call. Otherwise find the contact (stored id, then email, phone, name + date of birth), plan the
non-destructive merge and write only what differs. Two patients resolving to one contact are flagged and
neither overwrites the other. Results are recorded per batch, after the CRM confirmed the writes.

Families share phones and e-mails. A patient whose e-mail or phone another contact already holds (a relative's,
or one the CRM's duplicate rules would match on that point) gets a contact of their own without it: the shared
point is left off the write, is not used to match, and is recorded as a `shared_contact_point` warning. Only a
patient with no e-mail or phone of their own is rejected (`contact_conflict`). When a write moves a contact off
an e-mail or phone, patients waiting for that point are re-checked at once, so it is added where it became free.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
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
from cherry_sync.domain.mapping import PATIENT_ESTIMATE_FIELDS
from cherry_sync.domain.matching import MatchKeys
from cherry_sync.domain.merge import ContactWrite
from cherry_sync.hooks import errors
from cherry_sync.hooks.crm import AesthetixCrmHook, trace_id_of
from cherry_sync.hooks.inflight import Job, Outcome, WriteWindow
from cherry_sync.reasons import ReasonCode
from cherry_sync.store import OutcomeOperation, OutcomeResult, PatientSnapshot, PatientState, Rejection, SyncStore
from cherry_sync.store.models import WARNING
from cherry_sync.sync.contacts import ContactDirectory, slim
from cherry_sync.sync.outcomes import OutcomeLog, manual_run

log = logging.getLogger(__name__)

CONTACT_POINTS = ("email", "phone")  # the points the CRM's duplicate rules match on, in its order
PENDING = "pending:"  # provisional contact id of a create whose answer has not come back yet


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
    values_cleared: int = 0  # Cherry values emptied on existing contacts because Cherry no longer has them
    rejects_by_reason: Counter = field(default_factory=Counter)
    warnings_by_reason: Counter = field(default_factory=Counter)

    def add(self, other: SyncCounts) -> None:
        for name in ("read", "created", "updated", "unchanged", "stale", "rejected", "values_cleared"):
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
            "values_cleared": self.values_cleared,
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


@dataclass
class _Decision:
    """What one patient's write will be, decided before any write of the batch goes out."""

    planned: _Planned
    existing: dict | None  # the contact as known when deciding (None: a new contact)
    shared: dict[str, str]  # contact point name -> the other contact holding it (left off the write)
    digest: str  # hash of what is written (without the shared points)
    write: ContactWrite | None
    from_store: bool  # `existing` is the store's record of the last write, not a fresh read

    @property
    def key(self) -> str:
        """The contact this write is for: its id, or a provisional one until the CRM answers a create."""
        if self.existing is not None:
            return self.existing["id"]
        return f"{PENDING}{self.planned.patient.id}"


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
        outcomes: OutcomeLog | None = None,
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
        # Match keys (case-folded e-mail, E.164 phone) a write of this run moved a contact off: patients waiting
        # for one of them (open `shared_contact_point` warning) are re-checked before the entry point returns.
        self.freed: set[str] = set()
        self._rechecking = False
        # contact id -> patient id as stored at the first lookup. A backfill matches most patients to a contact,
        # so it reads the practice's mapping once instead of asking the store per contact (index_owners=True);
        # a refresh touches a few patients and asks per contact.
        self._stored_owners: dict[str, str] | None = None if index_owners else {}
        self._index_owners = index_owners
        # Every patient's outcome, written once per page; a parse warning is noted per patient until its outcome is.
        self.outcomes = outcomes or OutcomeLog(store, slug, manual_run("sync_patients"), dry_run=dry_run)
        self._warned: dict[str, str] = {}

    # -- entry points ----------------------------------------------------------------------------

    def sync_raw(self, raw_records: Iterable[object]) -> SyncCounts:
        """Parse, store and sync raw Cherry patient records (one page); their outcomes are recorded on the way out."""
        try:
            return self._sync_raw(raw_records)
        finally:
            self.outcomes.flush()

    def _sync_raw(self, raw_records: Iterable[object]) -> SyncCounts:
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
            if patient.warnings:
                self._warned[patient.id] = min(w.reason_code.value for w in patient.warnings)
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
        for patient_id in sorted(stale):
            # An older version than the store holds: the newer one was (or will be) synced instead.
            del parsed[patient_id]
            self._warned.pop(patient_id, None)
            self.outcomes.add(Entity.PATIENT.value, patient_id, OutcomeOperation.SKIP)
        self._record_rejections(rejections)
        self._sync_patients(list(parsed.values()), counts)
        self.last_batch = set(parsed)
        self._recheck_freed(counts)
        return counts

    def resync_stored(self, patient_ids: Iterable[str]) -> SyncCounts:
        """Re-sync patients from their stored snapshots (e.g. after one of their payments changed)."""
        try:
            return self._resync_stored(patient_ids)
        finally:
            self.outcomes.flush()

    def _resync_stored(self, patient_ids: Iterable[str]) -> SyncCounts:
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
        self._recheck_freed(counts)
        return counts

    def _recheck_freed(self, counts: SyncCounts) -> None:
        """Re-sync the patients waiting for an e-mail or phone that a write of this run freed.

        A patient whose point was left off has, as its written hash, the hash of what was written (without the
        point), so it never equals the hash of what Cherry wants: every backfill re-plans it, finds the point still
        held and writes nothing, or finds it free and adds it. The refresh only sees patients with events, and a
        relative's new phone is an event of the relative, not of the patient; so when a write here moves a contact
        off a point, the waiting patients (open warnings, read from the store) who want that point are re-synced
        now. This costs nothing when no point was freed, and no CRM call to find them.
        """
        if self._rechecking or self.dry_run:
            return
        self._rechecking = True
        try:
            for _ in range(3):  # a re-synced patient can free a point in turn (its contact's old phone); bounded
                if not self.freed:
                    return
                freed, self.freed = self.freed, set()
                waiting = self.store.open_source_ids(
                    self.slug, Entity.PATIENT.value, ReasonCode.SHARED_CONTACT_POINT.value
                )
                due = []
                for state in self.store.get_patient_states(self.slug, waiting).values():
                    try:
                        patient = parse_patient(dict(state.snapshot))
                    except RecordRejected:
                        continue
                    if {email_match_key(patient.email), patient.phone} & freed:
                        due.append(patient)
                if due:
                    log.info("practice %s: re-checking %d patient(s) whose shared point was freed", self.slug, len(due))
                    self._sync_patients(due, counts)
        finally:
            self._rechecking = False

    # -- the work --------------------------------------------------------------------------------

    def _sync_patients(self, patients: list[CherryPatient], counts: SyncCounts) -> None:
        """Decide every patient's write first (in order: matching sees the contacts the batch's earlier
        patients will write), then send the writes through a `WriteWindow`, then record what the CRM confirmed.

        A write the CRM refuses (422) is rejected with its reason; any other failure is raised after the
        confirmed writes of the batch were recorded, so a resumed run only repeats what was not confirmed.
        """
        if not patients:
            return
        rejections: list[Rejection] = []
        states = self.store.get_patient_states(self.slug, [p.id for p in patients])
        payments = self.store.get_payments_by_patient(self.slug, [p.id for p in patients])
        written: list[tuple] = []
        synced: list[str] = []
        planned_all: list[tuple[_Planned, PatientState | None]] = []
        for patient in patients:
            planned = self._plan(patient, payments.get(patient.id, []), counts, rejections)
            if planned is None:
                continue
            state = states.get(patient.id)
            if state and state.crm_contact_id and state.written_hash == planned.digest:
                counts.unchanged += 1
                self.claimed[state.crm_contact_id] = patient.id
                synced.append(patient.id)
                self._note(patient.id, OutcomeOperation.UNCHANGED, state.crm_contact_id, planned.digest)
                continue
            planned_all.append((planned, state))
        # Looked up together, one search for the batch instead of lookups per patient: new patients' points, and
        # the points known contacts are about to take on (whoever else holds one is left alone).
        self.directory.prefetch(_lookups(planned.desired, state) for planned, state in planned_all)
        fatal: BaseException | None = None
        round_ = planned_all
        for _ in range(2):  # a second round only re-matches contacts that were deleted in the CRM meanwhile
            decisions: list[_Decision] = []
            for planned, state in round_:
                decision = self._decide(planned, state, counts, rejections)
                if decision is None:
                    continue
                if decision.write is None:
                    self._settle_unchanged(decision, counts, rejections, written, synced)
                    continue
                decisions.append(decision)
            outcomes = self._send_all(decisions)
            round_ = []
            for decision, outcome in zip(decisions, outcomes, strict=True):
                if outcome.ok:
                    entry = self._settle(decision, outcome.result, counts, rejections)
                    if entry is not None:
                        written.append(entry)
                        synced.append(decision.planned.patient.id)
                    continue
                self._undo(decision)
                error = outcome.error
                if isinstance(error, errors.NotFoundError) and decision.from_store:
                    # The contact was deleted in the CRM since the last write: match again as a new patient.
                    self.directory.forget(decision.existing["id"])
                    round_.append((decision.planned, None))
                elif isinstance(error, errors.ValidationError):
                    # The CRM refused this one contact (e.g. a value it will not take): keep it and go on.
                    self._reject(
                        counts,
                        rejections,
                        Rejection(
                            Entity.PATIENT.value,
                            decision.planned.patient.id,
                            Stage.CRM_WRITE,
                            ReasonCode.CRM_REJECTED,
                            error.api_message,
                        ),
                        decision,
                        trace_id_of(error),
                    )
                else:
                    self._warned.pop(decision.planned.patient.id, None)
                    self.outcomes.add(
                        Entity.PATIENT.value,
                        decision.planned.patient.id,
                        _operation(decision.write, decision.existing),
                        OutcomeResult.FAILED,
                        crm_id=decision.existing["id"] if decision.existing else None,
                        reason=getattr(error, "reason_code", None),
                        trace_id=trace_id_of(error),
                    )
                    fatal = fatal or error
            if not round_:
                break
        if not self.dry_run:
            self.store.mark_written(self.slug, written)
            # Resolved first, then recorded: a patient written without a shared point keeps its warning open.
            self.store.resolve_rejections(self.slug, Entity.PATIENT.value, synced)
        self._record_rejections(rejections)
        if fatal is not None:
            raise fatal

    def _plan(self, patient: CherryPatient, payment_states, counts, rejections) -> _Planned | None:
        patient_est, unknown = self._patient_estimates(patient.id, counts)
        try:
            payment_models: list[CherryPayment] = [parse_payment(dict(p.snapshot)) for p in payment_states]
            desired = desired_contact(
                patient,
                practice_tz=self.timezone,
                latest_payment=latest_payment(payment_models),
                practice_estimates=self.practice_estimates,
                patient_estimates=patient_est,
                unknown=unknown,
            )
        except RecordRejected as exc:
            self._reject(counts, rejections, rejection_of(exc, patient.id, Stage.MAP))
            return None
        return _Planned(patient, desired, content_hash(desired))

    def _patient_estimates(self, patient_id: str, counts: SyncCounts) -> tuple[Estimates | None, tuple[str, ...]]:
        """The patient's own estimates (opt-in), and the fields whose Cherry value is unknown this time."""
        if self.patient_estimates is None:
            return None, ()
        try:
            return self.patient_estimates(patient_id), ()
        except RecordRejected as exc:
            # A malformed answer says nothing about the patient's estimates: keep what the CRM shows rather
            # than clear it on bad input, and count it (the next run asks again).
            counts.warnings_by_reason[exc.reason_code.value] += 1
            return None, PATIENT_ESTIMATE_FIELDS

    def _decide(self, planned: _Planned, state: PatientState | None, counts, rejections) -> _Decision | None:
        """Match one patient and plan its write; None when it is rejected. A planned write reserves its contact
        (claimed, and remembered by the directory as it will be) for the rest of the batch."""
        patient_id = planned.patient.id
        shared: dict[str, str] = {}  # contact point name -> id of the other contact holding it
        existing, from_store = None, False
        if state is not None and state.crm_contact_id:
            existing = self.directory.get(state.crm_contact_id, known=state.written_contact)
            from_store = existing is not None and state.written_contact is not None
        if existing is None:
            existing, from_store = self._match(planned.desired, patient_id, shared), False
        if existing is not None and not self._claim(existing["id"], patient_id, counts, rejections):
            return None
        if existing is not None:
            shared.update(self._held_elsewhere(planned.desired, existing, skip=shared))
        desired, digest = planned.desired, planned.digest
        if shared:
            if not [name for name in CONTACT_POINTS if getattr(desired, name) and name not in shared]:
                # Nothing of their own to reach them by: the patient resolves only to other contacts. Flag it.
                taken = shared.get("email") or shared["phone"]
                self._conflict(taken, patient_id, self._owner(taken), counts, rejections)
                return None
            # Leave the shared point off: not written, not in the upsert body (the CRM would match the relative on
            # it). The stored hash is that of what was written, so the patient is re-planned until it is added.
            desired = replace(desired, **dict.fromkeys(shared))
            digest = content_hash(desired)
        write = plan_contact_write(desired, existing, self.field_ids)
        decision = _Decision(planned, existing, shared, digest, write, from_store)
        # Claimed for the rest of the run, written or not: the practice's stored owners were read before this
        # patient was matched (a resumed page re-finds contacts its killed try wrote but never recorded).
        self.claimed[decision.key] = patient_id
        if write is not None:
            self.directory.remember({**(existing or {}), **_as_contact(write, decision.key, existing)})
        return decision

    def _send_all(self, decisions: list[_Decision]) -> list[Outcome]:
        """The batch's writes, several in flight (one job per contact: never two writes for one contact at once)."""
        if self.dry_run:
            return [Outcome(result=self._dry_answer(d)) for d in decisions]
        with WriteWindow(self.crm) as window:
            return window.run([Job(d.key, partial(self._send, d.write)) for d in decisions])

    def _send(self, write: ContactWrite) -> tuple[str, bool, dict, str | None]:
        """One write (runs on a window thread: CRM calls only, no store and no shared state); with the CRM's
        trace id of the answer."""
        if write.is_create:
            contact, created = self.crm.upsert_contact(write.upsert_body(self.crm.location_id))
            return contact["id"], created, contact, self.crm.last_trace_id
        updated = self.crm.update_contact(write.contact_id, write.update_body())
        return write.contact_id, False, updated, self.crm.last_trace_id

    @staticmethod
    def _dry_answer(decision: _Decision) -> tuple[str, bool, dict, None]:
        if decision.existing is not None:
            return decision.existing["id"], False, {}, None
        return f"dry-run-{decision.planned.patient.id}", True, {}, None

    def _settle(
        self, decision: _Decision, answer: tuple[str, bool, dict, str | None], counts, rejections
    ) -> tuple | None:
        """Record one confirmed write in the run's state; returns what the store keeps for it."""
        patient_id, write, existing = decision.planned.patient.id, decision.write, decision.existing
        contact_id, created, contact, trace_id = answer
        if decision.key != contact_id:  # a create: the provisional id gives way to the CRM's
            self.directory.forget(decision.key)
            self.claimed.pop(decision.key, None)
            if not created and not self._claim(contact_id, patient_id, counts, rejections):
                return None
        if existing is not None and not self.dry_run:
            self.freed.update(_moved_off(existing, write.standard))
        self.claimed[contact_id] = patient_id
        after = slim({**_as_contact(write, contact_id, existing), **(contact or {})})
        self.directory.remember(after)
        if created:
            counts.created += 1
        else:
            counts.updated += 1
        if existing is not None:
            counts.values_cleared += len(write.cleared_fields)
        self._warn_shared(decision.shared, patient_id, counts, rejections)
        operation = OutcomeOperation.CREATE if created else _operation(write, existing)
        self._note(patient_id, operation, contact_id, decision.digest, trace_id)
        return patient_id, contact_id, decision.digest, after

    def _settle_unchanged(self, decision: _Decision, counts, rejections, written: list, synced: list) -> None:
        """The contact already holds everything: nothing to send; its current state is recorded."""
        counts.unchanged += 1
        self._warn_shared(decision.shared, decision.planned.patient.id, counts, rejections)
        existing = decision.existing
        self._note(decision.planned.patient.id, OutcomeOperation.UNCHANGED, existing["id"], decision.digest)
        written.append((decision.planned.patient.id, existing["id"], decision.digest, slim(existing)))
        synced.append(decision.planned.patient.id)

    def _undo(self, decision: _Decision) -> None:
        """A write that did not go through: the contact is known as it was before the batch."""
        self.directory.forget(decision.key)
        self.claimed.pop(decision.key, None)
        if decision.existing is not None:
            self.directory.remember(decision.existing)

    def _match(self, desired: DesiredContact, patient_id: str, shared: dict[str, str]) -> dict | None:
        """The CRM's duplicate rules (e-mail, then phone), then name + date of birth, skipping another patient's
        contact: an e-mail or phone that leads there is shared with that patient (noted in `shared`), so the next
        key is tried. A name + date-of-birth match is returned whoever owns it (the caller's claim flags it)."""
        keys = match_keys(desired)
        for name in CONTACT_POINTS:
            key = getattr(keys, name)
            found = self.directory.match(_point_keys(name, key)) if key else None
            if found is None:
                continue
            owner = self._owner(found["id"])
            if owner is None or owner == patient_id:
                return found
            shared[name] = found["id"]
        if keys.name_dob is None:
            return None
        return self.directory.match(MatchKeys(email=None, phone=None, name_dob=keys.name_dob))

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

    def _held_elsewhere(self, desired: DesiredContact, contact: dict, *, skip: dict[str, str]) -> dict[str, str]:
        """{point name: id of another contact already holding it} for the e-mail or phone this write would give
        `contact` (points in `skip` are known to be shared already)."""
        keys = match_keys(desired)
        current = {
            "email": email_match_key(contact.get("email")),
            "phone": normalise_phone(contact.get("phone")) if contact.get("phone") else None,
        }
        held: dict[str, str] = {}
        for name in CONTACT_POINTS:
            key = getattr(keys, name)
            if key is None or key == current[name] or name in skip:
                continue  # not given, not changing (nothing moves onto this contact), or already known
            found = self.directory.match(_point_keys(name, key))
            if found is not None and found["id"] != contact["id"]:
                held[name] = found["id"]
        return held

    def _warn_shared(self, shared: dict[str, str], patient_id: str, counts: SyncCounts, rejections) -> None:
        """Record each point left off as a warning (field name and opaque ids only, never the value)."""
        for name, holder in shared.items():
            self._warned[patient_id] = ReasonCode.SHARED_CONTACT_POINT.value
            owner = self._owner(holder)
            held = f"synced from Cherry patient {owner}" if owner else "not synced from Cherry"
            counts.warnings_by_reason[ReasonCode.SHARED_CONTACT_POINT.value] += 1
            rejections.append(
                Rejection(
                    Entity.PATIENT.value,
                    patient_id,
                    Stage.MATCH,
                    ReasonCode.SHARED_CONTACT_POINT.value,
                    f"{name}: left off, held by CRM contact {holder} ({held})",
                    WARNING,
                )
            )

    def _conflict(self, contact_id: str, patient_id: str, owner: str | None, counts, rejections) -> None:
        held = f"already synced from Cherry patient {owner}" if owner else "which holds its e-mail or phone"
        self._reject(
            counts,
            rejections,
            Rejection(
                Entity.PATIENT.value,
                patient_id,
                Stage.MATCH,
                ReasonCode.CONTACT_CONFLICT,
                f"resolves to CRM contact {contact_id}, {held}",
            ),
        )

    def _reject(
        self,
        counts: SyncCounts,
        rejections: list[Rejection],
        rejection: Rejection,
        decision: _Decision | None = None,
        trace_id: str | None = None,
    ) -> None:
        """Count and keep a rejection, and note its outcome (the write it was refused, or a skip before any)."""
        counts.rejected += 1
        counts.rejects_by_reason[rejection.reason_code] += 1
        rejections.append(rejection)
        self._warned.pop(rejection.source_id, None)
        self.outcomes.add(
            rejection.entity,
            rejection.source_id,
            _operation(decision.write, decision.existing) if decision else OutcomeOperation.SKIP,
            OutcomeResult.REJECTED,
            crm_id=decision.existing["id"] if decision and decision.existing else None,
            reason=rejection.reason_code,
            trace_id=trace_id,
        )

    def _note(
        self,
        patient_id: str,
        operation: OutcomeOperation,
        contact_id: str | None,
        digest: str,
        trace_id: str | None = None,
    ) -> None:
        """A patient's outcome once synced: `warning` (with the rule) when it synced without a detail."""
        warning = self._warned.pop(patient_id, None)
        self.outcomes.add(
            Entity.PATIENT.value,
            patient_id,
            operation,
            OutcomeResult.WARNING if warning else OutcomeResult.OK,
            crm_id=contact_id,
            reason=warning,
            trace_id=trace_id,
            payload_hash=digest,
        )

    def _record_rejections(self, rejections: list[Rejection]) -> None:
        if rejections and not self.dry_run:
            self.store.record_rejections(self.slug, rejections)


def _operation(write: ContactWrite | None, existing: dict | None) -> OutcomeOperation:
    """What a write to a contact is: a create, an update, or an update that only empties values (`clear`)."""
    if existing is None:
        return OutcomeOperation.CREATE
    if write is None:
        return OutcomeOperation.UNCHANGED
    if not write.standard and write.custom_fields and all(item.clears for item in write.custom_fields):
        return OutcomeOperation.CLEAR
    return OutcomeOperation.UPDATE


def _lookups(desired: DesiredContact, state: PatientState | None) -> MatchKeys:
    """What a batch search must cover for one patient: every match key of a new patient; of a patient with a
    recorded contact, the e-mail or phone that contact does not hold yet."""
    keys = match_keys(desired)
    if state is None or not state.crm_contact_id:
        return keys
    held = state.written_contact or {}
    current_phone = normalise_phone(held.get("phone")) if held.get("phone") else None
    return MatchKeys(
        email=keys.email if keys.email != email_match_key(held.get("email")) else None,
        phone=keys.phone if keys.phone != current_phone else None,
        name_dob=None,
    )


def _point_keys(name: str, key: str) -> MatchKeys:
    """Match keys with one contact point only (`name` is "email" or "phone")."""
    return MatchKeys(email=key if name == "email" else None, phone=key if name == "phone" else None, name_dob=None)


def _moved_off(contact: dict, standard) -> set[str]:
    """Match keys of the e-mail or phone `contact` held before a write that replaces them."""
    moved = set()
    if "email" in standard and email_match_key(contact.get("email")):
        moved.add(email_match_key(contact.get("email")))
    if "phone" in standard and contact.get("phone") and normalise_phone(contact.get("phone")):
        moved.add(normalise_phone(contact.get("phone")))
    return moved


def _as_contact(write: ContactWrite, contact_id: str, existing: dict | None = None) -> dict:
    """What the contact holds after `write` (on top of `existing`), in the CRM's read shape: the in-run directory
    and the store's record of the last write (a cleared field is left out)."""
    contact: dict[str, Any] = {**(existing or {}), "id": contact_id, **write.standard}
    values = {item["id"]: item.get("value") for item in (existing or {}).get("customFields") or [] if "id" in item}
    for item in write.custom_fields:
        if item.clears:
            values.pop(item.field_id, None)
        else:
            values[item.field_id] = item.as_json()["field_value"]
    contact["customFields"] = [{"id": field_id, "value": value} for field_id, value in values.items()]
    return contact
