"""Cherry webhooks received (`webhook_inbox`) and refused (`webhook_rejections`).

Revision ID: 0007_webhook_inbox
Revises: 0006_written_contacts
Create Date: 2026-12-14

Types are spelled out here (not imported from schema_webhooks.py) so this revision keeps creating the same tables
whatever the schema module becomes later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_webhook_inbox"
down_revision: str | None = "0006_written_contacts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("applied_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_inbox")),
        sa.UniqueConstraint("practice_slug", "event_id", name=op.f("uq_webhook_inbox_practice_slug_event_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_webhook_inbox_applied_at_practice_slug"), "webhook_inbox", ["applied_at", "practice_slug"])
    op.create_table(
        "webhook_rejections",
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("practice_slug", "reason", name=op.f("pk_webhook_rejections")),
    )


def downgrade() -> None:
    op.drop_table("webhook_rejections")
    op.drop_index(op.f("ix_webhook_inbox_applied_at_practice_slug"), table_name="webhook_inbox")
    op.drop_table("webhook_inbox")
