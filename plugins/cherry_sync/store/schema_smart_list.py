"""Tables for: Smart-list membership pushed to the CRM (issue 5). Defined on the shared `metadata`; created by migration 0002_smart_list."""

from __future__ import annotations

from cherry_sync.store.schema import metadata  # noqa: F401 - tables below register on it
