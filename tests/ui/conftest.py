"""Airflow's UI in a real browser: `airflow standalone` as `make airflow` starts it, and headless Chromium.

`airflow_ui` (session scope: one stack for every test that needs it) starts the sandboxes on loopback (`start_sandboxes`), Airflow's metadata DB and the
sync store on SQLite under a temporary folder, the api-server on a free loopback port with the simple auth
manager's user admin / admin (a passwords file, as scripts/demo.py writes it) and a user `nobody` with no role (who
may log in but read nothing, DAG runs included), then waits until the
api-server answers and the DAGs are parsed. As in `make airflow`, the metadata DB is prepared with
`migrate_metadata` (which creates the DAGs' pools) and the execution API URL follows the api-server's port
(tasks report to it). `connections_ui` (module scope) is the api-server alone, run from a venv where the project's
wheel is pip-installed, with both sandboxes in-process (the connection form's test). `browser` is a Selenium
session on Debian's `chromium` through Debian's `chromedriver`. Without them the tests skip with the reason, except
under CI=true, where they fail. Tests that run DAGs for real (test_ops_page.py) run last: the trigger form's test
expects a stack on which nothing has run yet.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.cherry.testing import CherrySandbox
from sandbox.common.stats import crm_writes
from sandbox.crm.testing import CrmSandbox, start_crm_sandbox
from scripts.local_env import (
    PYTHON,
    REPO,
    Sandboxes,
    airflow_env,
    connection_env,
    free_port,
    migrate_metadata,
    start_sandboxes,
)
from tests.deploy.installed import InstalledProject, install_project

ARTIFACTS = REPO / "test-artifacts" / "ui"
CRM_WINDOW = 1.0  # time-scaled CRM burst window, as in `make airflow`
STARTUP_TIMEOUT = 300  # seconds: api-server up and DAGs parsed, on a slow, busy machine
USER, PASSWORD = "admin", "admin"
# A user with no role: the simple auth manager lets them log in and authorizes nothing (no role can lack DAG-run read
# alone: VIEWER reads everything).
NO_ROLE_USER, NO_ROLE_PASSWORD = "nobody", "nobody-pass"


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def browser_tools() -> tuple[str, str]:
    """Debian's chromium and chromedriver; skip without them (fail under CI=true)."""
    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver")
    if chromium and chromedriver:
        return chromium, chromedriver
    missing = " and ".join(n for n, p in (("chromium", chromium), ("chromedriver", chromedriver)) if not p)
    reason = f"{missing} not installed (Debian: apt-get install -y chromium chromium-driver)"
    if _ci():
        pytest.fail(f"{reason}; CI=true: the browser test must run, not skip", pytrace=False)
    pytest.skip(reason)


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0, log: Path | None = None):
    """Poll `check` until it returns something truthy; fail with `what` (and the log's tail) on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (requests.RequestException, ValueError, KeyError) as exc:
            last_error, result = exc, None
        if result:
            return result
        time.sleep(interval)
    tail = log.read_text(errors="replace")[-6000:] if log and log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error!r})\n{tail}")


@dataclass
class AirflowUI:
    """A running `airflow standalone` with the sandboxes behind it."""

    base_url: str
    process: subprocess.Popen
    sandboxes: Sandboxes
    log_path: Path
    token: str = ""

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, f"{self.base_url}/api/v2{path}", headers=headers, timeout=30, **kwargs)

    def dag_runs(self, dag_id: str) -> list[dict]:
        response = self.api("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "-run_after"})
        response.raise_for_status()
        return response.json()["dag_runs"]

    def crm_writes(self) -> int:
        """Writing requests the CRM sandbox received (creates, updates, deletes; searches are reads)."""
        stats = requests.get(f"{self.sandboxes.crm_url}/_sandbox/stats", timeout=10).json()
        return crm_writes(stats["endpoints"])

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def _token(base_url: str) -> str | None:
    response = requests.post(f"{base_url}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=10)
    return response.json()["access_token"] if response.status_code in (200, 201) else None


def _stop(process: subprocess.Popen) -> None:
    """Stop `airflow standalone` and the components it started (its own process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(45)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture(scope="session")
def airflow_ui(tmp_path_factory) -> Iterator[AirflowUI]:
    browser_tools()  # skip (or fail under CI) before starting anything
    work = tmp_path_factory.mktemp("airflow-ui")
    sandboxes = start_sandboxes(work, patients=20, crm_burst=100, crm_window=CRM_WINDOW)
    process = None
    try:
        home = work / "airflow"
        home.mkdir()
        passwords = home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({USER: PASSWORD, NO_ROLE_USER: NO_ROLE_PASSWORD}))
        port = free_port()
        env = airflow_env(
            home,
            store_url=f"sqlite:///{work / 'cherry_sync_store.db'}",
            extra={
                **connection_env(sandboxes, crm_window=CRM_WINDOW),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin,{NO_ROLE_USER}:",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                # Task processes report to the api-server's execution API: on this port, not the default 8080.
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
                "AIRFLOW__CORE__PARALLELISM": "4",  # a 2-core machine
            },
        )
        migrate_metadata(env)  # also creates the DAGs' pools: tasks in a missing pool are never scheduled
        log_path = work / "standalone.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [str(Path(PYTHON).with_name("airflow")), "standalone"],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so teardown stops every component
            )
        ui = AirflowUI(f"http://127.0.0.1:{port}", process, sandboxes, log_path)

        def healthy() -> bool:
            if process.poll() is not None:
                pytest.fail(f"airflow standalone exited with {process.returncode}\n{ui.log_tail()}")
            return requests.get(f"{ui.base_url}/api/v2/monitor/health", timeout=5).status_code == 200

        wait_for("the api-server's health endpoint", healthy, STARTUP_TIMEOUT, log=log_path)
        ui.token = wait_for("a JWT from POST /auth/token", lambda: _token(ui.base_url), 60, log=log_path)
        wait_for(
            "cherry_backfill to be parsed (GET /api/v2/dags/cherry_backfill)",
            lambda: ui.api("GET", "/dags/cherry_backfill").status_code == 200,
            STARTUP_TIMEOUT,
            log=log_path,
        )
        yield ui
    finally:
        if process is not None:
            _stop(process)
        sandboxes.stop()


@pytest.fixture
def browser(tmp_path) -> Iterator[Any]:
    """Headless Chromium driven by Selenium through Debian's chromedriver (no download, no Selenium Manager)."""
    chromium, chromedriver = browser_tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1300",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(120)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class ConnectionsUI:
    """Airflow's api-server running from a venv that has the cherry-sync wheel installed, and both sandboxes."""

    base_url: str
    process: subprocess.Popen
    installed: InstalledProject
    cherry: CherrySandbox
    crm: CrmSandbox
    log_path: Path

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@pytest.fixture(scope="module")
def connections_ui(tmp_path_factory) -> Iterator[ConnectionsUI]:
    """The api-server as a deployment that installed the package runs it (the connection form's test).

    The project is built as a wheel and pip-installed into a fresh venv (tests/deploy/installed.py); the api-server
    runs from that venv, outside the repository, with empty DAGs and plugins folders: the connection types can only
    come from the installed distribution's entry point. Connection testing is enabled, as a deployment that wants
    the form's Test button sets it.
    """
    browser_tools()
    work = tmp_path_factory.mktemp("connections-ui")
    installed = install_project(work / "package")
    cherry = CherrySandbox.start(seed=5, practices=1, patients_per_practice=3)
    crm = start_crm_sandbox(locations=1)
    process = None
    try:
        home = work / "airflow"
        for folder in ("dags", "plugins"):
            (home / folder).mkdir(parents=True)
        passwords = home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({USER: PASSWORD}))
        port = free_port()
        env = installed.env(
            {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "CHERRY_SYNC_"))},
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
            AIRFLOW__CORE__PLUGINS_FOLDER=str(home / "plugins"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
            AIRFLOW__CORE__TEST_CONNECTION="Enabled",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__LOGGING__COLORED_CONSOLE_LOG="False",
            NO_PROXY="*",
        )
        migrate = subprocess.run(
            [str(installed.python), "-m", "airflow", "db", "migrate"],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        log_path = work / "api-server.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [str(installed.python), "-m", "airflow", "api-server", "--port", str(port), "--host", "127.0.0.1"],
                env=env,
                cwd=work,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ui = ConnectionsUI(f"http://127.0.0.1:{port}", process, installed, cherry, crm, log_path)

        def healthy() -> bool:
            if process.poll() is not None:
                pytest.fail(f"the api-server exited with {process.returncode}\n{ui.log_tail()}")
            return requests.get(f"{ui.base_url}/api/v2/monitor/health", timeout=5).status_code == 200

        wait_for("the api-server's health endpoint", healthy, STARTUP_TIMEOUT, log=log_path)
        yield ui
    finally:
        if process is not None:
            _stop(process)
        cherry.stop(wait=False)
        crm.stop(wait=False)
