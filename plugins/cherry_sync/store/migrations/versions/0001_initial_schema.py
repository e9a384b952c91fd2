"""Initial sync store schema: practices mirror, Cherry snapshots, progress, rejections and the run ledger.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-22

Types are spelled out here (not imported from schema.py) so this revision keeps creating the same tables
whatever schema.py becomes later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
MONEY = sa.Numeric(precision=12, scale=2)


def _practice_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["practice_slug"], ["practices.slug"], name=op.f(f"fk_{table}_practice_slug_practices"), ondelete="RESTRICT"
    )


def upgrade() -> None:
    op.create_table(
        "practices",
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("cherry_conn_id", sa.String(length=250), nullable=False),
        sa.Column("crm_conn_id", sa.String(length=250), nullable=False),
        sa.Column("cherry_practice_id", sa.String(length=128), nullable=True),
        sa.Column("crm_location_id", sa.String(length=128), nullable=True),
        sa.Column("registry_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("slug", name=op.f("pk_practices")),
    )

    op.create_table(
        "cherry_patients",
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=128), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("account_status", sa.String(length=32), nullable=True),
        sa.Column("balance_available", MONEY, nullable=True),
        sa.Column("source_updated_at", TS, nullable=False),
        sa.Column("crm_contact_id", sa.String(length=128), nullable=True),
        sa.Column("written_hash", sa.String(length=64), nullable=True),
        sa.Column("written_at", TS, nullable=True),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        _practice_fk("cherry_patients"),
        sa.PrimaryKeyConstraint("practice_slug", "patient_id", name=op.f("pk_cherry_patients")),
    )
    op.create_index(
        op.f("ix_cherry_patients_practice_slug_crm_contact_id"), "cherry_patients", ["practice_slug", "crm_contact_id"]
    )

    op.create_table(
        "payments",
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("payment_id", sa.String(length=128), nullable=False),
        sa.Column("patient_id", sa.String(length=128), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("refund_amount", MONEY, nullable=False),
        sa.Column("source_updated_at", TS, nullable=False),
        sa.Column("applied_status", sa.String(length=32), nullable=True),
        sa.Column("applied_at", TS, nullable=True),
        sa.Column("crm_opportunity_id", sa.String(length=128), nullable=True),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        _practice_fk("payments"),
        sa.PrimaryKeyConstraint("practice_slug", "payment_id", name=op.f("pk_payments")),
    )
    op.create_index(op.f("ix_payments_practice_slug_patient_id"), "payments", ["practice_slug", "patient_id"])

    op.create_table(
        "sync_cursors",
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        _practice_fk("sync_cursors"),
        sa.PrimaryKeyConstraint("practice_slug", "stream", name=op.f("pk_sync_cursors")),
    )

    op.create_table(
        "processed_events",
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("processed_at", TS, nullable=False),
        _practice_fk("processed_events"),
        sa.PrimaryKeyConstraint("practice_slug", "event_id", name=op.f("pk_processed_events")),
    )
    op.create_index(op.f("ix_processed_events_processed_at"), "processed_events", ["processed_at"])

    op.create_table(
        "backfill_checkpoints",
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("pages_done", sa.Integer(), nullable=False),
        sa.Column("patients_done", sa.Integer(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("completed_at", TS, nullable=True),
        _practice_fk("backfill_checkpoints"),
        sa.PrimaryKeyConstraint("practice_slug", "scope", name=op.f("pk_backfill_checkpoints")),
    )

    op.create_table(
        "rejected_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        _practice_fk("rejected_records"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_records")),
        sa.UniqueConstraint(
            "practice_slug",
            "entity",
            "source_id",
            "stage",
            name=op.f("uq_rejected_records_practice_slug_entity_source_id_stage"),
        ),
    )

    op.create_table(
        "run_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("read_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unchanged_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rejected_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("api_calls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'success', 'failed', 'deferred', 'skipped')", name=op.f("ck_run_ledger_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_ledger")),
        sa.UniqueConstraint(
            "run_id",
            "dag_id",
            "practice_slug",
            "task_id",
            name=op.f("uq_run_ledger_run_id_dag_id_practice_slug_task_id"),
        ),
    )
    op.create_index(op.f("ix_run_ledger_practice_slug_started_at"), "run_ledger", ["practice_slug", "started_at"])


def downgrade() -> None:
    op.drop_table("run_ledger")
    op.drop_table("rejected_records")
    op.drop_table("backfill_checkpoints")
    op.drop_table("processed_events")
    op.drop_table("sync_cursors")
    op.drop_table("payments")
    op.drop_table("cherry_patients")
    op.drop_table("practices")
