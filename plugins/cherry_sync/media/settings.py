"""`ImportSettings`: the media import's limits and patience, one value per run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cherry_sync.media import content_types


@dataclass(frozen=True)
class ImportSettings:
    """Limits and patience. `settle_seconds` None: the CRM hook's read timeout (see AesthetixCrmHook._look_until)."""

    max_bytes: int = content_types.MAX_UPLOAD_BYTES
    settle_seconds: float | None = None
    recheck_window: timedelta = timedelta(hours=1)  # how long a folder is swept after an unknown upload outcome
    prefetch: int = 2  # downloads running ahead of the uploads in flight (each held in memory, at most max_bytes)
    download_workers: int = 3  # downloads at once (Cherry allows 20 requests per second per key; paced at 18)
    max_in_flight: int | None = None  # uploads in flight per location; None: the CRM connection's (default 8)
    buffer_bytes: int = 128 * 1024 * 1024  # listed bytes held at once (downloading, waiting, uploading); >= 1 asset
