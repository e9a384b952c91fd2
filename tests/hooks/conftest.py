"""Helpers for the hook tests: hooks built on the local sandboxes, fast retry settings, Redis availability.

Hooks are built without Airflow's connection lookup (a `Connection` object is passed in), except in
test_airflow_connection.py. Retry settings are scaled down so a fault costs milliseconds, not seconds.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable

import pytest
from airflow.sdk import Connection

from cherry_sync.hooks.base import RetrySettings
from cherry_sync.hooks.cherry import CherryHook
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.hooks.pacing import MemoryPacer, Pacer
from sandbox.cherry.testing import CherrySandbox
from sandbox.crm.testing import CrmSandbox

FAST = RetrySettings(
    max_attempts=6,
    max_elapsed_seconds=20,
    backoff_initial=0.01,
    backoff_max=0.05,
    connect_timeout=0.5,
    read_timeout=0.5,
)
# For calls that move a lot of data (1,200-contact searches): a loaded machine must not turn them into timeouts.
ROOMY = RetrySettings(**{**FAST.__dict__, "read_timeout": 5.0})
PACING_WORKERS = 3  # = test_pacing_processes.WORKERS
REDIS_URL = os.environ.get("CHERRY_SYNC_TEST_REDIS", "redis://127.0.0.1:6379/15")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def connection(conn_id: str, host: str, password: str, **extra) -> Connection:
    return Connection(conn_id=conn_id, conn_type="http", host=host, password=password, extra=json.dumps(extra))


def cherry_hook(
    cherry: CherrySandbox | str,
    practice: int = 0,
    *,
    api_key: str | None = None,
    retry: RetrySettings = FAST,
    pacer: Pacer | None = None,
    sleep: Callable[[float], None] | None = None,
    **extra,
) -> CherryHook:
    """A CherryHook for one sandbox practice (or `api_key`), on its own MemoryPacer unless given one."""
    base_url = cherry if isinstance(cherry, str) else cherry.base_url
    key = api_key if api_key is not None else cherry.practices[practice].api_key
    kwargs = {"sleep": sleep} if sleep is not None else {}
    return CherryHook(
        "cherry_test",
        connection=connection("cherry_test", base_url, key, **extra),
        pacer=pacer or MemoryPacer(),
        retry=retry,
        **kwargs,
    )


def crm_hook(
    crm: CrmSandbox | str,
    which: int = 0,
    *,
    token: str | None = None,
    location_id: str | None = None,
    retry: RetrySettings = FAST,
    pacer: Pacer | None = None,
    sleep: Callable[[float], None] | None = None,
    **extra,
) -> AesthetixCrmHook:
    """An AesthetixCrmHook for one sandbox location (token and location id overridable)."""
    if isinstance(crm, str):
        base_url, loc_id, loc_token = crm, location_id, token
    else:
        loc = crm.location(which)
        base_url, loc_id, loc_token = crm.base_url, location_id or loc.id, token or loc.token
    kwargs = {"sleep": sleep} if sleep is not None else {}
    return AesthetixCrmHook(
        "crm_test",
        connection=connection("crm_test", base_url, loc_token, location_id=loc_id, **extra),
        pacer=pacer or MemoryPacer(),
        retry=retry,
        **kwargs,
    )


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
