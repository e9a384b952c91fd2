"""Per-record outcome history (`record_outcomes`): what each run did to each record, ids and codes only.

Revision ID: 0009_record_outcomes
Revises: 0008_oauth_tokens
Create Date: 2027-01-18

Types are spelled out here (not imported from schema_outcomes.py) so this revision keeps creating the same table
whatever the schema module becomes later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_record_outcomes"
down_revision: str | None = "0008_oauth_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "record_outcomes",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("crm_id", sa.String(length=128), nullable=True),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("trace_id", sa.String(length=128), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_outcomes")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_record_outcomes_source_id_recorded_at"), "record_outcomes", ["source_id", "recorded_at"])
    op.create_index(op.f("ix_record_outcomes_crm_id_recorded_at"), "record_outcomes", ["crm_id", "recorded_at"])
    op.create_index(op.f("ix_record_outcomes_run_id_practice_slug"), "record_outcomes", ["run_id", "practice_slug"])
    op.create_index(op.f("ix_record_outcomes_recorded_at"), "record_outcomes", ["recorded_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_record_outcomes_recorded_at"), table_name="record_outcomes")
    op.drop_index(op.f("ix_record_outcomes_run_id_practice_slug"), table_name="record_outcomes")
    op.drop_index(op.f("ix_record_outcomes_crm_id_recorded_at"), table_name="record_outcomes")
    op.drop_index(op.f("ix_record_outcomes_source_id_recorded_at"), table_name="record_outcomes")
    op.drop_table("record_outcomes")
