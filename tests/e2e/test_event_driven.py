"""Event-driven refresh on the real scheduler: a triggerer runs the `cherry_events` watchers, the api-server serves
the webhook receiver (plugin), and `cherry_refresh` runs only when there is something to apply.

On one deployment, in file order: glow-aesthetics gets Cherry webhooks (duplicated, reordered, forged and replayed
copies among them), lumen-medspa is polled every 5 s; then the receiver (api-server) is down while Cherry delivers
and comes back, and the triggerer is killed while events pile up and started again. Every event ends applied
exactly once (processed in the store, nothing pending), forged and replayed deliveries are refused and counted,
and an idle minute starts no run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from cherry_sync.sync.practice_runs import EVENTS_STREAM
from scripts.local_env import registry_practices
from tests.e2e.conftest import Deployment

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.airflow, pytest.mark.timeout(1500)]

WEBHOOK, POLLED = "glow-aesthetics", "lumen-medspa"
SECRET = "whsec_" + "e2" * 16
POLL_SECONDS = 5


def _registry() -> list[dict]:
    entries = {e["slug"]: dict(e) for e in registry_practices()}
    entries[WEBHOOK]["events"] = {"webhooks": True}
    entries[POLLED]["events"] = {"poll_seconds": POLL_SECONDS}
    entries["harbor-dermatology"]["enabled"] = False
    return list(entries.values())


DEPLOYMENT_OPTIONS = {
    "registry": _registry(),
    "cherry_extras": {WEBHOOK: {"webhook_secret": SECRET}},
    "triggerer": True,
    # Asset-triggered runs are created by the scheduler's job schedule (the hourly cron one too, at :17).
    "env": {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True"},
}


def _wait(what: str, check: Callable[[], bool], timeout: float = 240, every: float = 2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(every)


def _event_ids(deployment: Deployment, slug: str, cursor: str) -> set[str]:
    return {e["id"] for e in deployment.cherry.fetch_all("/v1/events", deployment.cherry_practice(slug), cursor=cursor)}


def _all_applied(deployment: Deployment, slug: str, ids: set[str]) -> bool:
    store = deployment.store
    return not store.filter_new_events(slug, ids) and store.webhook_backlog(slug) == 0


def _runs_done(deployment: Deployment, run_type: str) -> bool:
    runs = deployment.stack.client().dag_runs("cherry_refresh")
    mine = [r for r in runs if r["run_type"] == run_type]
    return bool(mine) and all(r["state"] in ("success", "failed") for r in mine)


def _asset_runs(deployment: Deployment) -> list[dict]:
    runs = deployment.stack.client().dag_runs("cherry_refresh")
    return [r for r in runs if r["run_type"] == "asset_triggered"]


def _wait_runs_settled(deployment: Deployment) -> None:
    _wait("refresh runs finished", lambda: all(r["state"] in ("success", "failed") for r in _asset_runs(deployment)))
    assert all(r["state"] == "success" for r in _asset_runs(deployment)), _asset_runs(deployment)


def _delivered(deployment: Deployment) -> dict:
    overview = deployment.cherry.webhooks()
    return overview if overview["pending"] == 0 else {}


@pytest.fixture(scope="module")
def start(deployment: Deployment) -> dict[str, str]:
    """Both practices backfilled by hand, then the refresh unpaused: where each practice's feed was."""
    client = deployment.stack.client()
    deployment.stack.wait_for_dags(client, {"cherry_backfill", "cherry_refresh"})
    client.unpause("cherry_backfill")
    run_id = client.trigger("cherry_backfill", {"practices": [WEBHOOK, POLLED], "page_size": 50})
    assert client.wait_for_run("cherry_backfill", run_id, timeout=600)["state"] == "success"
    cursors = {slug: deployment.store.get_cursor(slug, EVENTS_STREAM) for slug in (WEBHOOK, POLLED)}
    assert all(cursors.values())
    client.unpause("cherry_refresh")
    # Unpausing starts the latest hourly (reconciliation) run at once (catchup off): let it finish, and give the
    # triggerer time to start the watchers, so that every later run is one the watchers started.
    _wait("the unpause's reconciliation run", lambda: _runs_done(deployment, "scheduled"), timeout=300)
    time.sleep(20)
    deployment.cherry.subscribe_webhooks(
        deployment.cherry_practice(WEBHOOK), f"{deployment.stack.api_url}/cherry-webhooks/{WEBHOOK}", SECRET
    )
    return cursors


def test_webhooks_and_polling_each_apply_their_practice_once(deployment: Deployment, start):
    cherry = deployment.cherry
    cherry.set_webhook_settings(
        time_scale=0.05, duplicate_share=0.3, reorder_share=0.3, reorder_delay_seconds=20, forged_share=0.3,
        replay_share=0.3,
    )  # fmt: skip
    for slug in (WEBHOOK, POLLED):
        cherry.advance(
            minutes=30, refreshed=4, payments=2, new_patients=1, practice_id=deployment.cherry_practice(slug).id
        )

    _wait("webhooks delivered", lambda: bool(_delivered(deployment)), timeout=120)
    hooked, polled = _event_ids(deployment, WEBHOOK, start[WEBHOOK]), _event_ids(deployment, POLLED, start[POLLED])
    _wait("webhook events applied", lambda: _all_applied(deployment, WEBHOOK, hooked))
    _wait("polled events applied", lambda: _all_applied(deployment, POLLED, polled))
    _wait_runs_settled(deployment)

    runs = _asset_runs(deployment)
    assert runs, "the events started asset-triggered runs"
    ledger = [r for run in runs for r in deployment.store.list_runs(run_id=run["dag_run_id"], dag_id="cherry_refresh")]
    applied = {(r.practice_slug, r.task_id) for r in ledger if (r.task_id or "").startswith("apply_events")}
    assert {slug for slug, _ in applied} == {WEBHOOK, POLLED}, "only the practices with events ran"
    hook_rows = [r for r in ledger if r.practice_slug == WEBHOOK and r.task_id and r.task_id.startswith("apply")]
    assert sum(r.details.get("webhooks", 0) for r in hook_rows) >= len(hooked), "glow's events came by webhook"
    assert all(r.details["api_calls"].get("cherry GET /v1/events", 0) == 0 for r in hook_rows), "no feed read"
    poll_rows = [r for r in ledger if r.practice_slug == POLLED and r.task_id and r.task_id.startswith("apply")]
    assert sum(r.details.get("webhooks", 0) for r in poll_rows) == 0

    stats = cherry.webhooks()["subscriptions"][0]["stats"]
    assert stats["forged"] and stats["replays"] and stats["fakes_accepted"] == 0
    assert deployment.store.webhook_rejection_counts(WEBHOOK) == {
        (WEBHOOK, "bad_signature"): stats["forged"],
        (WEBHOOK, "stale_timestamp"): stats["replays"],
    }


def test_receiver_down_then_back_loses_nothing(deployment: Deployment, start):
    cherry, stack = deployment.cherry, deployment.stack
    cherry.set_webhook_settings(time_scale=0.05)  # retries at 0.5 s, 1.5 s, 3 s, 15 s, 45 s ...
    api = stack.components["api-server"]
    api.stop()
    try:
        cherry.advance(minutes=30, refreshed=4, payments=1, practice_id=deployment.cherry_practice(WEBHOOK).id)
        time.sleep(30)  # ten minutes down, at the sandbox's time scale
        assert cherry.webhooks()["subscriptions"][0]["stats"]["failed_attempts"] > 0
    finally:
        # Back up whatever happened above: the module's later tests share this deployment.
        stack.start_component("api-server", "api-server", "--port", str(stack.api_port), "--host", "127.0.0.1")
        stack.wait_until_healthy()

    # Cherry retries at 20 s, 65 s and 245 s after the event (time-scaled): the api-server may take a while to be back.
    _wait("retried webhooks delivered", lambda: bool(_delivered(deployment)), timeout=300)
    assert cherry.webhooks()["subscriptions"][0]["stats"]["gave_up"] == 0
    hooked = _event_ids(deployment, WEBHOOK, start[WEBHOOK])
    _wait("webhook events applied", lambda: _all_applied(deployment, WEBHOOK, hooked))
    _wait_runs_settled(deployment)


def test_triggerer_restart_applies_what_piled_up(deployment: Deployment, start):
    cherry, stack = deployment.cherry, deployment.stack
    stack.components["triggerer"].kill_hard()
    before = len(_asset_runs(deployment))
    for slug in (WEBHOOK, POLLED):
        cherry.advance(minutes=30, refreshed=3, payments=1, practice_id=deployment.cherry_practice(slug).id)
    _wait("webhooks stored while no watcher runs", lambda: bool(_delivered(deployment)), timeout=120)
    time.sleep(POLL_SECONDS * 2)
    assert len(_asset_runs(deployment)) == before, "no watcher, no run"
    assert deployment.store.webhook_backlog(WEBHOOK) > 0

    stack.start_component("triggerer", "triggerer")
    hooked, polled = _event_ids(deployment, WEBHOOK, start[WEBHOOK]), _event_ids(deployment, POLLED, start[POLLED])
    _wait("webhook events applied after the restart", lambda: _all_applied(deployment, WEBHOOK, hooked))
    _wait("polled events applied after the restart", lambda: _all_applied(deployment, POLLED, polled))
    _wait_runs_settled(deployment)


def test_an_idle_minute_starts_no_run(deployment: Deployment, start):
    _wait_runs_settled(deployment)
    client = deployment.stack.client()
    before = {r["dag_run_id"] for r in client.dag_runs("cherry_refresh")}
    reads = deployment.cherry.stats()["endpoints"].get("GET /v1/events", 0)
    time.sleep(60)
    runs = client.dag_runs("cherry_refresh")
    new = [r for r in runs if r["dag_run_id"] not in before]
    # Only the hourly safety net may start (when the minute crosses :17); nothing else happened.
    assert all(r["run_type"] == "scheduled" for r in new), new
    feed_reads = deployment.cherry.stats()["endpoints"].get("GET /v1/events", 0) - reads
    hourly_reads = 2 * len(new)  # the hourly run reads both practices' feeds
    assert 60 / POLL_SECONDS / 2 <= feed_reads - hourly_reads <= 60 / POLL_SECONDS + 2, "one read per interval"
    assert stack_alive(deployment)


def stack_alive(deployment: Deployment) -> bool:
    return all(c.alive() for c in deployment.stack.components.values())
