"""What the operations pages show, read from the sync store and the registry: ids, counts, states and times only.

Every function here takes a `SyncStore` (and, for the overview, the registry) and returns plain dataclasses the
templates render. Nothing here reads a patient's snapshot or contact: a record is shown by its opaque Cherry id,
its CRM id and the hash that was written, never by its values.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cherry_sync.store import LedgerEntry, SyncStore
from cherry_sync.store.base import utc_now
from cherry_sync.store.models import REJECTION, AlertState

log = logging.getLogger(__name__)

# The product's DAGs, in the order the overview shows them. The page asks Airflow's auth manager whether the user
# may read the runs of every one of them.
SYNC_DAG_IDS = (
    "cherry_backfill",
    "cherry_refresh",
    "cherry_smart_list",
    "cherry_media_import",
    "cherry_metrics_email",
    "cherry_onboard",
)
# Columns the overview always shows; the other DAGs get one once a practice has run them.
CORE_DAG_IDS = ("cherry_backfill", "cherry_refresh", "cherry_smart_list")
FIELDS_TASK = "provision_custom_fields"  # the ledger's task id ends with it (it runs in a task group)
LEDGER_WINDOW = 400  # newest ledger rows read per practice: several weeks of runs of every DAG
CHART_RUNS = 30  # runs drawn in a practice's chart
STATUS_RANK = {"failed": 4, "running": 3, "deferred": 2, "skipped": 1, "success": 0}


@dataclass(frozen=True)
class RunSummary:
    """One DAG run's work on one practice: its ledger rows added up."""

    dag_id: str
    run_id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    read: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    crm_calls: int
    tasks: tuple[str, ...]

    @property
    def writes(self) -> int:
        return self.created + self.updated

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None

    @property
    def task_id(self) -> str | None:
        """The task to open in Airflow: the one that failed, else the last one."""
        return self.tasks[-1] if self.tasks else None


@dataclass(frozen=True)
class FieldHealth:
    """The practice's custom fields as its last provisioning left them, and when the smart list last checked."""

    status: str | None = None
    checked_at: datetime | None = None
    fields: int | None = None
    created: int = 0
    options_added: int = 0
    reason: str | None = None
    run: RunSummary | None = None
    smart_list_verified_at: datetime | None = None

    @property
    def state(self) -> str:
        if self.status is None:
            return "unknown"
        return "ok" if self.status == "success" else self.status


@dataclass(frozen=True)
class PracticeRow:
    """One line of the overview."""

    slug: str
    display_name: str
    enabled: bool
    crm_auth: str
    crm_location_id: str | None
    last_runs: dict[str, RunSummary]
    open_rejections: int
    open_warnings: int
    fields: FieldHealth
    alerts: list[AlertState] = field(default_factory=list)
    in_registry: bool = True


@dataclass(frozen=True)
class LocationBudget:
    """CRM requests the ledger recorded today (UTC) for one CRM location, and the practices that made them."""

    location: str
    practices: tuple[str, ...]
    crm_calls: int


@dataclass(frozen=True)
class Overview:
    practices: list[PracticeRow]
    budgets: list[LocationBudget]
    registry_error: str | None
    dag_ids: tuple[str, ...]


@dataclass(frozen=True)
class RejectionGroup:
    reason_code: str
    kind: str
    records: list[Any]


@dataclass(frozen=True)
class PracticePage:
    row: PracticeRow
    runs: list[RunSummary]
    rejections: list[RejectionGroup]


@dataclass(frozen=True)
class RecordState:
    """What the store holds now for a patient: ids, the hash last written and when (never the record itself)."""

    practice_slug: str
    patient_id: str
    crm_contact_id: str | None
    written_hash: str | None
    written_at: datetime | None
    last_seen_at: datetime


@dataclass(frozen=True)
class LookupResult:
    slug: str | None
    source_id: str | None
    crm_id: str | None
    history: list[Any]
    states: list[RecordState]
    rejections: list[Any]


def summarize_runs(entries: Iterable[LedgerEntry]) -> list[RunSummary]:
    """Ledger rows grouped by (DAG, run), newest run first."""
    groups: dict[tuple[str, str], list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        groups[(entry.dag_id, entry.run_id)].append(entry)
    runs = [_summary(dag_id, run_id, rows) for (dag_id, run_id), rows in groups.items()]
    return sorted(runs, key=lambda run: run.started_at, reverse=True)


def _summary(dag_id: str, run_id: str, rows: Sequence[LedgerEntry]) -> RunSummary:
    rows = sorted(rows, key=lambda row: row.started_at)
    worst = max(rows, key=lambda row: STATUS_RANK.get(row.status, 0))
    finished = [row.finished_at for row in rows]
    tasks = [row.task_id for row in rows if row.task_id]
    if worst.task_id and worst.status != "success":  # the task to open is the one that went wrong
        tasks = [t for t in tasks if t != worst.task_id] + [worst.task_id]
    return RunSummary(
        dag_id=dag_id,
        run_id=run_id,
        status=worst.status,
        started_at=rows[0].started_at,
        finished_at=None if any(f is None for f in finished) else max(f for f in finished if f is not None),
        read=sum(row.counts.read for row in rows),
        created=sum(row.counts.created for row in rows),
        updated=sum(row.counts.updated for row in rows),
        unchanged=sum(row.counts.unchanged for row in rows),
        rejected=sum(row.counts.rejected for row in rows),
        crm_calls=sum(_crm_calls(row) for row in rows),
        tasks=tuple(dict.fromkeys(tasks)),
    )


def _crm_calls(entry: LedgerEntry) -> int:
    details = entry.details or {}
    if isinstance(details.get("crm_calls"), int):
        return details["crm_calls"]
    calls = details.get("api_calls")
    if isinstance(calls, dict):
        return sum(n for op, n in calls.items() if str(op).startswith("crm ") and isinstance(n, int))
    return 0


def _field_health(store: SyncStore, slug: str, entries: Sequence[LedgerEntry]) -> FieldHealth:
    provisioning = [e for e in entries if (e.task_id or "").rsplit(".", 1)[-1] == FIELDS_TASK]
    verified = store.smart_list_verified_at(slug)
    if not provisioning:
        return FieldHealth(smart_list_verified_at=verified)
    last = provisioning[0]  # entries are newest first
    fields = (last.details or {}).get("fields") or {}
    count = fields.get("fields") if isinstance(fields, dict) else None
    return FieldHealth(
        status=last.status,
        checked_at=last.finished_at or last.started_at,
        fields=count if isinstance(count, int) else None,
        created=len(fields.get("created") or []) if isinstance(fields, dict) else 0,
        options_added=len(fields.get("options_added") or []) if isinstance(fields, dict) else 0,
        reason=(last.details or {}).get("reason") if last.status != "success" else None,
        run=_summary(last.dag_id, last.run_id, [last]),
        smart_list_verified_at=verified,
    )


def _alerts(store: SyncStore, slug: str | None = None) -> dict[str, list[AlertState]]:
    by_slug: dict[str, list[AlertState]] = defaultdict(list)
    for state in store.alert_states(slug):
        by_slug[state.practice_slug].append(state)
    return by_slug


def _registry() -> tuple[dict[str, Any], str | None]:
    from cherry_sync.registry import RegistryFileError, load_registry

    try:
        registry = load_registry()
    except RegistryFileError as exc:
        return {}, str(exc)
    error = f"{len(registry.errors)} registry entries are invalid" if registry.errors else None
    return {p.slug: p for p in registry.practices}, error


def _practice_row(
    store: SyncStore,
    slug: str,
    config: Any,
    record: Any,
    entries: Sequence[LedgerEntry],
    alerts: list[Any],
    rejections: dict[str, int],
    warnings: dict[str, int],
) -> PracticeRow:
    last_runs: dict[str, RunSummary] = {}
    for run in summarize_runs(entries):
        last_runs.setdefault(run.dag_id, run)
    location = (config.crm_location_id if config else None) or (record.crm_location_id if record else None)
    return PracticeRow(
        slug=slug,
        display_name=(config.display_name if config else record.display_name if record else slug),
        enabled=bool(config.enabled if config else record.enabled if record else False),
        crm_auth=(config.crm_auth if config else "unknown"),
        crm_location_id=location,
        last_runs=last_runs,
        open_rejections=rejections.get(slug, 0),
        open_warnings=warnings.get(slug, 0),
        fields=_field_health(store, slug, entries),
        alerts=sorted(alerts, key=lambda a: (a.dag_id, a.alert_kind)),
        in_registry=config is not None,
    )


def _open_counts(store: SyncStore) -> tuple[dict[str, int], dict[str, int]]:
    rejections: dict[str, int] = defaultdict(int)
    warnings: dict[str, int] = defaultdict(int)
    for record in store.open_rejections():
        (rejections if record.kind == REJECTION else warnings)[record.practice_slug] += 1
    return rejections, warnings


def overview(store: SyncStore, *, now: datetime | None = None) -> Overview:
    """Every practice the registry or the store knows, with its last run of each DAG and its health."""
    now = now or utc_now()
    registry, registry_error = _registry()
    records = {record.slug: record for record in store.list_practices()}
    alerts = _alerts(store)
    rejections, warnings = _open_counts(store)
    rows: list[PracticeRow] = []
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    calls_by_location: dict[str, tuple[set[str], int]] = {}
    for slug in list(registry) + sorted(set(records) - set(registry)):
        entries = store.list_runs(slug=slug, limit=LEDGER_WINDOW)
        row = _practice_row(
            store, slug, registry.get(slug), records.get(slug), entries, alerts.get(slug, []), rejections, warnings
        )
        rows.append(row)
        if row.crm_location_id:
            todays = sum(_crm_calls(e) for e in entries if e.started_at >= today)
            slugs, total = calls_by_location.get(row.crm_location_id, (set(), 0))
            calls_by_location[row.crm_location_id] = (slugs | {slug}, total + todays)
    budgets = [
        LocationBudget(location, tuple(sorted(slugs)), calls)
        for location, (slugs, calls) in sorted(calls_by_location.items())
    ]
    ran = {dag_id for row in rows for dag_id in row.last_runs}
    columns = tuple(d for d in SYNC_DAG_IDS if d in CORE_DAG_IDS or d in ran)
    return Overview(rows, budgets, registry_error, columns)


def practice_page(store: SyncStore, slug: str) -> PracticePage | None:
    """One practice: its runs over time, open rejections by reason; None when neither registry nor store has it."""
    registry, _error = _registry()
    record = store.get_practice(slug)
    config = registry.get(slug)
    if record is None and config is None:
        return None
    entries = store.list_runs(slug=slug, limit=LEDGER_WINDOW)
    alerts = _alerts(store, slug)
    open_records = store.open_rejections(slug)
    rejections = {slug: sum(1 for r in open_records if r.kind == REJECTION)}
    warnings = {slug: sum(1 for r in open_records if r.kind != REJECTION)}
    row = _practice_row(store, slug, config, record, entries, alerts.get(slug, []), rejections, warnings)
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for item in open_records:
        groups[(item.kind, item.reason_code)].append(item)
    ordered = sorted(groups.items(), key=lambda kv: (kv[0][0] != REJECTION, -len(kv[1]), kv[0][1]))
    return PracticePage(
        row=row,
        runs=summarize_runs(entries),
        rejections=[RejectionGroup(reason, kind, items) for (kind, reason), items in ordered],
    )


def lookup(
    store: SyncStore, slug: str | None, *, source_id: str | None = None, crm_id: str | None = None, limit: int = 200
) -> LookupResult:
    """Where one record went: the runs that touched it (newest first) and what the store holds for it now."""
    history = store.record_history(slug, source_id=source_id, crm_id=crm_id, limit=limit)
    slugs = [slug] if slug else [p.slug for p in store.list_practices()]
    states: list[RecordState] = []
    for practice in slugs:
        found = []
        if source_id:
            found += list(store.get_patient_states(practice, [source_id]).values())
        if crm_id:
            state = store.find_patient_by_contact(practice, crm_id)
            if state is not None and all(s.patient_id != state.patient_id for s in found):
                found.append(state)
        states += [
            RecordState(
                practice_slug=practice,
                patient_id=s.patient_id,
                crm_contact_id=s.crm_contact_id,
                written_hash=s.written_hash,
                written_at=s.written_at,
                last_seen_at=s.last_seen_at,
            )
            for s in found
        ]
    ids = {source_id} | {s.patient_id for s in states}
    rejections = [
        r
        for practice in slugs
        for r in store.open_rejections(practice)
        if r.source_id in ids or (crm_id is not None and r.source_id == crm_id)
    ]
    return LookupResult(slug, source_id, crm_id, history, states, rejections)
