"""What tells Airflow a practice has Cherry events to apply: two `BaseEventTrigger`s, run by the triggerer.

- `InboxWatcher` (practices with webhooks): every second one query of the sync store's webhook inbox, shared by
  every practice through the triggerer's shared streams (one poll loop for all of them); a practice's trigger
  fires when rows it has not signalled yet are pending.
- `FeedWatcher` (the others): one `GET /v1/events` per `poll_seconds` from the practice's stored cursor; it fires
  only when the feed holds something other than `test.ping` after the position it last looked at.

Either fires a `TriggerEvent` whose payload is the practice slug, the source and counts (the triggerer logs it:
never patient data); the practice's `cherry_events/<slug>` Asset gets an event and `cherry_refresh` runs. Where
the work is is kept in the sync store, not in the triggers: a restarted triggerer starts from what is still
unapplied there (pending inbox rows, the feed after the stored cursor) and fires for it at once, so a restart loses
nothing and at worst starts one run that finds nothing new. Errors never end a watcher (an ended watcher would not
be restarted): they are logged by type and the poll carries on after a pause.

Everything that blocks (the store, Cherry, the connection look-up, and the first import of the store and the
hook) runs in a thread (`asyncio.to_thread`), never on the triggerer's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)

STORE_CONN_ID = "cherry_sync_store"
INBOX_POLL_SECONDS = 1.0
ERROR_PAUSE_SECONDS = 15.0


def _store(conn_id: str):
    from cherry_sync.store import get_store

    return get_store(conn_id)


class InboxWatcher(BaseEventTrigger):
    """Fires when the practice's webhook inbox holds rows not signalled yet (shared poll over every practice)."""

    def __init__(self, practice: str, store_conn_id: str = STORE_CONN_ID, poll_seconds: float = INBOX_POLL_SECONDS):
        super().__init__()
        self.practice = practice
        self.store_conn_id = store_conn_id
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"practice": self.practice, "store_conn_id": self.store_conn_id, "poll_seconds": self.poll_seconds},
        )

    def shared_stream_key(self) -> tuple[str, str, float]:
        return ("cherry_sync.webhook_inbox", self.store_conn_id, self.poll_seconds)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[dict[str, list[int]]]:
        """Every poll: practice -> ids of pending rows (all of them, so each subscriber decides what is new)."""
        store = None
        while True:
            try:
                store = store or await asyncio.to_thread(_store, kwargs["store_conn_id"])
                pending = await asyncio.to_thread(store.pending_webhook_ids)
            except Exception as exc:  # noqa: BLE001 - a watcher must outlive a store outage
                log.warning(
                    "webhook inbox unreadable (%s); retrying in %.0f s", type(exc).__name__, ERROR_PAUSE_SECONDS
                )
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
                continue
            yield {slug: sorted(ids) for slug, ids in pending.items()}
            await asyncio.sleep(kwargs["poll_seconds"])

    async def filter_shared_stream(
        self, shared_stream: AsyncIterator[dict[str, list[int]]]
    ) -> AsyncIterator[TriggerEvent]:
        signalled: set[int] = set()
        async for pending in shared_stream:
            ids = set(pending.get(self.practice, ()))
            new = ids - signalled
            signalled &= ids  # applied rows leave the set, so it stays as small as the backlog
            if new:
                signalled |= new
                yield TriggerEvent(
                    {"practice": self.practice, "source": "webhook", "events": len(new), "upto": max(new)}
                )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Unshared (the triggerer always shares; kept for direct use): the same loop for this practice alone."""
        async for event in self.filter_shared_stream(self.open_shared_stream(self.serialize()[1])):
            yield event


class FeedWatcher(BaseEventTrigger):
    """Reads the practice's Cherry event feed every `poll_seconds` (one call) and fires when events arrived."""

    def __init__(
        self, practice: str, cherry_conn_id: str, poll_seconds: float = 15.0, store_conn_id: str = STORE_CONN_ID
    ):
        super().__init__()
        self.practice = practice
        self.cherry_conn_id = cherry_conn_id
        self.poll_seconds = poll_seconds
        self.store_conn_id = store_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "practice": self.practice,
                "cherry_conn_id": self.cherry_conn_id,
                "poll_seconds": self.poll_seconds,
                "store_conn_id": self.store_conn_id,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        position: str | None = None
        hook = None
        while True:
            try:
                if hook is None:
                    hook = await asyncio.to_thread(self._hook)
                if position is None:
                    # The refresh's own cursor: what is after it has not been applied (None: not backfilled yet).
                    position = await asyncio.to_thread(self._stored_cursor)
                if position is not None:
                    page = await asyncio.to_thread(self._read, hook, position)
                    events = [e for e in page.items if isinstance(e, dict) and e.get("type") != "test.ping"]
                    position = page.next_cursor or position
                    if events:
                        yield TriggerEvent(
                            {"practice": self.practice, "source": "feed", "events": len(events), "more": page.has_more}
                        )
            except Exception as exc:  # noqa: BLE001 - a watcher must outlive an API or store outage
                log.warning(
                    "practice %s: event feed not read (%s); retrying in %.0f s",
                    self.practice,
                    type(exc).__name__,
                    max(self.poll_seconds, ERROR_PAUSE_SECONDS),
                )
                hook = None
                await asyncio.sleep(max(self.poll_seconds, ERROR_PAUSE_SECONDS) - self.poll_seconds)
            await asyncio.sleep(self.poll_seconds)

    def _hook(self):
        from cherry_sync.hooks.cherry import CherryHook
        from cherry_sync.runtime import shared_pacer

        return CherryHook(self.cherry_conn_id, pacer=shared_pacer())

    def _stored_cursor(self) -> str | None:
        from cherry_sync.sync.practice_runs import EVENTS_STREAM

        return _store(self.store_conn_id).get_cursor(self.practice, EVENTS_STREAM)

    @staticmethod
    def _read(hook, position: str):
        return next(iter(hook.iter_event_pages(cursor=position)))
