"""Pacing across OS processes: several workers, one CRM location, one shared pacer -> never over the limit.

The CRM sandbox enforces a scaled burst limit (20 requests per 0.5 s per location) and counts, per location,
the most requests it received within any window of that length (`max_in_window`). Three spawned worker
processes, each with its own `AesthetixCrmHook`, send 35 calls each at the same moment through one pacer shared
through SQLite, Redis or PostgreSQL. The sandbox's counters must show every request arrived, none was refused
(429) and no window held more than the limit. The control run gives each process its own in-memory pacer:
the same load then goes over the limit, which shows the test can fail.

Margins: the pacer allows 18 per 0.7 s against the CRM's 20 per 0.5 s. A sliding-log pacer hands out a
freed slot the moment the oldest one expires, so with one request of margin (19 per 0.5 s) a delivery
delay of a millisecond or two between workers already makes the server count 20 or 21 in its window (the
sandbox counts windows by arrival, as its limiter does). Production keeps a 5-request margin (95 of 100 per
10 s) for the same reason.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

from cherry_sync.hooks.base import RetrySettings
from tests.fixtures.databases import create_database, drop_database
from tests.hooks import pacing_worker

WORKERS = 3
REQUESTS_EACH = 35
BURST_LIMIT = 20
WINDOW_SECONDS = 0.5
PACE_MAX = 18  # the pacer allows fewer requests than the CRM...
PACE_WINDOW_SECONDS = 0.7  # ...over a longer window (see the module docstring)
RETRY = RetrySettings(max_attempts=6, backoff_initial=0.05, backoff_max=0.2, connect_timeout=2, read_timeout=5)


@pytest.fixture(scope="module")
def workers():
    pool = pacing_worker.take(WORKERS)  # usually started by conftest right after collection
    yield pool
    pool.stop()


@pytest.fixture
def crm(crm_sandbox_factory):
    return crm_sandbox_factory(
        locations=2, rate_limits={"burst_limit": BURST_LIMIT, "burst_window_seconds": WINDOW_SECONDS}
    )


def _run(workers: pacing_worker.Workers, crm, pacer_url: str, retry: RetrySettings = RETRY) -> tuple[list[dict], dict]:
    loc = crm.location(0)
    crm.reset_stats(window_seconds=WINDOW_SECONDS)
    job = {
        "base_url": crm.base_url,
        "token": loc.token,
        "location_id": loc.id,
        "pacer_url": pacer_url,
        "pace_max": PACE_MAX,
        "pace_window": PACE_WINDOW_SECONDS,
        "requests": REQUESTS_EACH,
        "retry": asdict(retry),
    }
    results = workers.run(job)
    return results, crm.stats()["by_key"].get(loc.id, {})


def _client_max(results, window=WINDOW_SECONDS) -> int:
    """Most slots the workers were given within one CRM window (their own clocks): a diagnostic for failures."""
    ts = sorted(t for r in results for t in r.get("admitted", []))
    best = 0
    j = 0
    for i, t in enumerate(ts):
        while ts[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def _assert_paced(results: list[dict], seen: dict) -> None:
    total = WORKERS * REQUESTS_EACH
    summary = {k: seen.get(k) for k in ("requests", "status_codes", "max_in_window")}
    summary["client_max"] = _client_max(results)
    assert [r["outcomes"] for r in results] == [{"ok": REQUESTS_EACH}] * WORKERS, summary
    assert seen["requests"] == total, f"every request arrived, and none twice: {summary}"
    assert seen["status_codes"] == {"200": total}, f"no 429: the shared pacer kept the workers under: {summary}"
    assert seen["max_in_window"] <= BURST_LIMIT, summary


def test_sqlite_pacer_across_processes(workers, crm, tmp_path):
    results, seen = _run(workers, crm, f"sqlite:///{tmp_path / 'pacing.db'}")
    _assert_paced(results, seen)


def test_redis_pacer_across_processes(workers, crm, redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    pattern = "cherry_sync:pace:*"
    for key in client.scan_iter(pattern):
        client.delete(key)
    try:
        results, seen = _run(workers, crm, redis_url)
    finally:
        for key in client.scan_iter(pattern):
            client.delete(key)
        client.close()
    _assert_paced(results, seen)


@pytest.mark.postgres
def test_postgres_pacer_across_processes(workers, crm, postgres_server):
    url = create_database()
    try:
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        results, seen = _run(workers, crm, conninfo)
    finally:
        drop_database(url)
    _assert_paced(results, seen)


def test_control_without_a_shared_pacer_goes_over_the_limit(workers, crm):
    """Each process paces only itself: together they exceed the CRM's limit, and the sandbox sees it."""
    results, seen = _run(workers, crm, "memory://", RetrySettings(**{**asdict(RETRY), "max_attempts": 1}))
    assert seen["max_in_window"] > BURST_LIMIT
    assert seen["status_codes"].get("429", 0) > 0
    assert sum(r["outcomes"].get("rate_limited", 0) for r in results) == seen["status_codes"]["429"]
