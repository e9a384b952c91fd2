"""Row types the sync store takes and returns. Plain frozen dataclasses: no ORM, no lazy loading."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

JSONDict = Mapping[str, Any]


class PracticeSource(Protocol):
    """What the store needs from a registry entry (`cherry_sync.registry.PracticeConfig` satisfies it)."""

    slug: str
    display_name: str
    timezone: str
    enabled: bool
    cherry_conn_id: str
    crm_conn_id: str

    def fingerprint(self) -> str: ...


@dataclass(frozen=True, slots=True)
class PracticeRecord:
    """A practice as mirrored in the store, with the ids learned from the APIs."""

    slug: str
    display_name: str
    timezone: str
    enabled: bool
    cherry_conn_id: str
    crm_conn_id: str
    cherry_practice_id: str | None
    crm_location_id: str | None
    registry_fingerprint: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PracticeSyncResult:
    """Which practices `sync_practices` added, changed (new fingerprint) or left as they were."""

    added: frozenset[str] = frozenset()
    changed: frozenset[str] = frozenset()
    unchanged: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PatientSnapshot:
    """The latest normalised Cherry record of one patient, to be stored."""

    patient_id: str
    snapshot: JSONDict
    source_updated_at: datetime
    account_status: str | None = None
    balance_available: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PatientState:
    """What the store knows of one patient: the last snapshot and what was last written to the CRM."""

    patient_id: str
    snapshot: JSONDict
    account_status: str | None
    balance_available: Decimal | None
    source_updated_at: datetime
    crm_contact_id: str | None
    written_hash: str | None
    written_at: datetime | None
    first_seen_at: datetime
    last_seen_at: datetime
    # The contact as it stood after the last write (id, names, e-mail, phone, date of birth, custom fields), or
    # None when nothing was recorded (written before the store kept it).
    written_contact: JSONDict | None = None


@dataclass(frozen=True, slots=True)
class PaymentSnapshot:
    """The latest normalised Cherry record of one payment (a loan/contract), to be stored."""

    payment_id: str
    patient_id: str
    snapshot: JSONDict
    status: str
    amount: Decimal
    source_updated_at: datetime
    refund_amount: Decimal = Decimal("0")


@dataclass(frozen=True, slots=True)
class PaymentState:
    """What the store knows of one payment, and which of its states was last applied to the CRM."""

    payment_id: str
    patient_id: str
    snapshot: JSONDict
    status: str
    amount: Decimal
    refund_amount: Decimal
    source_updated_at: datetime
    applied_status: str | None
    applied_at: datetime | None
    crm_opportunity_id: str | None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far a backfill of one practice and scope has got; `completed_at` set means it finished."""

    practice_slug: str
    scope: str
    cursor: str | None
    pages_done: int
    patients_done: int
    started_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @property
    def completed(self) -> bool:
        return self.completed_at is not None


REJECTION = "rejection"  # the record was not synced
WARNING = "warning"  # the record synced without one detail (the reason code says which rule)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that could not be synced (`kind` REJECTION), or synced without one detail (`kind` WARNING), and
    the rule involved. `message` must never hold patient data."""

    entity: str
    source_id: str
    stage: str
    reason_code: str
    message: str = ""
    kind: str = REJECTION


@dataclass(frozen=True, slots=True)
class RejectionRecord:
    """A stored rejection (or warning, `kind`): how often it happened and whether it has since been resolved."""

    id: int
    practice_slug: str
    entity: str
    source_id: str
    stage: str
    reason_code: str
    message: str
    attempts: int
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    kind: str = REJECTION


@dataclass(frozen=True, slots=True)
class RunCounts:
    """The counters one run records in the ledger."""

    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    api_calls: int = 0


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One row of the run ledger: a task's (or a run's) work on one practice."""

    id: int
    run_id: str
    dag_id: str
    task_id: str | None
    practice_slug: str
    status: str
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    counts: RunCounts
    details: JSONDict = field(default_factory=dict)


class OutcomeOperation(StrEnum):
    """What a run did (or would have done, or tried) to one record: the closed set of `record_outcomes.operation`."""

    CREATE = "create"  # a new CRM contact
    UPDATE = "update"  # values of an existing contact changed
    UNCHANGED = "unchanged"  # the contact already held everything: no CRM write
    CLEAR = "clear"  # an update that only emptied values Cherry no longer has
    TAG_ADD = "tag_add"  # smart-list tags added to the patient's contact
    TAG_REMOVE = "tag_remove"  # smart-list tags removed from it
    OPPORTUNITY_CREATE = "opportunity_create"  # a payment created its opportunity
    OPPORTUNITY_UPDATE = "opportunity_update"  # a payment's state was applied to an existing opportunity
    SKIP = "skip"  # nothing written: rejected before any write, an older version, nothing to apply it to


class OutcomeResult(StrEnum):
    """How it ended: the closed set of `record_outcomes.result`."""

    OK = "ok"
    REJECTED = "rejected"  # not synced; `reason_code` says why (also in rejected_records)
    FAILED = "failed"  # the CRM write failed (transient or fatal); the run stopped or will retry
    WARNING = "warning"  # synced without one detail; `reason_code` says which rule
    DRY_RUN = "dry_run"  # a dry run: what would have been done, nothing written


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What one run did to one record: opaque ids on both sides, codes, the CRM's trace id and the hash written.
    Never patient data. `id` and `recorded_at` are filled in by the store (None on rows to be recorded; a given
    `recorded_at` is kept)."""

    dag_id: str
    run_id: str
    task_id: str
    practice_slug: str
    entity: str
    source_id: str
    operation: str
    result: str
    crm_id: str | None = None
    reason_code: str | None = None
    trace_id: str | None = None
    payload_hash: str | None = None
    recorded_at: datetime | None = None
    id: int | None = None


ALERT_RAISED = "raised"
ALERT_OK = "ok"


@dataclass(frozen=True, slots=True)
class AlertState:
    """One threshold alert of one practice and DAG: raised or ok, measured by the last evaluated run.

    `value` is what that run measured (a rate in percent; the run's writes for the silent rule), `threshold` what
    it was held against, `since` when the current state began, `notified_at` when the operators were told of it
    (None: that notice is still owed). Opaque ids and numbers only.
    """

    practice_slug: str
    dag_id: str
    alert_kind: str
    state: str
    value: float | None
    threshold: float | None
    since: datetime
    last_run_id: str
    notified_at: datetime | None

    @property
    def raised(self) -> bool:
        return self.state == ALERT_RAISED

    @property
    def notice_due(self) -> bool:
        return self.notified_at is None


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """What `set_alert_state` did: the state before (None: the alert had never been evaluated) and after."""

    previous: str | None
    current: AlertState

    @property
    def changed(self) -> bool:
        """True when the state flipped (ok to raised, raised to ok, or a first evaluation that raised)."""
        return self.previous != self.current.state and not (self.previous is None and not self.current.raised)
