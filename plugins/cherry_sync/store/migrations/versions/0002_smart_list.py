"""Smart-list membership pushed to the CRM: `smart_list_contacts`, `smart_list_state`, and
`cherry_patients.increase_eligible` (mirrors the snapshot's flag, filled for existing rows here).

Revision ID: 0002_smart_list
Revises: 0001_initial
Create Date: 2026-11-22

Types are spelled out here (not imported from schema_smart_list.py) so this revision keeps creating the same
tables whatever the schema module becomes later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_smart_list"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _practice_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["practice_slug"], ["practices.slug"], name=op.f(f"fk_{table}_practice_slug_practices"), ondelete="RESTRICT"
    )


def upgrade() -> None:
    op.add_column("cherry_patients", sa.Column("increase_eligible", sa.Boolean(), nullable=True))
    patients = sa.table(
        "cherry_patients", sa.column("snapshot", sa.JSON()), sa.column("increase_eligible", sa.Boolean())
    )
    op.execute(patients.update().values(increase_eligible=patients.c.snapshot["increase_eligible"].as_boolean()))

    op.create_table(
        "smart_list_contacts",
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=128), nullable=False),
        sa.Column("patient_id", sa.String(length=128), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("pending", sa.Text(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        _practice_fk("smart_list_contacts"),
        sa.PrimaryKeyConstraint("practice_slug", "contact_id", name=op.f("pk_smart_list_contacts")),
    )
    op.create_table(
        "smart_list_state",
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("verified_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        _practice_fk("smart_list_state"),
        sa.PrimaryKeyConstraint("practice_slug", name=op.f("pk_smart_list_state")),
    )


def downgrade() -> None:
    op.drop_table("smart_list_state")
    op.drop_table("smart_list_contacts")
    with op.batch_alter_table("cherry_patients") as batch:
        batch.drop_column("increase_eligible")
