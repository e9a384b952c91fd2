"""Tables for: what each run did to each record. Defined on the shared `metadata`; created by migration
0009_record_outcomes.

`record_outcomes` is an append-only history: one row per record a backfill, refresh or smart-list run touched
(created, updated, left unchanged, cleared, rejected with its reason code, tags added or removed, ...), with the
run's ids, the record's opaque ids on both sides, the CRM's `traceId` of the answer and the hash written. It
never holds patient data: ids, codes and hashes only. Rows are pruned by age (`cherry_maintenance` DAG).

The id is a big integer: a busy deployment writes millions of rows a day. SQLite only auto-numbers an INTEGER
PRIMARY KEY (64-bit there anyway), hence the variant. The practice is not a foreign key: history is kept (and
pruned) on its own terms, like the run ledger's.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, PrimaryKeyConstraint, String, Table

from cherry_sync.store.column_types import UTCDateTime
from cherry_sync.store.schema import CONN_ID, EXTERNAL_ID, SLUG, metadata

OUTCOME_ID = BigInteger().with_variant(Integer(), "sqlite")

record_outcomes = Table(
    "record_outcomes",
    metadata,
    Column("id", OUTCOME_ID, autoincrement=True, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("dag_id", String(CONN_ID), nullable=False),
    Column("run_id", String(CONN_ID), nullable=False),
    Column("task_id", String(CONN_ID), nullable=False),
    Column("practice_slug", String(SLUG), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("source_id", String(EXTERNAL_ID), nullable=False),
    Column("crm_id", String(EXTERNAL_ID), nullable=True),
    Column("operation", String(32), nullable=False),
    Column("result", String(16), nullable=False),
    Column("reason_code", String(64), nullable=True),
    Column("trace_id", String(EXTERNAL_ID), nullable=True),
    Column("payload_hash", String(64), nullable=True),
    PrimaryKeyConstraint("id"),
    # The look-up by either side's id, newest first, in one practice or across all (ids are opaque and almost never
    # shared between practices, so the practice is a filter on a handful of rows, not an index column).
    Index(None, "source_id", "recorded_at"),
    Index(None, "crm_id", "recorded_at"),
    # One run's rows for its CSV.
    Index(None, "run_id", "practice_slug"),
    # Pruning by age.
    Index(None, "recorded_at"),
    sqlite_autoincrement=True,
)
