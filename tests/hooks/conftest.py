"""Helpers for the hook tests: hooks built on the local sandboxes, fast retry settings, Redis availability.

Hooks are built by tests/fixtures/hooks.py without Airflow's connection lookup (a `Connection` object is passed
in), except in test_airflow_connection.py; `FAST`, `cherry_hook` and `crm_hook` are imported from here by the
hook tests. Retry settings are scaled down so a fault costs milliseconds, not seconds.
"""

from __future__ import annotations

import os
import socket

import pytest

from cherry_sync.hooks.base import RetrySettings
from tests.fixtures.databases import in_ci
from tests.fixtures.hooks import FAST as FAST
from tests.fixtures.hooks import cherry_hook as cherry_hook
from tests.fixtures.hooks import crm_hook as crm_hook

# For calls that move a lot of data (1,200-contact searches) or run under added latency: a loaded machine must not
# turn them into timeouts (a timed-out write is retried, which a concurrency count would see as one more in flight).
ROOMY = RetrySettings(**{**FAST.__dict__, "read_timeout": 5.0})
PACING_WORKERS = 3  # = test_pacing_processes.WORKERS
REDIS_URL = os.environ.get("CHERRY_SYNC_TEST_REDIS", "redis://127.0.0.1:6379/15")


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


class SleepRecorder:
    """Stands in for time.sleep in a hook: records the waits tenacity asks for, waits for none of them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis test database URL; skips (or fails under CI=true) when no server answers."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        reason = f"Redis not reachable at {REDIS_URL}: {exc}"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: redis tests must run, not skip)", pytrace=False)
        pytest.skip(reason)
    finally:
        client.close()
    return REDIS_URL


def pytest_collection_finish(session) -> None:
    """Start the pacing tests' worker processes now if they will run: their imports overlap the other tests."""
    if any(item.nodeid.startswith("tests/hooks/test_pacing_processes.py") for item in session.items):
        from tests.hooks import pacing_worker

        pacing_worker.prestart(PACING_WORKERS)
