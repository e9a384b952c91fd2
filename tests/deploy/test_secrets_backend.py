"""Practice credentials from Airflow's secrets backend, the way docker-compose.yml configures it.

The connections file is written by `python -m cherry_sync.connections_file` from a CSV on standard input, then read
by real Airflow processes configured only through AIRFLOW__SECRETS__BACKEND / AIRFLOW__SECRETS__BACKEND_KWARGS (no
AIRFLOW_CONN_* for any practice): a task-style lookup (the SDK's BaseHook and the worker's backend chain), the
`airflow connections get` CLI, the registry check (`python -m cherry_sync.registry --zones`) and airflow-init's
connection check naming the one practice whose connection the file lacks, and `airflow connections import` of the same file into a throwaway metadata DB.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cherry_sync.connections_file import COLUMNS
from scripts.local_env import airflow, airflow_env
from tests.deploy.test_compose import COMPOSE_FILE, REGISTRY_FILE, services

pytestmark = pytest.mark.airflow

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]
BACKEND = "cherry_sync.secrets_backend.ConnectionsFileBackend"  # .env.example's default
TIMEOUT = 300


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[dict]:
    """The compose `sandboxes` service's seeds on loopback: its demo keys, tokens and locations, and URLs."""
    from sandbox.__main__ import build_parser, describe
    from sandbox.cherry import cli as cherry_cli
    from sandbox.cherry.app import create_app as create_cherry
    from sandbox.common.server import start_in_thread
    from sandbox.crm import cli as crm_cli
    from sandbox.crm.app import create_app as create_crm

    args = build_parser().parse_args(services(yaml.safe_load(COMPOSE_FILE.read_text()))["sandboxes"]["command"])
    cherry_app, crm_app = (
        create_cherry(cherry_cli.config_from_args(args, "cherry-")),
        create_crm(crm_cli.config_from_args(args)),
    )
    cherry, crm = start_in_thread(cherry_app), start_in_thread(crm_app)
    try:
        yield describe(cherry_app, cherry.base_url, crm_app, crm.base_url) | {
            "cherry_url": cherry.base_url,
            "crm_url": crm.base_url,
        }
    finally:
        cherry.stop()
        crm.stop()


def csv_rows(info: dict, *, skip_crm_of: str | None = None) -> str:
    """What an operator has: one CSV row per registry practice (the i-th takes the i-th sandbox practice)."""
    lines = [",".join(COLUMNS)]
    practices = yaml.safe_load(REGISTRY_FILE.read_text())
    for index, entry in enumerate(practices):
        location = info["crm"]["locations"][index]
        token, location_id = (location["token"], location["id"]) if entry["slug"] != skip_crm_of else ("", "")
        lines.append(f"{entry['slug']},{info['cherry']['practices'][index]['api_key']},{token},{location_id}")
    return "\n".join(lines) + "\n"


def generate(path: Path, rows: str, info: dict, *extra: str) -> subprocess.CompletedProcess:
    args = ["--output", str(path), "--registry", str(REGISTRY_FILE)]
    args += ["--cherry-base-url", info["cherry_url"], "--crm-base-url", info["crm_url"], *extra]
    return subprocess.run(
        [PYTHON, "-m", "cherry_sync.connections_file", *args],
        input=rows,
        env=clean_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def clean_env(**extra: str) -> dict[str, str]:
    """No AIRFLOW_CONN_* and no secrets backend of this process: only what the test sets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__SECRETS__"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "plugins"), str(REPO)])
    return env | extra


def backend_env(home: Path, connections_file: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in airflow_env(home).items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__SECRETS__"))}
    return env | {
        "AIRFLOW__SECRETS__BACKEND": BACKEND,
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(connections_file)}),
        **extra,
    }


@pytest.fixture(scope="module")
def connections_file(sandboxes, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "connections.json"
    result = generate(path, csv_rows(sandboxes), sandboxes)
    assert result.returncode == 0, result.stderr
    return path


# --- the generator ------------------------------------------------------------------------------------------


def test_the_generator_writes_every_practice_owner_only_and_prints_no_key(connections_file, sandboxes):
    assert stat.S_IMODE(connections_file.stat().st_mode) == 0o600, oct(connections_file.stat().st_mode)
    written = json.loads(connections_file.read_text())
    assert written["crm_glow_aesthetics"] == {
        "conn_type": "aesthetix_crm",
        "host": sandboxes["crm_url"],
        "password": sandboxes["crm"]["locations"][0]["token"],
        "extra": {"location_id": sandboxes["crm"]["locations"][0]["id"]},
    }
    assert written["cherry_glow_aesthetics"] == {
        "conn_type": "cherry",
        "host": sandboxes["cherry_url"],
        "password": sandboxes["cherry"]["practices"][0]["api_key"],
    }
    assert len(written) == 6, sorted(written)


def test_the_generator_merges_names_missing_practices_and_refuses_bad_rows(sandboxes, tmp_path):
    path = tmp_path / "connections.json"
    partial = generate(path, csv_rows(sandboxes, skip_crm_of="lumen-medspa"), sandboxes)
    # A PIT practice without its token is a bad row, not a silently missing connection.
    assert partial.returncode == 1 and "lumen-medspa: crm_token and crm_location_id are both needed" in partial.stderr
    assert not path.exists()

    one = "\n".join(csv_rows(sandboxes).splitlines()[:2]) + "\n"  # the header and glow-aesthetics only
    first = generate(path, one, sandboxes)
    assert first.returncode == 0, first.stderr
    assert "missing: enabled practice lumen-medspa (cherry_lumen_medspa, crm_lumen_medspa)" in first.stdout
    rest = csv_rows(sandboxes).splitlines()
    merged = generate(path, "\n".join([rest[0], *rest[2:]]) + "\n", sandboxes, "--merge")
    assert merged.returncode == 0 and "missing" not in merged.stdout, merged.stdout
    assert len(json.loads(path.read_text())) == 6, "--merge kept glow-aesthetics and added the two others"

    unknown = generate(path, f"{','.join(COLUMNS)}\nno-such-practice,k,t,l\n", sandboxes)
    assert unknown.returncode == 1 and "'no-such-practice' is not a practice of the registry" in unknown.stderr
    for result in (partial, first, merged, unknown):
        printed = result.stdout + result.stderr
        assert not any(p["api_key"] in printed for p in sandboxes["cherry"]["practices"]) and not any(
            loc["token"] in printed for loc in sandboxes["crm"]["locations"]
        ), "a key was printed"


# --- (a) a worker-style lookup and the CLI resolve a practice from the file ------------------------------------

LOOKUP = """
import json
from airflow.sdk import BaseHook
from airflow.sdk.configuration import ensure_secrets_loaded
from airflow.sdk.execution_time.secrets import DEFAULT_SECRETS_SEARCH_PATH_WORKERS

# The chain a task runner on a worker builds ([workers] secrets_backend unset: [secrets] backend comes first).
chain = [type(b).__name__ for b in ensure_secrets_loaded(default_backends=DEFAULT_SECRETS_SEARCH_PATH_WORKERS)]
found = {}
for conn_id in ("cherry_glow_aesthetics", "crm_glow_aesthetics"):
    conn = BaseHook.get_connection(conn_id)
    found["class"] = f"{type(conn).__module__}.{type(conn).__name__}"
    found[conn_id] = {"conn_type": conn.conn_type, "host": conn.host, "password": conn.password,
                      "extra": conn.extra_dejson}
try:
    BaseHook.get_connection("crm_no_such_practice")
    missing = "found"
except Exception as exc:
    missing = type(exc).__name__
print(json.dumps({"chain": chain, "found": found, "missing": missing}))
"""


def test_a_task_style_lookup_resolves_practice_connections_from_the_file(connections_file, sandboxes, tmp_path):
    env = backend_env(tmp_path / "home", connections_file)
    assert not any(name.startswith("AIRFLOW_CONN_C") for name in env), "no practice connection in the environment"
    result = subprocess.run(
        [PYTHON, "-c", LOOKUP], env=env, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["chain"] == ["ConnectionsFileBackend", "EnvironmentVariablesBackend", "ExecutionAPISecretsBackend"]
    assert answer["found"]["crm_glow_aesthetics"] == {
        "conn_type": "aesthetix_crm",
        "host": sandboxes["crm_url"],
        "password": sandboxes["crm"]["locations"][0]["token"],
        "extra": {"location_id": sandboxes["crm"]["locations"][0]["id"]},
    }
    assert answer["found"]["cherry_glow_aesthetics"]["password"] == sandboxes["cherry"]["practices"][0]["api_key"]
    assert answer["missing"] == "AirflowNotFoundException"
    # The task SDK's Connection, not Airflow's ORM model: nothing of the metadata DB's machinery in a task.
    assert answer["found"]["class"] == "airflow.sdk.definitions.connection.Connection"


def test_airflow_connections_get_reads_the_file(connections_file, sandboxes, tmp_path):
    env = backend_env(tmp_path / "home", connections_file)
    result = airflow(env, "connections", "get", "crm_lumen_medspa", "-o", "json", check=False, timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout
    (conn,) = json.loads(result.stdout[result.stdout.index("[") :])
    assert conn["conn_type"] == "aesthetix_crm" and conn["host"] == sandboxes["crm_url"]
    extra = conn["extra_dejson"]
    extra = json.loads(extra) if isinstance(extra, str) else extra
    assert extra == {"location_id": sandboxes["crm"]["locations"][1]["id"]}


# --- (b) the registry check names the one practice whose connection the file lacks ------------------------------


def test_the_registry_check_names_the_practice_missing_from_the_file(sandboxes, tmp_path):
    connections_file = tmp_path / "connections.json"
    full = generate(connections_file, csv_rows(sandboxes), sandboxes)
    assert full.returncode == 0, full.stderr
    connections = json.loads(connections_file.read_text())
    del connections["crm_lumen_medspa"]  # a practice added to the registry, its CRM token never added to the file
    from cherry_sync.connections_file import write_private

    write_private(connections_file, connections)
    env = backend_env(tmp_path / "home", connections_file)
    result = subprocess.run(
        [PYTHON, "-m", "cherry_sync.registry", "--zones", str(REGISTRY_FILE)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if line.startswith("error")]
    assert len(errors) == 1, result.stdout
    assert "lumen-medspa" in errors[0] and "crm_lumen_medspa" in errors[0], errors
    # The two practices the file does hold were read through the backend and checked against the sandboxes.
    assert (
        "glow-aesthetics: time zones agree" in result.stdout and "harbor-dermatology: time zones agree" in result.stdout
    )


# --- (c) the same file imported into the metadata DB --------------------------------------------------------------


def test_airflow_connections_import_accepts_the_same_file(connections_file, sandboxes, tmp_path):
    env = {k: v for k, v in airflow_env(tmp_path / "home").items() if not k.startswith("AIRFLOW__SECRETS__")}
    airflow(env, "db", "migrate", timeout=TIMEOUT)
    imported = airflow(env, "connections", "import", str(connections_file), check=False, timeout=TIMEOUT)
    assert imported.returncode == 0, imported.stdout
    listed = airflow(env, "connections", "list", "-o", "json", check=False, timeout=TIMEOUT)
    assert listed.returncode == 0, listed.stdout
    in_db = {c["conn_id"] for c in json.loads(listed.stdout[listed.stdout.index("[") :])}
    assert set(json.loads(connections_file.read_text())) <= in_db, "every connection of the file is in the metadata DB"
    # Read back from the metadata DB (no backend configured): the same fields.
    got = airflow(env, "connections", "get", "crm_harbor_dermatology", "-o", "json", check=False, timeout=TIMEOUT)
    assert got.returncode == 0, got.stdout
    (conn,) = json.loads(got.stdout[got.stdout.index("[") :])
    assert conn["host"] == sandboxes["crm_url"] and conn["conn_type"] == "aesthetix_crm"
    # Importing again refuses to overwrite unless asked: the operator re-keys with --overwrite.
    again = airflow(env, "connections", "import", "--overwrite", str(connections_file), check=False, timeout=TIMEOUT)
    assert again.returncode == 0, again.stdout


# --- the default backend class: Airflow's LocalFilesystemBackend, parsed once per change ---------------------------


def test_the_file_backend_matches_airflows_and_sees_an_edited_file(connections_file, tmp_path):
    from airflow.sdk.definitions.connection import Connection
    from airflow.secrets.local_filesystem import LocalFilesystemBackend

    from cherry_sync.connections_file import write_private
    from cherry_sync.secrets_backend import ConnectionsFileBackend

    path = tmp_path / "connections.json"
    connections = json.loads(connections_file.read_text())
    write_private(path, connections)
    ours, airflows = (
        ConnectionsFileBackend(connections_file_path=str(path)),
        LocalFilesystemBackend(connections_file_path=str(path)),
    )
    sdk = ConnectionsFileBackend(connections_file_path=str(path))
    sdk._set_connection_class(Connection)  # as Airflow's loader does in a task or trigger process
    for conn_id in connections:
        expected = airflows.get_connection(conn_id).get_uri()
        assert ours.get_connection(conn_id).get_uri() == expected, conn_id
        assert isinstance(sdk.get_connection(conn_id), Connection) and sdk.get_connection(conn_id).get_uri() == expected
    assert ours.get_connection("crm_no_such_practice") is None

    # A re-keyed practice is seen on the next lookup, without restarting anything.
    connections["cherry_glow_aesthetics"]["password"] = "ck_rekeyed_0000000000"
    write_private(path, connections)
    assert ours.get_connection("cherry_glow_aesthetics").password == "ck_rekeyed_0000000000"


PREFLIGHT_CONNECTIONS = """
import json, sys
sys.path.insert(0, "docker")
import preflight
from cherry_sync.registry import load_registry

problems, checked = preflight.connection_problems(load_registry())
print(json.dumps({"backend": preflight.secrets_backend_problems(), "problems": problems, "checked": checked}))
"""


def test_the_preflight_names_the_practice_missing_from_the_file(connections_file, tmp_path):
    """airflow-init's connection check through the backend (tests/deploy/test_init.py runs the whole init.sh)."""
    from cherry_sync.connections_file import write_private

    path = tmp_path / "connections.json"
    write_private(
        path, {k: v for k, v in json.loads(connections_file.read_text()).items() if k != "cherry_lumen_medspa"}
    )
    shared = {
        "AIRFLOW_CONN_CHERRY_SYNC_STORE": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "store.db")}),
        "AIRFLOW_CONN_CHERRY_SYNC_SMTP": json.dumps({"conn_type": "smtp", "host": "h", "extra": {"from_email": "a@b"}}),
        "CHERRY_SYNC_REGISTRY": str(REGISTRY_FILE),
    }
    result = subprocess.run(
        [PYTHON, "-c", PREFLIGHT_CONNECTIONS],
        env=backend_env(tmp_path / "home", path, **shared),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["backend"] == []
    assert answer["problems"] == [
        f"connection 'cherry_lumen_medspa' is not defined (add it to the connections file {path}, "
        "or set AIRFLOW_CONN_CHERRY_LUMEN_MEDSPA)"
    ]
    assert {"crm_lumen_medspa", "cherry_glow_aesthetics", "crm_harbor_dermatology"} <= set(answer["checked"])
