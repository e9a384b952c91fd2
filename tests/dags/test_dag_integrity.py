"""Every DAG file imports cleanly in a fresh process, parses quickly, and follows the house policy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cherry_sync.dag_support import POOLS
from scripts.local_env import REPO, airflow_env

DAG_FILES = sorted((REPO / "dags").glob("*.py"))
EXPECTED = {
    "cherry_backfill",
    "cherry_maintenance",
    "cherry_media_import",
    "cherry_onboard",
    "cherry_metrics_email",
    "cherry_refresh",
    "cherry_smart_list",
}
# DAGs that run per practice and end in the run summary; the others (housekeeping) have no practices.
HOUSEKEEPING = {"cherry_maintenance"}

# Runs in a fresh interpreter: imports Airflow first, then times only the DAG file's own execution.
_PARSE = """
import json, runpy, sys, time
import airflow.sdk  # warm: the clock below measures the DAG file, not Airflow's import
from airflow.sdk import DAG
start = time.perf_counter()
namespace = runpy.run_path(sys.argv[1])
elapsed = time.perf_counter() - start
dags = sorted(v.dag_id for v in namespace.values() if isinstance(v, DAG))
print(json.dumps({"seconds": elapsed, "dags": dags}))
"""


def test_dag_files_exist():
    assert {p.stem for p in DAG_FILES} >= EXPECTED


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_in_a_fresh_process_and_parses_fast(path: Path, tmp_path):
    env = airflow_env(tmp_path / "home")
    result = subprocess.run(
        [sys.executable, "-c", _PARSE, str(path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["dags"] == [path.stem]
    assert report["seconds"] < 1.0, f"{path.name} took {report['seconds']:.2f}s to parse"


def _calls_an_api(task) -> bool:
    from cherry_sync.operators.practice import PracticeOperator

    operator_class = getattr(task, "operator_class", type(task))  # mapped tasks name their class
    return isinstance(operator_class, type) and issubclass(operator_class, PracticeOperator)


def test_pools_file_is_what_airflow_pools_import_reads():
    pools = json.loads((REPO / "include" / "pools.json").read_text())
    assert set(POOLS) <= set(pools)
    for name, pool in pools.items():
        assert isinstance(pool["slots"], int) and pool["slots"] >= 1, name
        assert pool["description"], name


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    """Airflow 3.3's own loader over the dags folder (DagBag(include_examples=...) is gone in 3.3)."""
    import os

    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("home")))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= EXPECTED


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_policy(dagbag, dag_id):
    dag = dagbag.dags[dag_id]  # get_dag() would read the metadata DB
    assert dag.tags and "cherry-sync" in dag.tags
    assert dag.doc_md and dag.doc_md.strip().startswith("###")
    # A runbook page: what to do for each way a run fails, including the ones every DAG shares.
    from cherry_sync.dag_support import COMMON_FAILURES

    assert "#### If it fails" in dag.doc_md
    assert all(f"`{code}`" in dag.doc_md for row in COMMON_FAILURES for code in row.codes)
    # Params reach the operators typed (a boolean, an integer, None), not as text parsed back by hand.
    assert dag.render_template_as_native_obj
    assert dag.dagrun_timeout is not None
    assert all(task.execution_timeout is not None for task in dag.tasks), "a hung task must end by its timeout"
    assert dag.catchup is False
    assert dag.start_date is not None
    pools = json.loads((REPO / "include" / "pools.json").read_text())
    leaves = {task.task_id for task in dag.tasks if not task.downstream_list}
    if dag_id not in HOUSEKEEPING:
        # The contact syncs also announce the practices whose contacts changed (what schedules the smart list).
        announce = {"announce_contact_changes"} if dag_id in ("cherry_backfill", "cherry_refresh") else set()
        assert leaves == {"summarize", "fail_run_if_a_practice_failed", *announce}, (
            "a failed practice must fail the run"
        )
    for task in dag.tasks:
        assert task.owner == "cherry-sync", task.task_id
        if task.task_id == "fail_run_if_a_practice_failed":
            # Only marks the run failed; the practice's own task already notified the operators.
            assert task.trigger_rule == "one_failed" and not task.has_on_failure_callback
            continue
        assert task.retries >= 1, task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.has_on_failure_callback, f"{task.task_id}: failures must notify the operators"
        if _calls_an_api(task):
            assert task.pool in pools, f"{task.task_id} calls an API: it needs a pool from include/pools.json"
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.description, f"param {name} needs a description for the trigger form"
        assert param.schema.get("title"), f"param {name} needs a label (title) for the trigger form"
        assert None not in (param.schema.get("enum") or []), f"param {name}: null in an enum breaks the form"
