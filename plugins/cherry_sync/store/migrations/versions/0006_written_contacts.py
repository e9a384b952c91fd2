"""What each contact held after the sync's last write: `cherry_patients.written_contact` (JSON, nullable).

The refresh plans an update against it instead of reading the contact back from the CRM before every write.
Existing rows stay NULL: their next write reads the contact once and records it.

Revision ID: 0006_written_contacts
Revises: 0005_record_kinds
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_written_contacts"
down_revision: str | None = "0005_record_kinds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("cherry_patients", sa.Column("written_contact", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cherry_patients") as batch:
        batch.drop_column("written_contact")
