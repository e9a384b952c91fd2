"""Queries for: Monthly metrics reports and the email send ledger (issue 7)."""

from __future__ import annotations

from cherry_sync.store.base import StoreBase


class ReportQueries(StoreBase):
    """Monthly metrics reports and the email send ledger (issue 7): reads and writes, in batches."""
