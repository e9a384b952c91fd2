"""What tells Airflow a practice has Cherry events to apply: two `BaseEventTrigger`s, run by the triggerer.

- `InboxWatcher` (practices with webhooks): every second one query of the sync store's webhook inbox, shared by
  every practice through the triggerer's shared streams (one poll loop for all of them); a practice's trigger
  fires when rows it has not signalled yet are pending. The poll's result goes out to the watchers only when it
  changed (or a watcher joined): an idle inbox wakes none of them.
- `FeedWatcher` (the others): one `GET /v1/events` per `poll_seconds` from the practice's stored cursor; it fires
  only when the feed holds something other than `test.ping` after the position it last looked at. Every feed
  watcher shares one reader (a shared stream too): one task per practice on the triggerer's loop, one small thread
  pool and one HTTP connection pool per pool thread for all practices, each practice's reads at a fixed point of
  its interval (from its slug), so the reads of many practices spread evenly instead of coming in bursts.

Either fires a `TriggerEvent` whose payload is the practice slug, the source and counts (the triggerer logs it:
never patient data); the practice's `cherry_events/<slug>` Asset gets an event and `cherry_refresh` runs. Where
the work is is kept in the sync store, not in the triggers: a restarted triggerer (or watcher) starts from what is
still unapplied there (pending inbox rows, the feed after the stored cursor) and fires for it at its first poll
(within one interval), so a restart loses nothing and at worst starts one run that finds nothing new. Errors
never end a watcher (an ended watcher would not be restarted): they are logged by type and the poll carries on
after a pause; a feed read is retried once at most (the next poll is the retry).

Everything that blocks (the store, Cherry, the connection look-up, and the first import of the store and the
hook) runs in a thread, never on the triggerer's event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import zlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)

STORE_CONN_ID = "cherry_sync_store"
INBOX_POLL_SECONDS = 1.0
ERROR_PAUSE_SECONDS = 15.0
_inbox_joins: dict[tuple[str, str, float], int] = {}  # per shared inbox stream: watchers that joined so far


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
        """Practice -> ids of pending rows (all of them, so each subscriber decides what is new), polled every
        `poll_seconds` and sent only when it differs from the last one sent, or when a watcher joined since (it
        has not seen the current one): an idle inbox costs one query per second and no watcher a wake-up."""
        key = ("cherry_sync.webhook_inbox", kwargs["store_conn_id"], kwargs["poll_seconds"])
        store = None
        sent: tuple[dict[str, list[int]], int] | None = None
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
            snapshot = ({slug: sorted(ids) for slug, ids in pending.items()}, _inbox_joins.get(key, 0))
            if snapshot != sent:
                sent = snapshot
                yield snapshot[0]
            await asyncio.sleep(kwargs["poll_seconds"])

    async def filter_shared_stream(
        self, shared_stream: AsyncIterator[dict[str, list[int]]]
    ) -> AsyncIterator[TriggerEvent]:
        key = self.shared_stream_key()
        _inbox_joins[key] = _inbox_joins.get(key, 0) + 1  # the next poll is sent, so this watcher sees it
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
    """Reads the practice's Cherry event feed every `poll_seconds` (one call) and fires when events arrived.

    Every `FeedWatcher` of the triggerer shares one reader (`shared_stream_key`): one loop, one small thread pool
    and one HTTP connection pool per thread for all practices, the practices' reads spread over their interval.
    """

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

    def shared_stream_key(self) -> tuple[str, str]:
        return ("cherry_sync.event_feeds", self.store_conn_id)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[dict[str, dict[str, Any]]]:
        """What the feed reads found: practice -> {events, more}, only when some read found events."""
        async for found in _feed_reader(("cherry_sync.event_feeds", kwargs["store_conn_id"])).stream():
            yield found

    async def filter_shared_stream(
        self, shared_stream: AsyncIterator[dict[str, dict[str, Any]]]
    ) -> AsyncIterator[TriggerEvent]:
        async for event in self._events(_feed_reader(self.shared_stream_key()), shared_stream):
            yield event

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Unshared (the triggerer always shares; kept for direct use): a reader of this practice's feed alone."""
        reader = _FeedReader(self.store_conn_id)
        async for event in self._events(reader, reader.stream()):
            yield event

    async def _events(self, reader: _FeedReader, found_stream: AsyncIterator[dict[str, dict[str, Any]]]):
        # Subscribing (re)starts this practice's reads from the stored cursor: a restarted watcher fires at its
        # first read (within one interval) for what is still unapplied.
        subscription = reader.subscribe(self)
        try:
            async for found in found_stream:
                hit = found.get(self.practice)
                if hit is not None:
                    yield TriggerEvent({"practice": self.practice, "source": "feed", **hit})
        finally:
            reader.unsubscribe(subscription)


# -- the shared feed reader ----------------------------------------------------------------------------------

FEED_READ_THREADS = 16  # 1,000 practices every 15 s at 200 ms a read: ~13 reads in flight
_feed_readers: dict[tuple[str, str], _FeedReader] = {}


def _feed_reader(key: tuple[str, str]) -> _FeedReader:
    reader = _feed_readers.get(key)
    if reader is None:
        reader = _feed_readers[key] = _FeedReader(key[1])
    return reader


def _phase(practice: str, poll_seconds: float) -> float:
    """Where in its interval a practice's reads fall: fixed per slug, so reads spread evenly over the interval."""
    return zlib.crc32(practice.encode()) % 1000 / 1000 * poll_seconds


class _Feed:
    """One subscribed practice: its settings, and the reading task while the reader runs."""

    __slots__ = ("practice", "cherry_conn_id", "poll_seconds", "task")

    def __init__(self, watcher: FeedWatcher) -> None:
        self.practice = watcher.practice
        self.cherry_conn_id = watcher.cherry_conn_id
        self.poll_seconds = float(watcher.poll_seconds)
        self.task: asyncio.Task | None = None


class _FeedReader:
    """Reads the feeds of every subscribed practice from one event loop and reports what it found.

    One asyncio task per practice (sleeping between reads costs nothing) sends each read to a small thread pool
    shared by all practices. The hooks share one `requests.Session` per pool thread (`_shared_session_hook`):
    connections are kept alive across practices (no TCP or TLS set-up per read), the bearer token being set per
    request. The reader's schedule is the reads' pacing (`_paced_by_the_reader`): one read per key per interval
    is far inside Cherry's 20 per second; a 429 (a worker using the key's whole budget at that moment) is retried
    by the hook as always, and the hook still honours Cherry's own remaining-requests count.
    """

    def __init__(self, store_conn_id: str) -> None:
        self.store_conn_id = store_conn_id
        self.feeds: dict[str, _Feed] = {}
        self.found: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self.owner: object | None = None  # the running stream (a group being replaced may still be stopping)
        self.pool: ThreadPoolExecutor | None = None
        self.pacer = None

    def subscribe(self, watcher: FeedWatcher) -> _Feed:
        old = self.feeds.get(watcher.practice)
        if old is not None and old.task is not None:
            old.task.cancel()
        feed = self.feeds[watcher.practice] = _Feed(watcher)
        if self.owner is not None:
            feed.task = asyncio.create_task(self._poll(feed), name=f"cherry-feed-{feed.practice}")
        return feed

    def unsubscribe(self, feed: _Feed) -> None:
        if feed.task is not None:
            feed.task.cancel()
        if self.feeds.get(feed.practice) is feed:
            del self.feeds[feed.practice]

    async def stream(self) -> AsyncIterator[dict[str, dict[str, Any]]]:
        owner = object()
        self._stop()
        self.owner, self.found = owner, asyncio.Queue()
        self.pool = ThreadPoolExecutor(max_workers=FEED_READ_THREADS, thread_name_prefix="cherry-feed")
        for feed in self.feeds.values():
            feed.task = asyncio.create_task(self._poll(feed), name=f"cherry-feed-{feed.practice}")
        found = self.found
        try:
            while True:
                practice, hit = await found.get()
                batch = {practice: hit}
                while not found.empty():  # what other reads found meanwhile goes out in the same broadcast
                    practice, hit = found.get_nowait()
                    batch[practice] = hit
                yield batch
        finally:
            if self.owner is owner:
                self._stop()

    def _stop(self) -> None:
        for feed in self.feeds.values():
            if feed.task is not None:
                feed.task.cancel()
                feed.task = None
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.owner = self.found = self.pool = None

    async def _in_pool(self, func, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, func, *args)

    async def _poll(self, feed: _Feed) -> None:
        loop = asyncio.get_running_loop()
        found = self.found
        assert found is not None
        due = loop.time() + _phase(feed.practice, feed.poll_seconds)
        position: str | None = None
        hook = None
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                if hook is None:
                    hook = await self._in_pool(self._hook, feed.cherry_conn_id)
                if position is None:
                    # The refresh's own cursor: what is after it has not been applied (None: not backfilled yet).
                    position = await self._in_pool(self._stored_cursor, feed.practice)
                if position is not None:
                    page = await self._in_pool(_read, hook, position)
                    events = [e for e in page.items if isinstance(e, dict) and e.get("type") != "test.ping"]
                    position = page.next_cursor or position
                    if events:
                        found.put_nowait((feed.practice, {"events": len(events), "more": page.has_more}))
                due += feed.poll_seconds
            except Exception as exc:  # noqa: BLE001 - a watcher must outlive an API or store outage
                pause = max(feed.poll_seconds, ERROR_PAUSE_SECONDS)
                log.warning(
                    "practice %s: event feed not read (%s); retrying in %.0f s",
                    feed.practice,
                    type(exc).__name__,
                    pause,
                )
                hook = None
                due = loop.time() + pause
            due = max(due, loop.time())  # a late read does not bunch the next ones up

    def _hook(self, conn_id: str):
        if self.pacer is None:
            self.pacer = _paced_by_the_reader()
        return _shared_session_hook()(conn_id, pacer=self.pacer, retry=_feed_read_retry())

    def _stored_cursor(self, practice: str) -> str | None:
        from cherry_sync.sync.practice_runs import EVENTS_STREAM

        return _store(self.store_conn_id).get_cursor(practice, EVENTS_STREAM)


def _paced_by_the_reader():
    """The feed reads' pacer: none beyond the reader's own schedule. A practice's key gets one read per interval
    (5 s at the shortest), far inside Cherry's 20 per second; a limiter per key would cost a thread per key
    (pyrate-limiter's leaker) and a bucket check per read, and the shared pacer a store round trip per read."""
    from cherry_sync.hooks.pacing import Pacer

    class PacedByTheReader(Pacer):
        backend = "feed-reader"

        def acquire(self, key, settings) -> None:
            return None

    return PacedByTheReader()


def _feed_read_retry():
    """A read retried once at most: the next poll is the retry, and a read held in backoff holds a pool thread
    (a Cherry outage must not queue every practice's reads behind minutes of backoff). Connection extras of the
    same names still win."""
    from cherry_sync.hooks.base import RetrySettings

    return RetrySettings(max_attempts=2, max_elapsed_seconds=10.0, backoff_initial=0.5, backoff_max=2.0)


def _read(hook, position: str):
    return next(iter(hook.iter_event_pages(cursor=position)))


_thread_sessions = threading.local()


@functools.cache
def _shared_session_hook() -> type:
    """`CherryHook` whose sessions are shared, per thread, by every practice's hook with the same TLS and proxy
    settings: one connection pool per thread, whatever the number of practices. Safe because the bearer token is
    set on each request, never on the session; cookies are refused, so none can pass from one key to another."""
    from http.cookiejar import DefaultCookiePolicy

    from cherry_sync.hooks.cherry import CherryHook

    class SharedSessionCherryHook(CherryHook):
        def get_conn(self):
            sessions = getattr(_thread_sessions, "by_transport", None)
            if sessions is None:
                sessions = _thread_sessions.by_transport = {}
            key = (repr(self.transport), self.version_header)
            session = sessions.get(key)
            if session is None:
                session = sessions[key] = super().get_conn()
                session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
            return session

    return SharedSessionCherryHook
