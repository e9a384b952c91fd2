"""Apply the webhook inbox: events Cherry delivered to the receiver go through the same engine as the feed's.

The inbox holds events exactly as the feed serves them, so `EventApplier.apply_page` treats them alike: ids already
processed (by an earlier webhook or by the feed) are dropped, an older version never overwrites a newer one, and a
row is stamped applied only after its page's effects landed. Deliveries arrive in any order and more than once;
rows are read in arrival order, a page at a time.
"""

from __future__ import annotations

from cherry_sync.store import SyncStore
from cherry_sync.sync.events import EventApplier, EventCounts
from cherry_sync.sync.patients import SyncCounts


def apply_inbox(
    store: SyncStore,
    slug: str,
    applier: EventApplier,
    counts: EventCounts,
    patient_counts: SyncCounts,
    *,
    page_size: int = 500,
    max_pages: int = 200,
    dry_run: bool = False,
) -> int:
    """Apply the practice's pending inbox rows, page by page; returns how many rows were read."""
    after, read = 0, 0
    for _ in range(max_pages):
        rows = store.pending_webhooks(slug, after_id=after, limit=page_size)
        if not rows:
            break
        applier.apply_page([row.payload for row in rows], counts, patient_counts)
        if not dry_run:
            store.mark_webhooks_applied(slug, [row.id for row in rows])
        after = rows[-1].id
        read += len(rows)
    return read
