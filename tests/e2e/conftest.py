"""The real-scheduler deployment for tests/e2e: one per module (it takes about a minute to start).

Services: PostgreSQL at 127.0.0.1:5432 (Airflow's metadata DB and the sync store, two throwaway databases), Redis at
127.0.0.1:6379 (Celery broker, and the API pacer as in docker-compose.yml), both API sandboxes and an SMTP server in
this test process on loopback. Without PostgreSQL or Redis the module skips with the reason, except under CI=true,
where it fails.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from cherry_sync.store import SyncStore, engine_from_url, store_from_engine
from sandbox.cherry.testing import CherrySandbox
from sandbox.crm.testing import CrmSandbox, start_crm_sandbox
from scripts.local_env import REPO, _store_conn, connection_env, registry_practices
from tests.e2e.stack import AirflowStack
from tests.fixtures.databases import _in_ci, create_database, drop_database
from tests.fixtures.smtp import SmtpServer, start_smtp_server

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
CRM_WINDOW = 1.0  # time-scaled burst window (100 per 1 s), as in the DAG tests and the demo
OPS_EMAIL = "oncall@aesthetix.example"
ARTIFACTS = REPO / "test-artifacts" / "e2e"


@dataclass
class Deployment:
    """Everything a test of the deployment touches."""

    stack: AirflowStack
    cherry: CherrySandbox
    crm: CrmSandbox
    smtp: SmtpServer
    store_url: str
    metadata_url: str
    practices: list[dict]  # registry entries, in order (i-th practice = i-th sandbox practice and location)

    @property
    def store(self) -> SyncStore:
        return store_from_engine(engine_from_url(self.store_url))

    def location_id(self, slug: str) -> str:
        index = next(i for i, p in enumerate(self.practices) if p["slug"] == slug)
        return self.crm.locations[index].id

    def cherry_practice(self, slug: str):
        index = next(i for i, p in enumerate(self.practices) if p["slug"] == slug)
        return self.cherry.practices[index]


def _redis_or_skip() -> None:
    try:
        redis.Redis(REDIS_HOST, REDIS_PORT, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        reason = f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}"
        if _in_ci():
            pytest.fail(f"{reason} (CI=true: the end-to-end tests must run, not skip)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def deployment(postgres_server, tmp_path_factory) -> Iterator[Deployment]:
    _redis_or_skip()
    metadata_db = create_database()
    store_db = create_database()
    cherry = CherrySandbox.start(seed=11, practices=3, patients_per_practice=40)
    crm = start_crm_sandbox(locations=3, rate_limits={"burst_limit": 100, "burst_window_seconds": CRM_WINDOW})
    smtp = start_smtp_server()
    stack = None
    try:
        store_url = store_db.render_as_string(hide_password=False)
        metadata_url = metadata_db.render_as_string(hide_password=False)
        info = {
            "cherry": {"practices": [{"api_key": p.api_key} for p in cherry.practices]},
            "crm": {"locations": [{"id": loc.id, "token": loc.token} for loc in crm.locations]},
        }
        sandboxes = SimpleNamespace(info=info, cherry_url=cherry.base_url, crm_url=crm.base_url)
        redis_db = 8 + secrets.randbelow(7)
        connections = {
            **connection_env(sandboxes, crm_window=CRM_WINDOW),
            "AIRFLOW_CONN_CHERRY_SYNC_STORE": json.dumps(_store_conn(store_url)),
            "AIRFLOW_CONN_CHERRY_SYNC_PACER": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
            **smtp.conn_env(ops_email=OPS_EMAIL),
        }
        home: Path = tmp_path_factory.mktemp("e2e-airflow-home")
        stack = AirflowStack(
            home=home,
            metadata_url=metadata_url,
            broker_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
            connections=connections,
            extra_env={
                "CHERRY_SYNC_REPORT_DIR": str(home / "reports"),
                "CHERRY_SYNC_EXPORT_DIR": str(home / "exports"),
                "NO_PROXY": "*",
            },
        )
        stack.prepare()
        stack.start(workers=2)
        yield Deployment(stack, cherry, crm, smtp, store_url, metadata_url, registry_practices())
    finally:
        if stack is not None:
            stack.stop()
            _keep_logs(stack)
        smtp.controller.stop()
        crm.stop(wait=False)
        cherry.stop(wait=False)
        for db in (metadata_db, store_db):
            drop_database(db)


def _keep_logs(stack: AirflowStack) -> None:
    """Component logs are test artifacts (test-artifacts/e2e/), for a person to read after a failure."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for log in stack.component_logs.glob("*.log"):
        (ARTIFACTS / log.name).write_bytes(log.read_bytes())
