"""Eight worker processes meet expired tokens at once: one company refresh, no refused grant, no failed write.

The agency is connected with a 1 s token life and each location's token minted, then everything is left to expire
(in the store and at the sandbox) and the life set back to a day. Eight spawned processes (four per location) then
start writing at the same instant: each finds its location token expired and the company token with it. The store's
row locks must let exactly one of them refresh the company pair (the refresh token is single-use: a second refresh
with the same token would answer invalid_grant) and one per location mint; the rest use what the winners stored.
Pacing across the processes goes through PostgreSQL, Redis or a SQLite file, as a deployment's would.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest

from cherry_sync.store import SyncStore, engine_from_url, migrate
from tests.oauth.conftest import FAST, oauth_connections, token_service
from tests.oauth.oauth_worker import write_contacts

WORKERS = 8
WRITES = 15
LATENCY_MS = 150
REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture(scope="module")
def redis_pacer_url() -> str:
    import redis

    from tests.fixtures.databases import in_ci

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        if in_ci():
            pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc}", pytrace=False)
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


def _race(crm, store_url: str, pacer_url: str) -> None:
    migrate(engine_from_url(store_url))
    store = SyncStore(engine_from_url(store_url))
    conns = oauth_connections(crm)
    locations = [crm.location(0).id, crm.location(1).id]
    crm.set_oauth_ttl(1.0)
    setup = token_service(conns, store)
    setup.connect(crm.oauth_install("all"))
    for location in locations:
        setup.location_token(location)
    time.sleep(1.3)  # every token issued so far is past its end, at the sandbox and in the store
    crm.set_oauth_ttl(86399)
    # Every call takes 150 ms, the refresh too: the workers all find the tokens expired before the winner's new
    # pair is stored, so only the lock (and the re-read inside it) can keep them from refreshing again.
    crm.set_faults(latency_ms=LATENCY_MS)
    before = crm.oauth_stats()

    start_at = time.time() + 6.0  # spawned interpreters import Airflow and the package first
    retry = {**FAST.__dict__, "read_timeout": 10.0}
    jobs = [
        {
            "worker": n,
            "store_url": store_url,
            "pacer_url": pacer_url,
            "connections": conns.as_dicts(),
            "location_id": locations[n % 2],
            "start_at": start_at,
            "writes": WRITES,
            "retry": retry,
        }
        for n in range(WORKERS)
    ]
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        results = pool.map(write_contacts, jobs)
    after = crm.oauth_stats()

    outcomes = [r["outcomes"] for r in results]
    assert all(o == {"ok": WRITES} for o in outcomes), outcomes
    assert after["token_grants"]["refresh_token"] - before["token_grants"]["refresh_token"] == 1, after
    assert after["invalid_grant"] == before["invalid_grant"] == 0, after
    assert after["location_tokens"] - before["location_tokens"] == len(locations), after
    for location in locations:
        contacts = crm.location_state(location)["contacts"]
        assert len(contacts) == WRITES * WORKERS // 2


@pytest.mark.postgres
def test_postgres_store_and_pacing(oauth_crm, postgres_url):
    _race(oauth_crm, postgres_url, postgres_url)


@pytest.mark.postgres
def test_postgres_store_with_redis_pacing(oauth_crm, postgres_url, redis_pacer_url):
    _race(oauth_crm, postgres_url, redis_pacer_url)


def test_sqlite_store_and_pacing(oauth_crm, tmp_path):
    _race(oauth_crm, f"sqlite:///{tmp_path / 'store.db'}", f"sqlite:///{tmp_path / 'pacing.db'}")
