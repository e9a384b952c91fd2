"""Tables for: Media-library folders and the asset upload ledger (issue 6). Defined on the shared `metadata`; created by migration 0003_media."""

from __future__ import annotations

from cherry_sync.store.schema import metadata  # noqa: F401 - tables below register on it
