"""Warnings beside rejections: `rejected_records.kind` ('rejection' or 'warning').

A warning is a record that synced without one detail (a patient's phone or e-mail held by a relative's CRM
contact, reason `shared_contact_point`); it is kept, counted and resolved like a rejection. Existing rows are
rejections.

Revision ID: 0005_record_kinds
Revises: 0004_reports
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_record_kinds"
down_revision: str | None = "0004_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a CHECK constraint to an existing table, so it rebuilds it (PostgreSQL alters).
    with op.batch_alter_table("rejected_records") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), server_default="rejection", nullable=False))
        batch.create_check_constraint(op.f("ck_rejected_records_kind"), "kind IN ('rejection', 'warning')")


def downgrade() -> None:
    with op.batch_alter_table("rejected_records") as batch:
        batch.drop_constraint(op.f("ck_rejected_records_kind"), type_="check")
        batch.drop_column("kind")
