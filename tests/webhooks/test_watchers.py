"""The event watchers against a real store and a real Cherry sandbox, run as the triggerer runs them (async), and
the plan a run derives from the events that triggered it."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml

from cherry_sync.sync.practice_runs import EVENTS_STREAM
from cherry_sync.triggers.schedule import cherry_events_assets, plan_refresh
from cherry_sync.triggers.watchers import FeedWatcher, InboxWatcher
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
