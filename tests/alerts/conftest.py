"""Alert test set-up: a registry file, the store and SMTP server as Airflow connections, and runs in the ledger.

`alert_env` is the world `summarize_run` sees when a DAG's `summarize` task runs: `CHERRY_SYNC_REGISTRY` names a
registry written by `write_registry`, `cherry_sync_store` is the test's store (SQLite and PostgreSQL, through the
`store` fixture) and `cherry_sync_smtp` a real SMTP server on loopback with operators' addresses. `run(...)` writes
one DAG run's ledger rows the way the practice operators do (start, then finish with counts and details) and then
runs `summarize_run` for it, as the DAG would.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from cherry_sync.store import RunCounts, SyncStore
from cherry_sync.tasks import summarize_run
from tests.fixtures.smtp import SmtpServer

OPS = "ops@aesthetix.example"
GLOW, LUMEN = "glow-aesthetics", "lumen-medspa"
REFRESH, BACKFILL = "cherry_refresh", "cherry_backfill"


def practice_entry(slug: str, alerts: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "slug": slug,
        "display_name": slug.replace("-", " ").title(),
        "timezone": "America/New_York",
        "cherry_conn_id": f"cherry_{slug.replace('-', '_')}",
        "crm_conn_id": f"crm_{slug.replace('-', '_')}",
        **fields,
    }
    if alerts is not None:
        entry["options"] = {"alerts": dict(alerts)}
    return entry


def store_connection(store: SyncStore) -> dict[str, Any]:
    """The store's engine as an Airflow connection (what `get_store` resolves)."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        return {"conn_type": "sqlite", "host": url.database}
    return {
        "conn_type": "postgres",
        "host": url.host,
        "port": url.port,
        "login": url.username,
        "password": url.password or "",
        "schema": url.database,
    }


@dataclass
class AlertEnv:
    store: SyncStore
    smtp: SmtpServer
    registry_path: Path
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def write_registry(self, *entries: dict[str, Any]) -> None:
        self.registry_path.write_text(yaml.safe_dump(list(entries)))

    def run(
        self,
        dag_id: str = REFRESH,
        practices: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        run_id: str | None = None,
    ) -> dict:
        """One DAG run: per practice a ledger row (`read`, `created`, `updated`, `rejected`, `details`, `status`,
        `task_id`), then its `summarize`. Returns the summary."""
        run_id = run_id or f"scheduled__2027-01-01T{next(self.counter):04d}"
        for slug, spec in (practices or {}).items():
            spec = dict(spec)
            ledger_id = self.store.start_run(run_id, dag_id, slug, spec.pop("task_id", "practice.apply_events"))
            status = spec.pop("status", "success")
            details = spec.pop("details", {})
            self.store.finish_run(ledger_id, status, RunCounts(**spec), details)
        return summarize_run(run_id, dag_id)

    def notices(self) -> list:
        return [m.message for m in self.smtp.messages]


@pytest.fixture
def alert_env(store: SyncStore, smtp_server: SmtpServer, tmp_path, monkeypatch) -> AlertEnv:
    registry = tmp_path / "practices.yml"
    monkeypatch.setenv("CHERRY_SYNC_REGISTRY", str(registry))
    monkeypatch.setenv("AIRFLOW_CONN_CHERRY_SYNC_STORE", json.dumps(store_connection(store)))
    for name, value in smtp_server.conn_env(ops_email=OPS).items():
        monkeypatch.setenv(name, value)
    env = AlertEnv(store=store, smtp=smtp_server, registry_path=registry)
    env.write_registry(practice_entry(GLOW), practice_entry(LUMEN))
    return env
