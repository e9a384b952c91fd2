"""Task code never opens Airflow's metadata DB: it has its own store, and Airflow 3 workers have no DB access.

Two checks: no module of the package or DAG imports Airflow's ORM/session machinery, and the operators run
to completion in a process whose metadata DB URL points at a port where nothing listens.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from scripts.local_env import REPO, airflow_env, connection_env

FORBIDDEN = ("airflow.settings", "airflow.models", "airflow.utils.session", "airflow.utils.db", "airflow.api_fastapi")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


# The operations page is served by the api-server, never run by a task: it authenticates through Airflow's own auth
# manager (airflow.api_fastapi), which is what the api-server is for. No task-side module may import it.
API_SERVER_ONLY = REPO / "plugins" / "cherry_sync" / "ops"


def test_no_module_imports_airflow_orm_or_sessions():
    package = [p for p in (REPO / "plugins" / "cherry_sync").rglob("*.py") if API_SERVER_ONLY not in p.parents]
    offenders = {
        str(path.relative_to(REPO)): sorted(m for m in _imports(path) if m.startswith(FORBIDDEN))
        for path in [*package, *(REPO / "dags").glob("*.py")]
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_task_side_module_imports_the_api_server_only_package():
    package = [p for p in (REPO / "plugins" / "cherry_sync").rglob("*.py") if API_SERVER_ONLY not in p.parents]
    assert any(API_SERVER_ONLY in p.parents for p in (REPO / "plugins" / "cherry_sync").rglob("*.py"))
    offenders = {
        str(path.relative_to(REPO)): sorted(m for m in _imports(path) if m.startswith("cherry_sync.ops"))
        for path in [*package, *(REPO / "dags").glob("*.py")]
    }
    assert {k: v for k, v in offenders.items() if v} == {}


_RUN_OPERATORS = """
import json, sys
from airflow.sdk import DAG
from cherry_sync.batches import batch_of
from cherry_sync.operators import ApplyEventsOperator, ProvisionCustomFieldsOperator, SyncPatientsOperator
with DAG("no_metadata_db_check", schedule=None):
    ops = (
        ProvisionCustomFieldsOperator(task_id="provision_custom_fields", batch=batch_of("glow-aesthetics")),
        SyncPatientsOperator(task_id="sync_patients", batch=batch_of("glow-aesthetics")),
        ApplyEventsOperator(task_id="apply_events", batch=batch_of("glow-aesthetics")),
    )
results = [op.execute({"run_id": "metadata-db-check"})["practices"]["glow-aesthetics"] for op in ops]
print(json.dumps([r.get("patients", {}).get("created", 0) for r in results]))
"""


def test_operators_run_without_airflow_metadata_db(tmp_path, cherry_sandbox_factory, crm_sandbox_factory):
    from types import SimpleNamespace

    cherry = cherry_sandbox_factory(practices=1, patients_per_practice=20)
    crm = crm_sandbox_factory(locations=1, rate_limits={"burst_limit": 100, "burst_window_seconds": 1.0})
    info = {
        "cherry": {"base_url": cherry.base_url, "practices": [{"api_key": p.api_key} for p in cherry.practices]},
        "crm": {"base_url": crm.base_url, "locations": [{"id": loc.id, "token": loc.token} for loc in crm.locations]},
    }
    conns = connection_env(SimpleNamespace(info=info, cherry_url=cherry.base_url, crm_url=crm.base_url), crm_window=1.0)
    env = airflow_env(
        tmp_path / "home",
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        # Nothing listens on port 9: any use of Airflow's metadata DB fails the run.
        extra={**conns, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://nobody@127.0.0.1:9/airflow_metadata"},
    )
    result = subprocess.run(
        [sys.executable, "-c", _RUN_OPERATORS], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-6000:]
    created = json.loads(result.stdout.strip().splitlines()[-1])
    assert created[1] > 0  # the backfill really wrote contacts
