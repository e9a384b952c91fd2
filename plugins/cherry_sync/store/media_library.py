"""Queries for: Media-library folders and the asset upload ledger (issue 6)."""

from __future__ import annotations

from cherry_sync.store.base import StoreBase


class MediaQueries(StoreBase):
    """Media-library folders and the asset upload ledger (issue 6): reads and writes, in batches."""
