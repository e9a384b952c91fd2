"""Running the product's DAGs with Airflow itself (`airflow dags test`) against the sandboxes.

The metadata DB (SQLite) is migrated once per session; each test gets fresh sandboxes, a fresh store and
connections passed as AIRFLOW_CONN_* variables, exactly as `make demo` runs them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sandbox.cherry.testing import CherrySandbox
from sandbox.common.stats import crm_writes
from sandbox.crm.testing import CrmSandbox
from scripts.local_env import REPO, airflow, airflow_env, connection_env, migrate_metadata

CRM_WINDOW = 1.0  # time-scaled burst window for speed: 100 per 1 s at the sandbox, 95 per 1 s in the hooks


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    migrate_metadata(airflow_env(home))
    return home


@dataclass
class DagEnv:
    """Sandboxes + store + Airflow environment for DAG runs."""

    home: Path
    cherry: CherrySandbox
    crm: CrmSandbox
    store_url: str
    registry_path: Path
    extra: dict = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        info = {
            "cherry": {
                "base_url": self.cherry.base_url,
                "practices": [{"api_key": p.api_key} for p in self.cherry.practices],
            },
            "crm": {
                "base_url": self.crm.base_url,
                "locations": [{"id": loc.id, "token": loc.token} for loc in self.crm.locations],
            },
        }
        sandboxes = SimpleNamespace(info=info, cherry_url=self.cherry.base_url, crm_url=self.crm.base_url)
        conns = connection_env(sandboxes, self.registry_path, crm_window=CRM_WINDOW)
        return airflow_env(
            self.home,
            store_url=self.store_url,
            extra={**conns, "CHERRY_SYNC_REGISTRY": str(self.registry_path), **self.extra},
        )

    def run(self, dag_id: str, **conf) -> str:
        """`airflow dags test` the DAG; returns its output; fails the test if the run did not succeed."""
        result = airflow(self.env, "dags", "test", dag_id, "-c", json.dumps(conf), check=False)
        out = result.stdout or ""
        assert result.returncode == 0 and re.search(r"DagRun Finished: .*state=success", out), out[-8000:]
        return out

    def registry(self) -> list[dict]:
        return yaml.safe_load(self.registry_path.read_text())

    def write_registry(self, entries: list[dict]) -> None:
        self.registry_path.write_text(yaml.safe_dump(entries, sort_keys=False))

    def crm_writes(self, location_id: str | None = None) -> int:
        """Write requests that reached the CRM sandbox: for one location, or all of them."""
        stats = self.crm.stats()
        endpoints = stats["by_key"].get(location_id, {}).get("endpoints", {}) if location_id else stats["endpoints"]
        return crm_writes(endpoints)

    def crm_requests(self, location_id: str) -> int:
        return self.crm.stats()["by_key"].get(location_id, {}).get("requests", 0)


@pytest.fixture
def dag_env(airflow_home, tmp_path, cherry_sandbox_factory, crm_sandbox_factory) -> DagEnv:
    cherry = cherry_sandbox_factory(practices=3, patients_per_practice=30)
    crm = crm_sandbox_factory(locations=3, rate_limits={"burst_limit": 100, "burst_window_seconds": CRM_WINDOW})
    registry_path = tmp_path / "practices.yml"
    registry_path.write_text((REPO / "include" / "practices.yml").read_text())
    return DagEnv(airflow_home, cherry, crm, f"sqlite:///{tmp_path / 'store.db'}", registry_path)


@pytest.fixture
def dag_env_any_store(dag_env, store_url) -> DagEnv:
    """`dag_env` on each store backend (SQLite and PostgreSQL), on an empty database."""
    dag_env.store_url = store_url
    return dag_env
