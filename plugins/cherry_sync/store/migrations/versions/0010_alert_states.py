"""Threshold alert states per practice, DAG and kind (`alert_states`).

Revision ID: 0010_alert_states
Revises: 0009_record_outcomes
Create Date: 2027-01-18

Types are spelled out here (not imported from schema_alerts.py) so this revision keeps creating the same table
whatever the schema module becomes later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_alert_states"
down_revision: str | None = "0009_record_outcomes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_states",
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("alert_kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("since", TS, nullable=False),
        sa.Column("last_run_id", sa.String(length=250), nullable=False),
        sa.Column("notified_at", TS, nullable=True),
        sa.CheckConstraint(
            "alert_kind IN ('rejection_rate', 'crm_failure_rate', 'silent')", name=op.f("ck_alert_states_alert_kind")
        ),
        sa.CheckConstraint("state IN ('raised', 'ok')", name=op.f("ck_alert_states_state")),
        sa.PrimaryKeyConstraint("practice_slug", "dag_id", "alert_kind", name=op.f("pk_alert_states")),
    )


def downgrade() -> None:
    op.drop_table("alert_states")
