"""The real-scheduler deployment for tests/e2e: one per module (it takes about a minute to start); what it runs is
in tests/e2e/deployment.py. Without PostgreSQL or Redis the module skips with the reason, except under CI=true,
where it fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from scripts.local_env import REPO
from tests.e2e.deployment import OPS_EMAIL, REDIS_HOST, REDIS_PORT, Deployment, deployed
from tests.e2e.stack import AirflowStack
from tests.fixtures.databases import in_ci

__all__ = ["OPS_EMAIL", "Deployment"]

ARTIFACTS = REPO / "test-artifacts" / "e2e"


def _redis_or_skip() -> None:
    try:
        redis.Redis(REDIS_HOST, REDIS_PORT, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        reason = f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: the end-to-end tests must run, not skip)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def deployment(request, postgres_server, tmp_path_factory) -> Iterator[Deployment]:
    """The deployment for one test module. A module may set `DEPLOYMENT_OPTIONS` (see `deployed`)."""
    _redis_or_skip()
    options = getattr(request.module, "DEPLOYMENT_OPTIONS", {})
    home = tmp_path_factory.mktemp("e2e-airflow-home")
    with deployed(home, options, on_stop=_keep_logs) as deployment:
        yield deployment


def _keep_logs(stack: AirflowStack) -> None:
    """Component logs are test artifacts (test-artifacts/e2e/), for a person to read after a failure."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for log in stack.component_logs.glob("*.log"):
        (ARTIFACTS / log.name).write_bytes(log.read_bytes())
