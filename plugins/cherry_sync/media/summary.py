"""`MediaSummary`: what one practice's media import did, counted as it goes and returned by the run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class MediaSummary:
    """What one practice's import did; `as_dict()` is JSON-safe (asset names, counts, opaque ids)."""

    slug: str
    dry_run: bool
    listed: Counter = field(default_factory=Counter)  # per source
    uploaded: int = 0  # assets uploaded for the first time
    new_versions: int = 0  # changed assets uploaded again (new bytes)
    unchanged: int = 0  # content already in the location (re-runs, renames, the same bytes twice)
    rejected: int = 0
    rejects_by_reason: Counter = field(default_factory=Counter)
    retired: int = 0  # gone from their source since the last run (kept in the CRM)
    gone_during_run: int = 0  # listed, then deleted before the download
    recovered: int = 0  # unconfirmed uploads of an earlier run, found in the CRM
    duplicates_removed: int = 0  # late-landing copies of our own files, deleted
    folders_created: int = 0
    folders_found: int = 0
    bytes_downloaded: int = 0
    bytes_uploaded: int = 0
    peak_in_flight: int = 0  # uploads in flight at once, at most
    peak_held: int = 0  # assets held in memory at once (downloading, downloaded, uploading), at most
    would_upload: list[dict[str, Any]] = field(default_factory=list)
    would_upload_count: int = 0
    api_calls: dict[str, int] = field(default_factory=dict)

    @property
    def crm_calls(self) -> int:
        return sum(n for op, n in self.api_calls.items() if op.startswith("crm "))

    def as_dict(self) -> dict[str, Any]:
        return {
            "practice": self.slug,
            "kind": "media_import",
            "dry_run": self.dry_run,
            "assets": {
                "listed": sum(self.listed.values()),
                "listed_by_source": dict(sorted(self.listed.items())),
                "uploaded": self.uploaded,
                "new_versions": self.new_versions,
                "unchanged": self.unchanged,
                "rejected": self.rejected,
                "rejects_by_reason": dict(sorted(self.rejects_by_reason.items())),
                "retired": self.retired,
                "gone_during_run": self.gone_during_run,
                "recovered": self.recovered,
                "duplicates_removed": self.duplicates_removed,
            },
            "folders": {"created": self.folders_created, "found": self.folders_found},
            "bytes": {"downloaded": self.bytes_downloaded, "uploaded": self.bytes_uploaded},
            "in_flight": {"peak_uploads": self.peak_in_flight, "peak_assets_held": self.peak_held},
            "would_upload": self.would_upload,
            "would_upload_count": self.would_upload_count,
            "api_calls": dict(sorted(self.api_calls.items())),
            "crm_calls": self.crm_calls,
        }
