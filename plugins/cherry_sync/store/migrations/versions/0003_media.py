"""Media-library folders and the asset upload ledger.

Revision ID: 0003_media
Revises: 0002_smart_list
Create Date: 2026-11-22

Types are spelled out here (not imported from schema_media.py) so this revision keeps creating the same tables
whatever the schema module becomes later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_media"
down_revision: str | None = "0002_smart_list"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _practice_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["practice_slug"], ["practices.slug"], name=op.f(f"fk_{table}_practice_slug_practices"), ondelete="RESTRICT"
    )


def upgrade() -> None:
    op.create_table(
        "media_folders",
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("crm_location_id", sa.String(length=128), nullable=False),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("crm_folder_id", sa.String(length=128), nullable=False),
        sa.Column("parent_folder_id", sa.String(length=128), nullable=True),
        sa.Column("created", sa.Boolean(), nullable=False),
        sa.Column("recheck_since", TS, nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
        _practice_fk("media_folders"),
        sa.PrimaryKeyConstraint("practice_slug", "crm_location_id", "path", name=op.f("pk_media_folders")),
    )

    op.create_table(
        "media_uploads",
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("crm_location_id", sa.String(length=128), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("asset_key", sa.String(length=128), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=False),
        sa.Column("crm_folder_id", sa.String(length=128), nullable=False),
        sa.Column("file_name", sa.String(length=300), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("crm_file_id", sa.String(length=128), nullable=True),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("uploaded_at", TS, nullable=True),
        _practice_fk("media_uploads"),
        sa.PrimaryKeyConstraint("practice_slug", "crm_location_id", "sha256", name=op.f("pk_media_uploads")),
    )
    op.create_index(
        op.f("ix_media_uploads_practice_slug_crm_location_id_crm_folder_id"),
        "media_uploads",
        ["practice_slug", "crm_location_id", "crm_folder_id"],
    )

    op.create_table(
        "media_assets",
        sa.Column("practice_slug", sa.String(length=64), nullable=False),
        sa.Column("asset_key", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_id", sa.String(length=1024), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("fingerprint", sa.String(length=200), nullable=True),
        sa.Column("source_updated_at", TS, nullable=True),
        sa.Column("refused_sha256", sa.String(length=64), nullable=True),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("retired_at", TS, nullable=True),
        _practice_fk("media_assets"),
        sa.PrimaryKeyConstraint("practice_slug", "asset_key", name=op.f("pk_media_assets")),
    )


def downgrade() -> None:
    op.drop_table("media_assets")
    op.drop_index(op.f("ix_media_uploads_practice_slug_crm_location_id_crm_folder_id"), table_name="media_uploads")
    op.drop_table("media_uploads")
    op.drop_table("media_folders")
