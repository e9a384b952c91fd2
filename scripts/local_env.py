"""The embedded local environment: sandboxes on loopback, Airflow on SQLite, connections as AIRFLOW_CONN_*.

Used by `make demo`, `make airflow` and the DAG tests, so all three run the product the same way:
- `start_sandboxes()` runs `python -m sandbox` as a child process and reads back its URLs and credentials;
- `airflow_env()` builds the environment an Airflow process needs: AIRFLOW_HOME, a SQLite metadata DB, the
  dags/plugins folders, the sync store connection and one Cherry + one CRM connection per registry practice
  (the i-th practice of the registry gets the i-th sandbox practice and location).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Sandboxes:
    """A running `python -m sandbox` child process and what it printed about itself."""

    process: subprocess.Popen
    info: dict
    log_path: Path

    @property
    def cherry_url(self) -> str:
        return self.info["cherry"]["base_url"]

    @property
    def crm_url(self) -> str:
        return self.info["crm"]["base_url"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_sandboxes(
    workdir: Path,
    *,
    practices: int = 3,
    patients: int = 200,
    seed: int = 7,
    crm_burst: int = 100,
    crm_window: float = 10.0,
    extra_args: list[str] | None = None,
    cherry_port: int = 0,
    crm_port: int = 0,
) -> Sandboxes:
    """Start both sandboxes on free (or given) loopback ports and wait until they describe themselves."""
    workdir.mkdir(parents=True, exist_ok=True)
    describe = workdir / "sandboxes.json"
    describe.unlink(missing_ok=True)
    log_path = workdir / "sandboxes.log"
    args = [
        PYTHON,
        "-m",
        "sandbox",
        "--describe-json",
        str(describe),
        "--cherry-port",
        str(cherry_port or free_port()),
        "--crm-port",
        str(crm_port or free_port()),
        "--cherry-seed",
        str(seed),
        "--cherry-practices",
        str(practices),
        "--cherry-patients",
        str(patients),
        "--crm-locations",
        str(practices),
        "--crm-burst-limit",
        str(crm_burst),
        "--crm-burst-window",
        str(crm_window),
        *(extra_args or []),
    ]
    log = log_path.open("w")
    process = subprocess.Popen(
        args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    deadline = time.monotonic() + 120
    while not describe.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"sandboxes did not start; see {log_path}")
        time.sleep(0.1)
    return Sandboxes(process, json.loads(describe.read_text()), log_path)


def registry_practices(path: Path | None = None) -> list[dict]:
    path = path or REPO / "include" / "practices.yml"
    return [e for e in yaml.safe_load(path.read_text()) or [] if isinstance(e, dict)]


def connection_env(
    sandboxes: Sandboxes, registry_path: Path | None = None, *, crm_window: float = 10.0, crm_burst: int = 95
) -> dict[str, str]:
    """AIRFLOW_CONN_* for every registry practice, pointing at the sandboxes (JSON connection form).

    A `crm_auth: pit` entry gets its own CRM connection (the location's PIT); when any entry is `crm_auth: oauth`,
    the CRM sandbox's marketplace app connection and a fresh token key are added once, for all of them.
    """
    env: dict[str, str] = {}
    cherry_practices = sandboxes.info["cherry"]["practices"]
    locations = sandboxes.info["crm"]["locations"]
    pacing = {"burst_limit": crm_burst, "burst_window_seconds": crm_window}
    for index, entry in enumerate(registry_practices(registry_path)):
        if index >= len(cherry_practices) or index >= len(locations):
            break
        cherry = {"conn_type": "http", "host": sandboxes.cherry_url, "password": cherry_practices[index]["api_key"]}
        env[f"AIRFLOW_CONN_{entry['cherry_conn_id'].upper()}"] = json.dumps(cherry)
        if entry.get("crm_auth") == "oauth":
            env.update(oauth_app_env(sandboxes, pacing))
            continue
        crm = {
            "conn_type": "http",
            "host": sandboxes.crm_url,
            "password": locations[index]["token"],
            "extra": {"location_id": locations[index]["id"], **pacing},
        }
        env[f"AIRFLOW_CONN_{entry['crm_conn_id'].upper()}"] = json.dumps(crm)
    return env


def oauth_app_env(sandboxes: Sandboxes, pacing: dict | None = None) -> dict[str, str]:
    """The two connections every `crm_auth: oauth` practice shares: the CRM sandbox's marketplace app
    (`cherry_sync_highlevel_app`) and the key that encrypts the stored tokens (`cherry_sync_token_key`)."""
    from cryptography.fernet import Fernet

    app = requests.get(f"{sandboxes.crm_url}/_sandbox/oauth/app", timeout=10).json()
    connection = {
        "conn_type": "aesthetix_crm",
        "host": sandboxes.crm_url,
        "login": app["client_id"],
        "password": app["client_secret"],
        "extra": {"company_id": app["company_id"], "app_id": app["app_id"], **(pacing or {})},
    }
    key = sandboxes.info.setdefault("token_key", Fernet.generate_key().decode())
    return {
        "AIRFLOW_CONN_CHERRY_SYNC_HIGHLEVEL_APP": json.dumps(connection),
        "AIRFLOW_CONN_CHERRY_SYNC_TOKEN_KEY": json.dumps({"conn_type": "generic", "password": key}),
    }


def registry_with_oauth(sandboxes: Sandboxes, slugs: set[str], target: Path, source: Path | None = None) -> Path:
    """A copy of the registry in which the practices `slugs` reach their CRM location through the marketplace app
    (`crm_auth: oauth` + the paired sandbox location's id) instead of a PIT connection."""
    entries = yaml.safe_load((source or REPO / "include" / "practices.yml").read_text()) or []
    locations = sandboxes.info["crm"]["locations"]
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("slug") in slugs and index < len(locations):
            entry.pop("crm_conn_id", None)
            entry.update(crm_auth="oauth", crm_location_id=locations[index]["id"])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(entries, sort_keys=False))
    return target


def install_marketplace_app(sandboxes: Sandboxes, location_ids: list[str]) -> str:
    """The agency admin's consent in the CRM sandbox: the app installed on `location_ids`; returns the single-use
    authorization code that `cherry_onboard` exchanges for the agency's tokens."""
    answer = requests.post(
        f"{sandboxes.crm_url}/_sandbox/oauth/install",
        json={"locations": location_ids, "user_type": "Company"},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()["code"]


def airflow_env(home: Path, *, store_url: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for an Airflow process on the embedded default (SQLite metadata DB under `home`)."""
    home.mkdir(parents=True, exist_ok=True)
    store = store_url or f"sqlite:///{(home / 'cherry_sync_store.db').resolve()}"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home.resolve()),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{(home / 'airflow.db').resolve()}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        "AIRFLOW_CONN_CHERRY_SYNC_STORE": json.dumps(_store_conn(store)),
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)]),
        # `airflow standalone` starts its components as `airflow ...`: this venv's bin must come first.
        "PATH": os.pathsep.join([str(Path(PYTHON).parent), os.environ.get("PATH", "")]),
        "NO_PROXY": "*",
    }
    env.update(extra or {})
    return env


def _store_conn(url: str) -> dict:
    """The sync store's Airflow connection (JSON form) for a SQLAlchemy URL."""
    if url.startswith("sqlite:///"):
        return {"conn_type": "sqlite", "host": url.removeprefix("sqlite:///")}
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return {
        "conn_type": "postgres",
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "login": parsed.username,
        "password": parsed.password,
        "schema": parsed.database,
    }


def airflow(
    env: dict[str, str], *args: str, check: bool = True, capture: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run the `airflow` CLI of this venv."""
    return subprocess.run(
        [str(Path(PYTHON).with_name("airflow")), *args],
        env=env,
        cwd=REPO,
        check=check,
        text=True,
        timeout=timeout,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
    )


POOLS_FILE = REPO / "include" / "pools.json"


def migrate_metadata(env: dict[str, str]) -> None:
    """Create or upgrade Airflow's metadata DB and create the product's pools (idempotent).

    The scheduler never schedules a task whose pool does not exist, so the pools are part of set-up.
    """
    airflow(env, "db", "migrate")
    airflow(env, "pools", "import", str(POOLS_FILE))
