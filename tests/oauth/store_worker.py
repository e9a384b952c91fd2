"""A spawned worker for the token store's lock tests: rotate a subject's row if nobody did yet, report what it did.

Separate OS processes, so nothing but the store's row lock (PostgreSQL `FOR UPDATE`, SQLite `BEGIN IMMEDIATE`)
coordinates them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


def rotate_once(job: dict) -> dict:
    """Wait for the common start, take the lock; if the row still has no token, 'refresh' slowly and save."""
    from cherry_sync.store import SyncStore, engine_from_url

    store = SyncStore(engine_from_url(job["url"]))
    time.sleep(max(0.0, job["start_at"] - time.time()))
    with store.locked_oauth_token("company", "agency-1") as lock:
        seen = lock.current.generation
        if lock.current.access_token is not None:
            return {"rotated": False, "seen": seen}
        time.sleep(job["hold_seconds"])  # the refresh's round trip, with the lock held
        saved = lock.save(f"access-{job['worker']}", f"refresh-{job['worker']}", datetime.now(UTC) + timedelta(hours=1))
    return {"rotated": True, "seen": seen, "generation": saved.generation}
