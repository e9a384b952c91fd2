"""Helpers for DAG tests whose runs may end failed: run a DAG, then read what Airflow recorded per task.

`airflow dags test` ends the DagRun failed as soon as one mapped task fails, so `DagEnv.run` (which insists on
success) cannot be used there. `run_dag` runs the DAG the same way, accepts any outcome and returns the run's
state, run id, output and every task instance's state from the metadata DB (SQLite under AIRFLOW_HOME, as the
DAG tests configure it). Task logs are read from the files Airflow wrote.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.local_env import airflow

_FINISHED = re.compile(r"DagRun Finished: .*?run_id=(?P<run_id>[^,\s]+).*?state=(?P<state>\w+)")


@dataclass(frozen=True)
class TaskState:
    task_id: str
    map_index: int
    rendered_map_index: str | None
    state: str | None
    try_number: int


@dataclass
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    output: str
    returncode: int
    tasks: list[TaskState]
    seconds: float

    def states(self, task_id: str) -> dict[int, str | None]:
        """map index -> state for one task (suffix match: `sync_patients` finds `practice.sync_patients`)."""
        return {t.map_index: t.state for t in self.tasks if t.task_id == task_id or t.task_id.endswith("." + task_id)}


def run_dag(env, dag_id: str, *, timeout: float = 600, **conf) -> DagRunResult:
    """`airflow dags test` the DAG in `env` (a DagEnv); any final state is accepted and returned."""
    started = time.monotonic()
    result = airflow(env.env, "dags", "test", dag_id, "-c", json.dumps(conf), check=False, timeout=timeout)
    seconds = time.monotonic() - started
    out = result.stdout or ""
    found = list(_FINISHED.finditer(out))
    assert found, f"no 'DagRun Finished' line in the output of {dag_id}:\n{out[-6000:]}"
    run_id, state = found[-1].group("run_id"), found[-1].group("state")
    saved = env.home / "runs" / f"{dag_id}-{run_id.replace(':', '-')}.log"  # for a person reading a failure
    saved.parent.mkdir(exist_ok=True)
    saved.write_text(out)
    return DagRunResult(dag_id, run_id, state, out, result.returncode, task_states(env.home, dag_id, run_id), seconds)


def task_states(home: Path, dag_id: str, run_id: str) -> list[TaskState]:
    """Every task instance of one DAG run, from Airflow's metadata DB."""
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, map_index, rendered_map_index, state, try_number FROM task_instance "
            "WHERE dag_id = ? AND run_id = ? ORDER BY task_id, map_index",
            (dag_id, run_id),
        ).fetchall()
    return [TaskState(*row) for row in rows]


def xcom_values(home: Path, dag_id: str, run_id: str) -> list[str]:
    """Every XCom value (as stored, JSON text) of one DAG run."""
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT value FROM xcom WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)).fetchall()
    return [str(value) for (value,) in rows]


def task_log(home: Path, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The text of a task instance's log files (every try), or '' when Airflow wrote none."""
    base = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    texts = []
    for path in sorted(base.glob(f"task_id={task_id}/**/*")) if base.exists() else ():
        if path.is_file() and (map_index < 0 or f"map_index={map_index}" in str(path)):
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


_LOCAL_SETTINGS = '''
"""Test-only cluster policy: Airflow's retries as the DAGs declare them, with their delays time-scaled."""
from datetime import timedelta


def task_policy(task):
    if task.retries:
        task.retry_delay = timedelta(seconds={delay!r})
        task.max_retry_delay = timedelta(seconds={delay!r} * 2)
    if {timeout!r} is not None and task.execution_timeout:
        task.execution_timeout = timedelta(seconds={timeout!r})
    if {retries!r} is not None:
        task.retries = {retries!r}
'''


def scaled_retries(
    env, folder: Path, delay_seconds: float = 1.0, *, timeout_seconds: float | None = None, retries: int | None = None
) -> None:
    """Keep every task's retry count (the DAGs' `retries: 3`) but scale its delay down to `delay_seconds`, through
    an `airflow_local_settings.task_policy` on the Airflow processes' PYTHONPATH. `airflow dags test` then retries a
    failed task as the scheduler would, in seconds instead of minutes (as the CRM's burst window is time-scaled).
    `timeout_seconds` scales the tasks' `execution_timeout` down the same way; `retries` replaces the count."""
    from scripts.local_env import REPO

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "airflow_local_settings.py").write_text(
        _LOCAL_SETTINGS.format(delay=float(delay_seconds), timeout=timeout_seconds, retries=retries)
    )
    env.extra["PYTHONPATH"] = os.pathsep.join([str(folder), str(REPO / "plugins"), str(REPO)])
