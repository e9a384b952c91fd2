"""Monthly metrics reports and the email send ledger.

Revision ID: 0004_reports
Revises: 0003_media
Create Date: 2026-11-22

Types are spelled out here (not imported from schema_reports.py) so this revision keeps creating the same table
whatever the schema module becomes later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_reports"
down_revision: str | None = "0003_media"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "metrics_reports",
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("recipients_count", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("message_id", sa.String(length=250), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column("figures", sa.JSON(), nullable=True),
        sa.Column("claimed_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.CheckConstraint("status IN ('sending', 'sent', 'failed')", name=op.f("ck_metrics_reports_status")),
        sa.ForeignKeyConstraint(
            ["practice_slug"],
            ["practices.slug"],
            name=op.f("fk_metrics_reports_practice_slug_practices"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("practice_slug", "window_start", "window_end", name=op.f("pk_metrics_reports")),
    )


def downgrade() -> None:
    op.drop_table("metrics_reports")
