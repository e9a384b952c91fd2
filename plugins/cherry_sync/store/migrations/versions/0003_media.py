"""Media-library folders and the asset upload ledger (issue 6).

Revision ID: 0003_media
Revises: 0002_smart_list
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "0003_media"
down_revision: str | None = "0002_smart_list"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
