"""The CRM's OAuth tokens (`crm_oauth_tokens`), Fernet ciphertext only.

Revision ID: 0008_oauth_tokens
Revises: 0007_webhook_inbox
Create Date: 2027-01-11

Types are spelled out here (not imported from schema_oauth.py) so this revision keeps creating the same table
whatever the schema module becomes later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_oauth_tokens"
down_revision: str | None = "0007_webhook_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "crm_oauth_tokens",
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("subject_type IN ('company', 'location')", name=op.f("ck_crm_oauth_tokens_subject_type")),
        sa.PrimaryKeyConstraint("subject_type", "subject_id", name=op.f("pk_crm_oauth_tokens")),
    )


def downgrade() -> None:
    op.drop_table("crm_oauth_tokens")
