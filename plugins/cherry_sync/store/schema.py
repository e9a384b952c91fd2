"""The sync store's tables (SQLAlchemy Core). The Alembic migrations must create exactly this; a test checks it.

Every table is keyed by practice first, so one practice's rows sit together in each index and a query for one
practice never scans another's. Timestamps are UTC and tz-aware (`UTCDateTime`); money is Numeric(12, 2).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from cherry_sync.store.column_types import UTCDateTime

# Named constraints make migrations reproducible on every backend (SQLite would otherwise leave them unnamed).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

SLUG = 64  # practice slugs, as validated by the registry
EXTERNAL_ID = 128  # ids issued by Cherry or the CRM
CONN_ID = 250  # Airflow connection, DAG, task and run ids
MONEY = Numeric(12, 2)

RUN_STATUSES = ("running", "success", "failed", "deferred", "skipped")
RECORD_KINDS = ("rejection", "warning")  # rejected_records.kind


def _practice_fk() -> ForeignKey:
    # Rows are never deleted (disabling a practice keeps its history), so RESTRICT is the honest rule.
    return ForeignKey("practices.slug", ondelete="RESTRICT")


practices = Table(
    "practices",
    metadata,
    Column("slug", String(SLUG), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("cherry_conn_id", String(CONN_ID), nullable=False),
    Column("crm_conn_id", String(CONN_ID), nullable=False),
    Column("cherry_practice_id", String(EXTERNAL_ID), nullable=True),
    Column("crm_location_id", String(EXTERNAL_ID), nullable=True),
    Column("registry_fingerprint", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("slug"),
)

cherry_patients = Table(
    "cherry_patients",
    metadata,
    Column("practice_slug", String(SLUG), _practice_fk(), nullable=False),
    Column("patient_id", String(EXTERNAL_ID), nullable=False),
    Column("snapshot", JSON, nullable=False),
    Column("account_status", String(32), nullable=True),
    Column("balance_available", MONEY, nullable=True),
    # Mirrors snapshot["increase_eligible"] so smart-list segments (migration 0002) need no JSON parsing.
    Column("increase_eligible", Boolean, nullable=True),
    Column("source_updated_at", UTCDateTime, nullable=False),
    Column("crm_contact_id", String(EXTERNAL_ID), nullable=True),
    Column("written_hash", String(64), nullable=True),
    Column("written_at", UTCDateTime, nullable=True),
    # What the contact held after the last write (migration 0006): the refresh plans updates against it
    # instead of reading the contact back from the CRM.
    Column("written_contact", JSON(none_as_null=True), nullable=True),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("practice_slug", "patient_id"),
    # CRM webhooks and reconciliation look patients up by the contact they were written to.
    Index(None, "practice_slug", "crm_contact_id"),
)

payments = Table(
    "payments",
    metadata,
    Column("practice_slug", String(SLUG), _practice_fk(), nullable=False),
    Column("payment_id", String(EXTERNAL_ID), nullable=False),
    Column("patient_id", String(EXTERNAL_ID), nullable=False),
    Column("snapshot", JSON, nullable=False),
    Column("status", String(32), nullable=False),
    Column("amount", MONEY, nullable=False),
    Column("refund_amount", MONEY, nullable=False),
    Column("source_updated_at", UTCDateTime, nullable=False),
    Column("applied_status", String(32), nullable=True),
    Column("applied_at", UTCDateTime, nullable=True),
    Column("crm_opportunity_id", String(EXTERNAL_ID), nullable=True),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("practice_slug", "payment_id"),
    # A patient's payments are read together (totals, opportunity value).
    Index(None, "practice_slug", "patient_id"),
)

sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("practice_slug", String(SLUG), _practice_fk(), nullable=False),
    Column("stream", String(64), nullable=False),
    Column("cursor", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("practice_slug", "stream"),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("practice_slug", String(SLUG), _practice_fk(), nullable=False),
    Column("event_id", String(EXTERNAL_ID), nullable=False),
    Column("processed_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("practice_slug", "event_id"),
    # Pruning old dedupe entries scans by age.
    Index(None, "processed_at"),
)

backfill_checkpoints = Table(
    "backfill_checkpoints",
    metadata,
    Column("practice_slug", String(SLUG), _practice_fk(), nullable=False),
    Column("scope", String(32), nullable=False),
    Column("cursor", Text, nullable=True),
    Column("pages_done", Integer, nullable=False),
    Column("patients_done", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime, nullable=True),
    PrimaryKeyConstraint("practice_slug", "scope"),
)

rejected_records = Table(
    "rejected_records",
    metadata,
    Column("id", Integer, autoincrement=True, nullable=False),
    Column("practice_slug", String(SLUG), _practice_fk(), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("source_id", String(EXTERNAL_ID), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("message", String(500), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
    # 'rejection': the record was not synced. 'warning': it synced without one detail (e.g. a phone a relative's
    # contact holds); resolved like a rejection once the detail is written (migration 0005).
    Column("kind", String(16), nullable=False, server_default="rejection"),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("practice_slug", "entity", "source_id", "stage"),
    CheckConstraint(f"kind IN ({', '.join(repr(k) for k in RECORD_KINDS)})", name="kind"),
)

run_ledger = Table(
    "run_ledger",
    metadata,
    Column("id", Integer, autoincrement=True, nullable=False),
    Column("run_id", String(CONN_ID), nullable=False),
    Column("dag_id", String(CONN_ID), nullable=False),
    # '' (not NULL) for a run-level row: NULLs never collide in a unique key, so NULL would defeat the
    # retry idempotency the key exists for. The API speaks None; see ledger.py.
    Column("task_id", String(CONN_ID), nullable=False),
    # No foreign key: a run is recorded even when it failed before the practices mirror was written.
    Column("practice_slug", String(SLUG), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("read_count", Integer, nullable=False, server_default="0"),
    Column("created_count", Integer, nullable=False, server_default="0"),
    Column("updated_count", Integer, nullable=False, server_default="0"),
    Column("unchanged_count", Integer, nullable=False, server_default="0"),
    Column("rejected_count", Integer, nullable=False, server_default="0"),
    Column("api_calls", Integer, nullable=False, server_default="0"),
    Column("details", JSON(none_as_null=True), nullable=True),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("run_id", "dag_id", "practice_slug", "task_id"),
    CheckConstraint(f"status IN ({', '.join(repr(s) for s in RUN_STATUSES)})", name="status"),
    # Reports read a practice's recent runs.
    Index(None, "practice_slug", "started_at"),
)


# Tables of later features live in their own modules and register on `metadata` when imported here.
from cherry_sync.store import (  # noqa: E402, F401
    schema_alerts,
    schema_media,
    schema_oauth,
    schema_outcomes,
    schema_reports,
    schema_smart_list,
    schema_webhooks,
)
