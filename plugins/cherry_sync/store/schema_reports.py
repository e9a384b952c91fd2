"""Tables for: Monthly metrics reports and the email send ledger (issue 7). Defined on the shared `metadata`; created by migration 0004_reports."""

from __future__ import annotations

from cherry_sync.store.schema import metadata  # noqa: F401 - tables below register on it
