"""Cherry's webhooks end to end without Airflow: the sandbox delivers (duplicates, reordering, forged and replayed
copies, a receiver that is down and comes back), the receiver stores each event once, and the refresh applies the
inbox through the event engine to the same CRM state a fresh backfill writes."""

from __future__ import annotations

import socket
import time

from cherry_sync.sync.practice_runs import EVENTS_STREAM, backfill_practice, refresh_practice
from cherry_sync.webhooks.receiver import RegistryEndpoints, create_app
from sandbox.common.server import start_in_thread
from tests.sync.conftest import SyncEnv, assert_same_state, family_contact_points, sync_env_factory, without_shared
from tests.webhooks.conftest import registry_entry

__all__ = ["sync_env_factory"]  # the sync harness's fixture, used here

SECRET = "whsec_" + "5e" * 16
PAGE = 40


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_delivered(env: SyncEnv, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        overview = env.cherry.webhooks()
        if overview["pending"] == 0:
            return overview["subscriptions"][0]["stats"]
        assert time.monotonic() < deadline, f"deliveries still pending: {overview}"
        time.sleep(0.1)


def test_webhooks_through_faults_and_an_outage_converge_on_a_fresh_backfill(
    sync_env_factory, receiver_factory, monkeypatch
):
    env: SyncEnv = sync_env_factory()
    slug, practice = env.slug(0), env.cherry.practices[0]
    receiver_factory(env.store, {slug: SECRET}, entries=[registry_entry(slug)])  # registry + connection
    backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)
    cursor = env.store.get_cursor(slug, EVENTS_STREAM)

    # The receiver is down when Cherry starts delivering: every attempt is refused until it comes up.
    port = _free_port()
    env.cherry.set_webhook_settings(
        time_scale=0.02,  # 10 s, 30 s, 60 s ... -> 0.2 s, 0.6 s, 1.2 s ...
        duplicate_share=0.3,
        reorder_share=0.3,
        reorder_delay_seconds=20,
    )
    env.cherry.subscribe_webhooks(practice, f"http://127.0.0.1:{port}/{slug}", SECRET)
    changes = {"new_patients": 3, "refreshed": 12, "payments": 2, "refunds": 1, "pings": 1, "practice_id": practice.id}
    made = env.cherry.advance(minutes=60, duplicate_share=0.2, out_of_order_share=0.5, cancellations=1, **changes)
    time.sleep(1.0)
    down = env.cherry.webhooks()["subscriptions"][0]["stats"]
    assert down["failed_attempts"] > 0 and down["delivered"] == 0

    app = create_app(endpoints=RegistryEndpoints(ttl=0), store=lambda: env.store)
    server = start_in_thread(app, port=port)
    try:
        # Back up: the retries land; then forged and replayed copies arrive beside the genuine deliveries.
        env.cherry.set_webhook_settings(
            time_scale=0.02, duplicate_share=0.3, reorder_share=0.3, forged_share=0.3, replay_share=0.3
        )
        more = env.cherry.advance(minutes=60, out_of_order_share=0.5, **changes)
        stats = _wait_delivered(env)
    finally:
        server.stop()

    events = made["practices"][practice.id]["events"] + more["practices"][practice.id]["events"]
    pings = made["practices"][practice.id]["pings"] + more["practices"][practice.id]["pings"]
    assert stats["events"] == events and stats["gave_up"] == 0
    assert stats["delivered"] == stats["events"] + stats["duplicates"]
    assert stats["forged"] > 0 and stats["replays"] > 0
    assert stats["fakes_refused"] == stats["forged"] + stats["replays"] and stats["fakes_accepted"] == 0
    refused = env.store.webhook_rejection_counts(slug)
    assert refused == {(slug, "bad_signature"): stats["forged"], (slug, "stale_timestamp"): stats["replays"]}
    feed_ids = {e["id"] for e in env.cherry.fetch_all("/v1/events", practice, cursor=cursor)}
    stored = env.store.pending_webhooks(slug, limit=10_000)
    assert {row.event_id for row in stored} == feed_ids, "every event once, duplicates folded by id"

    env.crm.reset_stats()
    summary = refresh_practice(env.make_ctx(0), page_size=PAGE, read_feed=False)
    assert summary.webhooks == len(feed_ids)
    assert summary.events.pings == pings
    assert summary.patients.stale > 0, "the older half of an out-of-order pair must be dropped"
    assert env.store.webhook_backlog(slug) == 0
    assert summary.api_calls.get("cherry GET /v1/events", 0) == 0, "the webhook path reads no feed"
    assert env.store.get_cursor(slug, EVENTS_STREAM) == cursor, "the feed cursor is the reconciliation's"

    fresh = sync_env_factory(store="sqlite", cherry_of=env)
    backfill_practice(fresh.make_ctx(0), scope="all", page_size=PAGE)
    served = env.cherry_patients(0)
    shared = family_contact_points(served)
    assert_same_state(without_shared(env.canonical(0), shared), without_shared(fresh.canonical(0), shared))

    # The hourly reconciliation reads the same events from the feed: all already processed, nothing written.
    env.crm.reset_stats()
    reconciled = refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert reconciled.events.events >= len(feed_ids)
    assert reconciled.events.duplicates == reconciled.events.events - reconciled.events.rejected
    assert env.crm_writes(0) == {}
    assert env.store.get_cursor(slug, EVENTS_STREAM) != cursor


def test_a_lost_webhook_is_applied_by_the_reconciliation_from_the_feed(sync_env_factory, receiver_factory):
    env: SyncEnv = sync_env_factory()
    slug, practice = env.slug(0), env.cherry.practices[0]
    receiver = receiver_factory(env.store, {slug: SECRET}, entries=[registry_entry(slug)])
    backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)
    # Cherry gives up at once (an empty retry schedule) and the receiver is pointed at the wrong path: lost.
    env.cherry.set_webhook_settings(retry_schedule_seconds=[])
    env.cherry.subscribe_webhooks(practice, receiver.url("no-such-practice"), SECRET)
    env.cherry.advance(minutes=30, refreshed=5, payments=2, practice_id=practice.id)
    stats = _wait_delivered(env)
    assert stats["gave_up"] == stats["events"] > 0
    assert env.store.webhook_backlog(slug) == 0

    summary = refresh_practice(env.make_ctx(0), page_size=PAGE)

    assert summary.webhooks == 0 and summary.events.events == stats["events"]
    fresh = sync_env_factory(store="sqlite", cherry_of=env)
    backfill_practice(fresh.make_ctx(0), scope="all", page_size=PAGE)
    shared = family_contact_points(env.cherry_patients(0))
    assert_same_state(without_shared(env.canonical(0), shared), without_shared(fresh.canonical(0), shared))
