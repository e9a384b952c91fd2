"""Queries for: Smart-list membership pushed to the CRM (issue 5)."""

from __future__ import annotations

from cherry_sync.store.base import StoreBase


class SmartListQueries(StoreBase):
    """Smart-list membership pushed to the CRM (issue 5): reads and writes, in batches."""
