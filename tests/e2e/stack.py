"""A real Airflow deployment on this machine, from the venv: the shape of docker-compose.yml without Docker.

`AirflowStack` runs, as separate processes sharing one AIRFLOW_HOME: the api-server, the scheduler, the
dag-processor and N Celery workers, on CeleryExecutor with the local Redis as broker and a throwaway PostgreSQL
database as Airflow's metadata DB. Every component gets the same JWT secret, Fernet key and AIRFLOW_CONN_*
connections, as the compose file gives them. Each component's stdout/stderr goes to `<home>/components/<name>.log`
(the canary scan reads them). `ApiClient` talks to Airflow's public REST API (v2) with a JWT, as a user's script
would.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
from cryptography.fernet import Fernet

from scripts.local_env import POOLS_FILE, REPO, airflow, airflow_env, free_port

TERMINAL = {"success", "failed"}
# A task instance's states once it is done; any other state (None included: never scheduled) is work left behind.
FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}
PAGE_LIMIT = 100  # Airflow's default `[api] maximum_page_limit`: a larger `limit` is cut to it
AIRFLOW_BIN = str(Path(sys.executable).with_name("airflow"))


class ApiClient:
    """Airflow's public REST API (/api/v2) as user `admin`, token from the simple auth manager's /auth/token."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.trust_env = False
        response = self.http.post(
            f"{self.base_url}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        response.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base_url}/api/v2{path}", timeout=60, **kwargs)
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text[:2000]}"
        return response.json() if response.content else None

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def collection(self, path: str, key: str, params: dict | None = None) -> list[dict]:
        """Every item of a paged REST collection (`key` of each page), however many pages: the API returns at most
        `[api] maximum_page_limit` (100) items per page, whatever `limit` asks for."""
        items: list[dict] = []
        while True:
            page = self.call("GET", path, params={**(params or {}), "limit": PAGE_LIMIT, "offset": len(items)})
            items += page[key]
            if not page[key] or len(items) >= page["total_entries"]:
                return items

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.collection(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self.collection(f"/dags/{dag_id}/dagRuns", "dag_runs")

    def xcom_entries(self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None) -> list[dict]:
        """The XCom entries (keys, not values) of a task: of every map index, or of one."""
        params = {} if map_index is None else {"map_index": map_index}
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries"
        return self.collection(path, "xcom_entries", params)

    def xcom_value(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1):
        """One XCom's value as stored (the API returns a JSON value as a string: parsed here)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        value = self.call("GET", path, params={"map_index": map_index})["value"]
        return json.loads(value) if isinstance(value, str) else value

    def pools(self) -> dict[str, dict]:
        return {p["name"]: p for p in self.collection("/pools", "pools")}

    def import_errors(self) -> list[dict]:
        return self.collection("/importErrors", "import_errors")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600, on_poll: Callable | None = None) -> dict:
        """Poll until the run is success or failed; returns the run. Fails the test on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if run["state"] in TERMINAL:
                return run
            if on_poll:
                on_poll()
            if time.monotonic() > deadline:
                states = {(t["task_id"], t.get("map_index")): t["state"] for t in self.task_instances(dag_id, run_id)}
                raise AssertionError(f"{dag_id} {run_id} still {run['state']} after {timeout:.0f}s: {states}")
            time.sleep(2)


@dataclass
class Component:
    name: str
    process: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill_hard(self) -> list[int]:
        """SIGKILL the component and every process it started (as a machine or OOM kill would)."""
        try:
            tree = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        pids = [self.process.pid, *(p.pid for p in tree)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(30)
        return pids

    def stop(self) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the component and every process it started: each live process's
        own time plus what it collected from the children it reaped (a finished task process counts in its parent's
        `children_*` once waited for, and so on up the tree). The difference of two readings is the work done in
        between; a process that died unreaped, or was re-parented out of the tree, is missed."""
        try:
            root = psutil.Process(self.process.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:  # ended since the listing: its time is now its parent's children_*
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    def runs_process(self, pid: int) -> bool:
        """Whether `pid` is this component or one of the processes it started."""
        try:
            tree = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return False
        return pid == self.process.pid or any(p.pid == pid for p in tree)


@dataclass
class AirflowStack:
    """Airflow 3 on CeleryExecutor from this venv; see the module docstring."""

    home: Path
    metadata_url: str  # postgresql+psycopg2://...
    broker_url: str  # redis://127.0.0.1:6379/N
    connections: dict[str, str]  # AIRFLOW_CONN_* -> JSON
    extra_env: dict[str, str] = field(default_factory=dict)
    username: str = "admin"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    components: dict[str, Component] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    # The triggerer's log server: its own port, so that two stacks on one machine do not collide on 8794.
    trigger_log_port: int = field(default_factory=free_port)
    queue: str = field(default_factory=lambda: f"cherry_e2e_{secrets.token_hex(3)}")

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def component_logs(self) -> Path:
        return self.home / "components"

    def env(self) -> dict[str, str]:
        if not hasattr(self, "_secrets"):
            # One JWT secret, Fernet key and API secret key shared by every component (the compose file's .env).
            self._secrets = {
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            }
        passwords = self.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({self.username: self.password}))
        base = airflow_env(self.home)
        base.update(
            {
                **self._secrets,
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url,
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.metadata_url.replace("+psycopg2", ""),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__PARALLELISM": "16",
                # Every run is triggered through the REST API: no cron or Asset-triggered runs at moments the
                # test does not choose (the refresh's hourly run would otherwise sync every practice). A module that
                # tests the schedule itself turns it back on (DEPLOYMENT_OPTIONS["env"]).
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                # Quick enough for a test: notice new DAG files and dead workers within seconds, not minutes.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "15",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
                **self.connections,
                **self.extra_env,
            }
        )
        return base

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Migrate the metadata DB and create the product's pools (what the compose file's airflow-init does)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.component_logs.mkdir(exist_ok=True)
        env = self.env()
        airflow(env, "db", "migrate", timeout=600)
        airflow(env, "pools", "import", str(POOLS_FILE))

    def start_component(self, name: str, *args: str) -> Component:
        log_path = self.component_logs / f"{name}.log"
        log = log_path.open("ab")
        process = subprocess.Popen(
            [AIRFLOW_BIN, *args],
            env=self.env(),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() takes its children with it
        )
        component = Component(name, process, log_path)
        self.components[name] = component
        return component

    def start_worker(self, name: str) -> Component:
        return self.start_component(
            name, "celery", "worker", "--queues", self.queue, "--celery-hostname", f"{name}@%h", "--skip-serve-logs"
        )

    def start(self, workers: int = 2, triggerer: bool = False) -> None:
        self.start_component("api-server", "api-server", "--port", str(self.api_port), "--host", "127.0.0.1")
        self.start_component("scheduler", "scheduler")
        self.start_component("dag-processor", "dag-processor")
        if triggerer:
            self.start_component("triggerer", "triggerer")
        for index in range(1, workers + 1):
            self.start_worker(f"worker{index}")
        self.wait_until_healthy()

    def wait_until_healthy(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while True:
            dead = [c.name for c in self.components.values() if not c.alive()]
            assert not dead, f"component(s) exited: {dead}; logs in {self.component_logs}"
            try:
                health = requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
                if health.get("scheduler", {}).get("status") == "healthy" and health.get("dag_processor", {}).get(
                    "status"
                ) in ("healthy", None):
                    return
            except (requests.RequestException, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Airflow not healthy after {timeout:.0f}s; logs in {self.component_logs}")
            time.sleep(2)

    def client(self) -> ApiClient:
        return ApiClient(self.api_url, self.username, self.password)

    def wait_for_dags(self, client: ApiClient, dag_ids: set[str], timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while True:
            found = {d["dag_id"] for d in client.collection("/dags", "dags")}
            if dag_ids <= found:
                return
            if time.monotonic() > deadline:
                errors = client.import_errors()
                raise AssertionError(f"DAGs not parsed after {timeout:.0f}s: missing {dag_ids - found}; {errors}")
            time.sleep(2)

    def stop(self) -> None:
        for component in reversed(list(self.components.values())):
            component.stop()


def assert_every_task_instance(
    client: ApiClient,
    dag_id: str,
    run_id: str,
    expected: dict[str, str | set[str]],
    *,
    others: set[str] | frozenset[str] = frozenset(),
) -> list[dict]:
    """Check every task instance of a run, read page by page, and return them all.

    `expected` maps a task (its id, or the last part of an id inside a task group, `practice.sync_patients` ->
    `sync_patients`) to the state, or states, its instances may end in. Fails when an instance is in another state,
    when one is not finished (scheduled, queued, running, up for retry, never scheduled: left behind), when a task of
    `expected` has no instance at all, or when the pages overlap. A task not in `expected` may only end in `others`
    (empty: no such task may exist), so that a task added to the DAG is noticed, not silently allowed.
    """
    tis = client.task_instances(dag_id, run_id)
    keys = [(t["task_id"], t.get("map_index")) for t in tis]
    assert len(keys) == len(set(keys)), f"{dag_id} {run_id}: the pages repeat task instances"
    allowed = {task: {states} if isinstance(states, str) else set(states) for task, states in expected.items()}
    wrong, seen = [], set()
    for ti in tis:
        task = ti["task_id"] if ti["task_id"] in allowed else ti["task_id"].rsplit(".", 1)[-1]
        seen.add(task)
        states = allowed.get(task, set(others))
        if ti["state"] not in FINISHED or ti["state"] not in states:
            label = ti.get("rendered_map_index") or ti.get("map_index")
            wrong.append(f"{ti['task_id']}[{label}]={ti['state']} (allowed: {sorted(states) or 'none'})")
    assert not wrong, f"{dag_id} {run_id}: {len(wrong)} of {len(tis)} task instances: " + "; ".join(wrong[:30])
    missing = set(allowed) - seen
    assert not missing, f"{dag_id} {run_id}: no task instance of {sorted(missing)}"
    return tis
