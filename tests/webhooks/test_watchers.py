"""The event watchers against a real store and a real Cherry sandbox, run as the triggerer runs them (async, and
through Airflow's own `SharedStreamManager`: every `FeedWatcher` on one shared feed reader, every `InboxWatcher` on
one inbox poll), and the plan a run derives from the events that triggered it."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import yaml
from airflow.triggers.shared_stream import SharedStreamManager

from cherry_sync.sync.practice_runs import EVENTS_STREAM
from cherry_sync.triggers import watchers
from cherry_sync.triggers.schedule import cherry_events_assets, plan_refresh
from cherry_sync.triggers.watchers import FeedWatcher, InboxWatcher
from tests.store.conftest import make_practice
from tests.webhooks.conftest import registry_entry

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Consumer:
    """Drains a trigger's event stream in its own task, as the triggerer does, so waiting never cancels it."""

    def __init__(self, stream) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.create_task(self._drain(stream))

    async def _drain(self, stream) -> None:
        async for event in stream:
            await self.queue.put(event)

    async def next(self, timeout: float):
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
def store_conn(store, monkeypatch):
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        conn = {"conn_type": "sqlite", "host": url.database}
    else:
        conn = {
            "conn_type": "postgres",
            "host": url.host,
            "port": url.port or 5432,
            "login": url.username,
            "password": url.password,
            "schema": url.database,
        }
    monkeypatch.setenv("AIRFLOW_CONN_CHERRY_SYNC_STORE", json.dumps(conn))
    return store


def test_inbox_watcher_fires_once_per_new_arrival_and_again_after_a_restart(store_conn):
    store = store_conn

    async def scenario() -> list:
        seen = []
        stream = Consumer(InboxWatcher("glow", poll_seconds=0.05).run())
        seen.append(await stream.next(1.0))  # nothing stored: no event
        store.store_webhook("glow", "evt_1", "patient.refreshed", {"id": "evt_1"})
        store.store_webhook("glow", "evt_2", "payment.completed", {"id": "evt_2"})
        store.store_webhook("lumen", "evt_3", "patient.refreshed", {"id": "evt_3"})
        seen.append(await stream.next(5.0))
        seen.append(await stream.next(0.5))  # still pending, already signalled: quiet
        store.store_webhook("glow", "evt_4", "patient.refreshed", {"id": "evt_4"})
        seen.append(await stream.next(5.0))
        await stream.stop()
        # A restarted triggerer: a new watcher fires at once for everything still pending.
        restarted = Consumer(InboxWatcher("glow", poll_seconds=0.05).run())
        seen.append(await restarted.next(5.0))
        pending = store.pending_webhooks("glow")
        store.mark_webhooks_applied("glow", [row.id for row in pending])
        seen.append(await restarted.next(0.5))
        await restarted.stop()
        return seen

    idle, first, quiet, second, after_restart, applied = asyncio.run(scenario())
    assert idle is None and quiet is None and applied is None
    assert first.payload == {"practice": "glow", "source": "webhook", "events": 2, "upto": 2}
    assert second.payload == {"practice": "glow", "source": "webhook", "events": 1, "upto": 4}
    assert after_restart.payload["events"] == 3


def test_feed_watcher_fires_only_for_new_events_and_not_for_pings(store_conn, cherry_sandbox, monkeypatch):
    store, cherry = store_conn, cherry_sandbox
    practice = cherry.practices[0]
    conn = {"conn_type": "http", "host": cherry.base_url, "password": practice.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_CHERRY_GLOW", json.dumps(conn))
    monkeypatch.setenv("CHERRY_SYNC_PACER_URL", "memory://")
    from tests.store.conftest import make_practice

    store.sync_practices([make_practice("glow")])
    tail = cherry.get("/v1/events", practice, limit=500)
    while tail.json()["has_more"]:
        tail = cherry.get("/v1/events", practice, limit=500, cursor=tail.json()["next_cursor"])
    store.set_cursor("glow", EVENTS_STREAM, tail.json()["next_cursor"])

    async def scenario() -> list:
        stream = Consumer(FeedWatcher("glow", "cherry_glow", poll_seconds=0.2).run())
        seen = [await stream.next(1.0)]
        cherry.advance(minutes=5, pings=2, practice_id=practice.id)
        seen.append(await stream.next(1.0))  # pings only
        cherry.advance(minutes=5, refreshed=3, practice_id=practice.id)
        seen.append(await stream.next(5.0))
        seen.append(await stream.next(1.0))
        await stream.stop()
        return seen

    cherry.reset_stats()
    idle, pings, events, quiet = asyncio.run(scenario())
    assert idle is None and pings is None and quiet is None
    assert events.payload == {"practice": "glow", "source": "feed", "events": 3, "more": False}
    reads = cherry.stats()["endpoints"].get("GET /v1/events", 0)
    assert 5 <= reads <= 25, "one feed read per interval"


def test_a_run_refreshes_the_practices_its_events_name():
    chosen = ["glow", "lumen", "harbor"]
    assert plan_refresh([], chosen) == [{"practice": s, "read_feed": True} for s in chosen]
    payloads = [
        {"practice": "glow", "source": "webhook", "events": 2},
        {"practice": "lumen", "source": "feed", "events": 1},
        {"practice": "glow", "source": "webhook", "events": 1},
        {"practice": "gone", "source": "feed", "events": 1},
    ]
    assert plan_refresh(payloads, chosen) == [
        {"practice": "glow", "read_feed": False},
        {"practice": "lumen", "read_feed": True},
    ]


def test_every_enabled_practice_has_its_own_events_asset_and_watcher(tmp_path, monkeypatch):
    # One Asset per practice: a practice's event that arrives while the DAG waits for its run still queues its own
    # Asset, so the next run names it (with one shared Asset that event would wait for some later event).
    off = {**registry_entry("harbor", webhooks=False), "enabled": False}
    entries = [registry_entry("glow"), registry_entry("lumen", webhooks=False, poll_seconds=20), off]
    path = tmp_path / "practices.yml"
    path.write_text(yaml.safe_dump(entries))
    monkeypatch.setenv("CHERRY_SYNC_REGISTRY", str(path))

    condition = cherry_events_assets()
    assets = {asset.name: asset for asset in condition.objects}
    assert set(assets) == {"cherry_events/glow", "cherry_events/lumen"}
    assert assets["cherry_events/glow"].uri == "cherry-sync://cherry/events/glow"
    (glow,), (lumen,) = assets["cherry_events/glow"].watchers, assets["cherry_events/lumen"].watchers
    assert isinstance(glow.trigger, InboxWatcher) and glow.trigger.practice == "glow"
    assert isinstance(lumen.trigger, FeedWatcher) and lumen.trigger.poll_seconds == 20.0


class Triggerer:
    """The triggerer's way of running event triggers (shared stream when keyed, `run()` otherwise), minus the
    metadata database: each trigger's events land in its own `Consumer`."""

    def __init__(self) -> None:
        self.manager = SharedStreamManager()
        self.next_id = 0

    def start(self, trigger) -> tuple[int, Consumer]:
        self.next_id += 1
        trigger_id, key = self.next_id, trigger.shared_stream_key()
        assert key is not None, "the watcher must share its stream"

        async def events():
            try:
                shared = self.manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
                async for event in trigger.filter_shared_stream(shared):
                    yield event
            finally:
                await self.manager.unsubscribe(trigger_id, key)

        return trigger_id, Consumer(events())

    async def stop(self) -> None:
        await self.manager.stop_all()


def _feed_tail(cherry, practice) -> str:
    page = cherry.get("/v1/events", practice, limit=500).json()
    while page["has_more"]:
        page = cherry.get("/v1/events", practice, limit=500, cursor=page["next_cursor"]).json()
    return page["next_cursor"]


def test_feed_watchers_share_one_reader_fire_per_practice_survive_errors_and_restarts(
    store_conn, cherry_sandbox, monkeypatch, caplog
):
    store, cherry = store_conn, cherry_sandbox
    glow, lumen = cherry.practices[0], cherry.practices[1]
    for slug, practice in (("glow", glow), ("lumen", lumen)):
        conn = {"conn_type": "http", "host": cherry.base_url, "password": practice.api_key}
        monkeypatch.setenv(f"AIRFLOW_CONN_CHERRY_{slug.upper()}", json.dumps(conn))
    # A practice whose Cherry cannot be reached: its watcher logs and keeps trying, the others are not held up.
    monkeypatch.setenv("AIRFLOW_CONN_CHERRY_DOWN", json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9"}))
    store.sync_practices([make_practice(slug) for slug in ("glow", "lumen", "down")])
    store.set_cursor("glow", EVENTS_STREAM, _feed_tail(cherry, glow))
    store.set_cursor("lumen", EVENTS_STREAM, _feed_tail(cherry, lumen))
    store.set_cursor("down", EVENTS_STREAM, "evt_cursor")
    monkeypatch.setattr(watchers, "ERROR_PAUSE_SECONDS", 0.5)

    async def scenario() -> dict:
        triggerer = Triggerer()
        _, glow_events = triggerer.start(FeedWatcher("glow", "cherry_glow", poll_seconds=0.2))
        _, lumen_events = triggerer.start(FeedWatcher("lumen", "cherry_lumen", poll_seconds=0.2))
        _, down_events = triggerer.start(FeedWatcher("down", "cherry_down", poll_seconds=0.2))
        seen: dict = {"idle": await glow_events.next(1.0)}
        seen["readers"] = {key: sorted(reader.feeds) for key, reader in watchers._feed_readers.items()}
        cherry.advance(minutes=5, pings=2, practice_id=glow.id)
        seen["pings"] = await glow_events.next(1.0)
        cherry.advance(minutes=5, refreshed=2, practice_id=lumen.id)
        seen["lumen"] = await lumen_events.next(5.0)
        seen["glow_meanwhile"] = await glow_events.next(0.5)
        cherry.advance(minutes=5, refreshed=3, practice_id=glow.id)
        seen["glow"] = await glow_events.next(5.0)
        seen["glow_quiet"] = await glow_events.next(1.0)
        # The triggerer restarts glow's watcher: the events after the stored cursor are not applied yet.
        await glow_events.stop()
        _, restarted = triggerer.start(FeedWatcher("glow", "cherry_glow", poll_seconds=0.2))
        seen["restarted"] = await restarted.next(5.0)
        seen["down_alive"] = not down_events.task.done()
        seen["down"] = await down_events.next(0.1)
        for consumer in (restarted, lumen_events, down_events):
            await consumer.stop()
        await triggerer.stop()
        seen["left"] = {key: sorted(reader.feeds) for key, reader in watchers._feed_readers.items()}
        return seen

    with caplog.at_level(logging.WARNING, logger="cherry_sync.triggers.watchers"):
        seen = asyncio.run(scenario())
    assert seen["readers"] == {("cherry_sync.event_feeds", "cherry_sync_store"): ["down", "glow", "lumen"]}
    assert seen["idle"] is None and seen["pings"] is None and seen["glow_meanwhile"] is None
    assert seen["lumen"].payload == {"practice": "lumen", "source": "feed", "events": 2, "more": False}
    assert seen["glow"].payload == {"practice": "glow", "source": "feed", "events": 3, "more": False}
    assert seen["glow_quiet"] is None
    assert seen["restarted"].payload == {"practice": "glow", "source": "feed", "events": 3, "more": False}
    assert seen["down_alive"] and seen["down"] is None
    assert "practice down: event feed not read (ApiUnavailableError)" in caplog.text
    assert seen["left"] == {("cherry_sync.event_feeds", "cherry_sync_store"): []}


def test_an_idle_inbox_is_sent_once_and_a_watcher_that_joins_later_still_fires(store_conn):
    store = store_conn

    async def idle_polls() -> list:
        stream = InboxWatcher.open_shared_stream(InboxWatcher("glow", poll_seconds=0.05).serialize()[1])
        sent = Consumer(stream)
        polls = [await sent.next(2.0), await sent.next(1.0)]  # about 20 polls of an unchanged inbox
        store.store_webhook("glow", "evt_1", "patient.refreshed", {"id": "evt_1"})
        polls.append(await sent.next(2.0))
        await sent.stop()
        return polls

    first, repeated, changed = asyncio.run(idle_polls())
    assert first == {} and repeated is None and changed == {"glow": [1]}

    async def late_joiner() -> list:
        triggerer = Triggerer()
        _, glow = triggerer.start(InboxWatcher("glow", poll_seconds=0.05))
        seen = [await glow.next(2.0)]  # evt_1, stored above
        store.store_webhook("lumen", "evt_2", "patient.refreshed", {"id": "evt_2"})
        seen.append(await glow.next(0.5))  # lumen's row: nothing for glow
        # lumen's watcher starts after the poll that found its row was sent, and nothing changes afterwards.
        _, lumen = triggerer.start(InboxWatcher("lumen", poll_seconds=0.05))
        seen.append(await lumen.next(2.0))
        seen.append(await glow.next(0.5))
        for consumer in (glow, lumen):
            await consumer.stop()
        await triggerer.stop()
        return seen

    glow_first, glow_quiet, lumen_first, glow_still_quiet = asyncio.run(late_joiner())
    assert glow_first.payload == {"practice": "glow", "source": "webhook", "events": 1, "upto": 1}
    assert glow_quiet is None and glow_still_quiet is None
    assert lumen_first.payload == {"practice": "lumen", "source": "webhook", "events": 1, "upto": 2}
