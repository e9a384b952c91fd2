"""Per-record outcome history: what each backfill, refresh and smart-list run did to each record it touched.

Rows are appended in batches (one transaction per batch), read back newest first for one record (by its Cherry id
or its CRM id), streamed for one run's CSV, and pruned by age. Only opaque ids, codes and hashes are stored: the
values are checked here (closed sets for operation, result and reason code; ids and trace ids must look like
opaque tokens), so a caller's mistake cannot put patient data in the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy import delete, func, select

from cherry_sync.reasons import ReasonCode
from cherry_sync.store.base import BATCH_SIZE, StoreBase, chunked
from cherry_sync.store.models import OutcomeOperation, OutcomeResult, RecordOutcome
from cherry_sync.store.schema import CONN_ID, EXTERNAL_ID, SLUG
from cherry_sync.store.schema_outcomes import record_outcomes as outcomes

OPERATIONS = frozenset(OutcomeOperation)
RESULTS = frozenset(OutcomeResult)
REASONS = frozenset(ReasonCode)
# Cherry ids, CRM ids, CRM trace ids (UUIDs), `no-id-<hash>` stand-ins, `dry-run-<id>`: no spaces, no '@'. The
# shape of the Cherry contract's ids (domain/contract.py), longer; not imported: the store does not load the domain.
_OPAQUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]*")
_ENTITY = re.compile(r"[a-z_]{1,32}")
_HASH = re.compile(r"[0-9a-f]{8,64}")
STREAM_BATCH = 1000  # rows fetched per round trip when a run's outcomes are streamed


def opaque_or_none(value: object, limit: int = EXTERNAL_ID) -> str | None:
    """`value` when it is an opaque token that fits the column, else None (a CRM trace id is taken as given only
    when it looks like one)."""
    if not isinstance(value, str) or len(value) > limit or not _OPAQUE.fullmatch(value):
        return None
    return value


def _row(item: RecordOutcome, now: datetime) -> dict:
    if item.operation not in OPERATIONS:
        raise ValueError(f"unknown outcome operation {item.operation!r}")
    if item.result not in RESULTS:
        raise ValueError(f"unknown outcome result {item.result!r}")
    if item.reason_code is not None and item.reason_code not in REASONS:
        raise ValueError(f"unknown reason code {item.reason_code!r}")
    if not _ENTITY.fullmatch(item.entity):
        raise ValueError("outcome entity must be a short lower-case name")
    for name, limit in (("source_id", EXTERNAL_ID), ("crm_id", EXTERNAL_ID)):
        value = getattr(item, name)
        if value is not None and opaque_or_none(value, limit) is None:
            # Never the value itself: it may be exactly what must not be stored.
            raise ValueError(f"outcome {name} is not an opaque id")
    if item.payload_hash is not None and not _HASH.fullmatch(item.payload_hash):
        raise ValueError("outcome payload_hash is not a hex digest")
    for name, limit in (("dag_id", CONN_ID), ("run_id", CONN_ID), ("task_id", CONN_ID), ("practice_slug", SLUG)):
        if len(getattr(item, name)) > limit:
            raise ValueError(f"outcome {name} is longer than {limit} characters")
    return {
        "recorded_at": item.recorded_at or now,
        "dag_id": item.dag_id,
        "run_id": item.run_id,
        "task_id": item.task_id,
        "practice_slug": item.practice_slug,
        "entity": item.entity,
        "source_id": item.source_id,
        "crm_id": item.crm_id,
        "operation": str(item.operation),
        "result": str(item.result),
        "reason_code": str(item.reason_code) if item.reason_code is not None else None,
        "trace_id": opaque_or_none(item.trace_id),
        "payload_hash": item.payload_hash,
    }


def _outcome(row) -> RecordOutcome:
    return RecordOutcome(**row._mapping)


class OutcomeQueries(StoreBase):
    """Records, looks up, streams and prunes per-record outcomes."""

    def record_outcomes(self, rows: Iterable[RecordOutcome]) -> int:
        """Append outcomes (batched insert, one transaction per batch); returns rows written. Every row is checked
        before the first batch goes in, so a bad row writes nothing."""
        now = self._now()
        params = [_row(item, now) for item in rows]
        for batch in chunked(params, BATCH_SIZE):
            with self.engine.begin() as conn:
                conn.execute(outcomes.insert(), batch)
        return len(params)

    def record_history(
        self, slug: str | None, *, source_id: str | None = None, crm_id: str | None = None, limit: int = 200
    ) -> list[RecordOutcome]:
        """One record's outcomes, newest first: by its Cherry id or its CRM id (exactly one), in one practice or
        (`slug` None) any."""
        if (source_id is None) == (crm_id is None):
            raise ValueError("give either source_id or crm_id")
        column = outcomes.c.source_id if source_id is not None else outcomes.c.crm_id
        query = select(outcomes).where(column == (source_id if source_id is not None else crm_id))
        if slug is not None:
            query = query.where(outcomes.c.practice_slug == slug)
        query = query.order_by(outcomes.c.recorded_at.desc(), outcomes.c.id.desc()).limit(limit)
        with self.engine.begin() as conn:
            return [_outcome(row) for row in conn.execute(query)]

    def run_outcomes(self, run_id: str, slug: str) -> Iterator[RecordOutcome]:
        """Every outcome of one run for one practice, in the order recorded, streamed (keyset pages of
        `STREAM_BATCH` rows: no transaction stays open while the caller writes its CSV)."""
        after = 0
        while True:
            query = (
                select(outcomes)
                .where(outcomes.c.run_id == run_id, outcomes.c.practice_slug == slug, outcomes.c.id > after)
                .order_by(outcomes.c.id)
                .limit(STREAM_BATCH)
            )
            with self.engine.begin() as conn:
                rows = [_outcome(row) for row in conn.execute(query)]
            yield from rows
            if len(rows) < STREAM_BATCH:
                return
            after = rows[-1].id

    def prune_outcomes(self, before: datetime, *, batch: int = 10_000, dry_run: bool = False) -> int:
        """Delete outcomes recorded before `before`, `batch` rows per transaction (a big prune never holds one
        long lock); returns rows deleted (with `dry_run`: rows that would be)."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if dry_run:
            with self.engine.begin() as conn:
                return conn.execute(
                    select(func.count()).select_from(outcomes).where(outcomes.c.recorded_at < before)
                ).scalar_one()
        deleted = 0
        while True:
            ids = (
                select(outcomes.c.id)
                .where(outcomes.c.recorded_at < before)
                .order_by(outcomes.c.recorded_at)
                .limit(batch)
                .scalar_subquery()
            )
            with self.engine.begin() as conn:
                count = conn.execute(delete(outcomes).where(outcomes.c.id.in_(ids))).rowcount
            deleted += count
            if count < batch:
                return deleted
