"""airflow-init (docker/init.sh) run for real on this machine, with the environment docker-compose.yml gives it.

The environment is docker-compose.yml's, built the way `docker compose` builds it: the airflow-init service's
`environment` (x-airflow-common's plus the admin password), interpolated from .env.example with every secret
replaced by a freshly generated valid value. Then `LOCAL_SWAPS` trades the compose hostnames and container paths
for this machine's: two throwaway PostgreSQL databases (metadata DB and sync store), the local Redis, the
repository's folders and the test's tmp folder. Nothing else changes, so what passes here is what the container
runs (minus Docker itself).

One metadata database serves the whole module: the successful run migrates it (and runs again, to prove
init.sh idempotent), then each broken setting runs init.sh against the same, already migrated database, where
it must fail with a message naming the problem and never a secret's value.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from cherry_sync.dag_support import POOLS
from cherry_sync.store.migrate import VERSION_TABLE, head_revision
from tests.deploy.test_compose import (
    COMPOSE_FILE,
    CONNECTIONS_EXAMPLE,
    ENV_EXAMPLE,
    REPO,
    SANDBOX_HOSTS,
    environment,
    interpolate,
    parse_env_file,
    services,
)
from tests.fixtures.databases import create_database, drop_database

pytestmark = [pytest.mark.postgres, pytest.mark.airflow]

INIT_SCRIPT = REPO / "docker" / "init.sh"
VENV_BIN = Path(sys.executable).parent
RUN_TIMEOUT = 240  # seconds; a fresh `airflow db migrate` takes ~20-40 s

# .env.example's change-me values, replaced by what its own comments say to generate.
GENERATED_SECRETS = {
    "AIRFLOW_FERNET_KEY": lambda: Fernet.generate_key().decode(),
    "AIRFLOW_JWT_SECRET": lambda: secrets.token_urlsafe(48),
    "AIRFLOW_API_SECRET_KEY": lambda: secrets.token_urlsafe(48),
    "AIRFLOW_DB_PASSWORD": lambda: secrets.token_hex(24),
    "SYNC_STORE_DB_PASSWORD": lambda: secrets.token_hex(24),
    "CHERRY_SYNC_ADMIN_PASSWORD": lambda: secrets.token_hex(24),
}


def dot_env() -> dict[str, str]:
    """.env as an operator would write it: .env.example with every secret generated."""
    values = parse_env_file(ENV_EXAMPLE)
    assert {name for name, value in values.items() if "change-me" in value} == set(GENERATED_SECRETS), (
        ".env.example's placeholders changed: update GENERATED_SECRETS"
    )
    return values | {name: generate() for name, generate in GENERATED_SECRETS.items()}


def compose_init_env(dotenv: dict[str, str]) -> dict[str, str]:
    """The airflow-init container's environment as docker compose would set it (container hostnames and paths)."""
    service = services(yaml.safe_load(COMPOSE_FILE.read_text()))["airflow-init"]
    return {name: interpolate(value, dotenv) for name, value in environment(service).items()}


def local_swaps(dotenv: dict[str, str], metadata_db: URL, store_db: URL, tmp_path: Path) -> dict[str, str]:
    """Compose text -> this machine's: every compose hostname and container path init.sh touches.

    The local server trusts its clients, so the generated passwords stay in the URLs (and are never printed).
    The sandboxes, Mailpit and the api-server keep their compose hosts: init.sh only checks that the
    connections to them are defined, it never calls them.
    """
    db_password = dotenv["AIRFLOW_DB_PASSWORD"]
    return {
        # Metadata DB (also the Celery result backend): service postgres, user airflow.
        f"airflow:{db_password}@postgres:5432/airflow": f"postgres:{db_password}@127.0.0.1:5432/{metadata_db.database}",
        # Sync store connection: service sync-store-db, user and database cherry_sync.
        '"host": "sync-store-db", "port": 5432, "login": "cherry_sync"': (
            '"host": "127.0.0.1", "port": 5432, "login": "postgres"'
        ),
        '"schema": "cherry_sync"': f'"schema": "{store_db.database}"',
        # Celery broker and the API pacer connection: service redis.
        "redis://redis:6379": "redis://127.0.0.1:6379",
        '"host": "redis"': '"host": "127.0.0.1"',
        # Bind mounts and volumes.
        "/opt/airflow/dags": str(REPO / "dags"),
        "/opt/airflow/include": str(REPO / "include"),
        "/opt/airflow/auth": str(tmp_path / "auth"),
        # The practices' connections file (./secrets, mounted read-only): the example's copy the test writes.
        "/opt/airflow/secrets": str(tmp_path / "secrets"),
        "/opt/cherry-sync/output": str(tmp_path / "output"),
    }


def localise(env: dict[str, str], swaps: dict[str, str]) -> dict[str, str]:
    unused = [old for old in swaps if not any(old in value for value in env.values())]
    assert not unused, f"docker-compose.yml no longer contains {unused}: update local_swaps()"
    local = {}
    for name, value in env.items():
        for old, new in swaps.items():
            value = value.replace(old, new)
        local[name] = value
    leftovers = [name for name, value in local.items() if "/opt/" in value or "@postgres:" in value]
    assert not leftovers, f"container paths or hosts left in {leftovers}"
    return local


def base_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment without any Airflow or Cherry Sync setting, as a fresh container has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "CHERRY_SYNC_"))}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow-home")
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


class InitSetup:
    """The module's databases, generated .env and the airflow-init environment translated to this machine."""

    def __init__(self, tmp_path: Path, metadata_db: URL, store_db: URL):
        self.tmp_path = tmp_path
        self.metadata_db = metadata_db
        self.store_db = store_db
        self.dotenv = dot_env()
        (tmp_path / "auth").mkdir()
        (tmp_path / "output").mkdir()
        # What an operator does for the sandboxes: cp secrets/connections.example.json secrets/connections.json.
        self.connections = json.loads(CONNECTIONS_EXAMPLE.read_text())
        write_connections(tmp_path / "secrets" / "connections.json", self.connections)

    def with_connections(self, env: dict[str, str], connections: dict, name: str) -> dict[str, str]:
        """`env` reading another connections file (written 0600 like the generator's) instead of the default."""
        path = self.tmp_path / "variants" / name / "connections.json"
        write_connections(path, connections)
        return env | {"AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(path)})}

    def env(self, dotenv: dict[str, str] | None = None) -> dict[str, str]:
        dotenv = self.dotenv if dotenv is None else dotenv
        compose_env = localise(
            compose_init_env(dotenv), local_swaps(dotenv, self.metadata_db, self.store_db, self.tmp_path)
        )
        env = base_env(self.tmp_path) | compose_env
        # The image installs cherry_sync; here the project's plugins folder stands in for it.
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "plugins"), str(REPO)])
        env["CHERRY_SYNC_INCLUDE_DIR"] = str(REPO / "include")  # init.sh's pools.json (compose: /opt/airflow/include)
        return env

    @property
    def secrets(self) -> dict[str, str]:
        return {name: self.dotenv[name] for name in GENERATED_SECRETS}

    @property
    def passwords_file(self) -> Path:
        return self.tmp_path / "auth" / "simple_auth_manager_passwords.json"


def write_connections(path: Path, connections: dict) -> None:
    from cherry_sync.connections_file import write_private

    write_private(path, connections)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)


def run_init(env: dict[str, str]) -> subprocess.CompletedProcess:
    return run(["bash", str(INIT_SCRIPT)], env)


def output(result: subprocess.CompletedProcess) -> str:
    return f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.fixture(scope="module")
def setup(postgres_server, tmp_path_factory) -> Iterator[InitSetup]:
    metadata_db, store_db = create_database(), create_database()
    try:
        yield InitSetup(tmp_path_factory.mktemp("airflow-init"), metadata_db, store_db)
    finally:
        drop_database(metadata_db)
        drop_database(store_db)


def store_revision(url: URL) -> str | None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one_or_none()
    finally:
        engine.dispose()


def pools_in_metadata_db(env: dict[str, str]) -> dict[str, int]:
    result = run(["airflow", "pools", "list", "-o", "json"], env)
    assert result.returncode == 0, f"airflow pools list failed (metadata DB not migrated?)\n{output(result)}"
    return {pool["pool"]: int(pool["slots"]) for pool in json.loads(result.stdout)}


def metadata_db_revision(url: URL) -> str | None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    finally:
        engine.dispose()


def never_printed(setup: InitSetup) -> dict[str, str]:
    """What must never show in airflow-init's output: the generated secrets and the practices' keys and tokens."""
    api_credentials = {f"{conn_id} password": conn["password"] for conn_id, conn in setup.connections.items()}
    return setup.secrets | api_credentials


def assert_no_secret_printed(result: subprocess.CompletedProcess, values: dict[str, str]) -> None:
    printed = result.stdout + result.stderr
    leaked = sorted(name for name, value in values.items() if value in printed)
    assert not leaked, f"airflow-init printed the value of {leaked}"


# --- a correct .env -----------------------------------------------------------------------------------------


def test_init_sets_up_a_fresh_deployment_and_is_idempotent(setup):
    env = setup.env()
    pools_file = json.loads((REPO / "include" / "pools.json").read_text())
    first = run_init(env)
    assert first.returncode == 0, f"airflow-init failed on a correct .env\n{output(first)}"
    assert first.stdout.rstrip().endswith("== airflow-init done"), output(first)
    assert_no_secret_printed(first, never_printed(setup))

    # Metadata DB migrated, with the pools the DAGs use.
    assert metadata_db_revision(setup.metadata_db), "the metadata DB has no Alembic revision: not migrated"
    pools = pools_in_metadata_db(env)
    assert {name: pools.get(name) for name in pools_file} == {
        name: spec["slots"] for name, spec in pools_file.items()
    }, "include/pools.json's pools (and slots) must be in the metadata DB"
    assert set(POOLS) <= set(pools)

    # The sync store at the newest schema this code ships.
    assert store_revision(setup.store_db) == head_revision(), "the sync store is not at the newest migration"
    assert f"sync store at revision {head_revision()}" in first.stdout

    # The api-server's password file: the admin password, readable by its owner only.
    passwords = setup.passwords_file
    assert passwords.is_file(), f"no {passwords.name} written"
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600, f"{passwords.name} is {oct(passwords.stat().st_mode)}"
    assert json.loads(passwords.read_text()) == {"admin": setup.dotenv["CHERRY_SYNC_ADMIN_PASSWORD"]}

    # Every `docker compose up` runs it again: nothing may fail on a deployment that is already set up.
    second = run_init(env)
    assert second.returncode == 0, f"airflow-init is not idempotent: the second run failed\n{output(second)}"
    assert_no_secret_printed(second, never_printed(setup))
    assert store_revision(setup.store_db) == head_revision()
    assert pools_in_metadata_db(env) == pools, "the second run changed the pools"
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    assert json.loads(passwords.read_text()) == {"admin": setup.dotenv["CHERRY_SYNC_ADMIN_PASSWORD"]}


# --- a broken .env or registry: init.sh stops with one line naming the problem -------------------------------


def leave_placeholder(name: str):
    """.env keeps .env.example's change-me value for `name`."""

    def broken(setup: InitSetup, tmp_path: Path) -> dict[str, str]:
        return setup.env(setup.dotenv | {name: parse_env_file(ENV_EXAMPLE)[name]})

    return broken


def invalid_fernet_key(setup: InitSetup, tmp_path: Path) -> dict[str, str]:
    # url-safe base64, but 24 bytes instead of 32: the classic copy-paste or wrong-generator mistake.
    return setup.env(setup.dotenv | {"AIRFLOW_FERNET_KEY": secrets.token_urlsafe(24)})


def missing_crm_connection(setup: InitSetup, tmp_path: Path) -> dict[str, str]:
    # A practice added to the registry whose CRM connection was not added to the connections file.
    connections = {k: v for k, v in setup.connections.items() if k != "crm_lumen_medspa"}
    return setup.with_connections(setup.env(), connections, "missing-crm")


def missing_connections_file(setup: InitSetup, tmp_path: Path) -> dict[str, str]:
    kwargs = {"connections_file_path": str(tmp_path / "secrets" / "connections.json")}  # never written
    return setup.env() | {"AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(kwargs)}


def broken_connections_file(setup: InitSetup, tmp_path: Path) -> dict[str, str]:
    env = setup.with_connections(setup.env(), setup.connections, "broken-json")
    path = Path(json.loads(env["AIRFLOW__SECRETS__BACKEND_KWARGS"])["connections_file_path"])
    path.write_text(path.read_text().replace('},\n  "crm_glow_aesthetics"', '}\n  "crm_glow_aesthetics"', 1))
    return env


def broken_registry(setup: InitSetup, tmp_path: Path) -> dict[str, str]:
    registry = tmp_path / "practices.yml"
    shutil.copy(REPO / "include" / "practices.yml", registry)
    original = registry.read_text()
    registry.write_text(original.replace("timezone: America/Chicago", "timezone: Mars/Olympus_Mons", 1))
    assert registry.read_text() != original, "include/practices.yml changed: pick another entry to break"
    return setup.env() | {"CHERRY_SYNC_REGISTRY": str(registry)}


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        pytest.param(
            leave_placeholder("AIRFLOW_JWT_SECRET"),
            "AIRFLOW__API_AUTH__JWT_SECRET still holds a .env.example placeholder",
            id="jwt-secret-placeholder",
        ),
        pytest.param(
            leave_placeholder("SYNC_STORE_DB_PASSWORD"),
            "AIRFLOW_CONN_CHERRY_SYNC_STORE still holds a .env.example placeholder",
            id="store-password-placeholder",
        ),
        pytest.param(
            invalid_fernet_key,
            "AIRFLOW__CORE__FERNET_KEY is not a valid Fernet key",
            id="invalid-fernet-key",
        ),
        pytest.param(
            missing_crm_connection,
            "connection 'crm_lumen_medspa' is not defined (add it to the connections file ",
            id="missing-practice-connection",
        ),
        pytest.param(
            missing_connections_file,
            "connections.json does not exist: write secrets/connections.json",
            id="missing-connections-file",
        ),
        pytest.param(
            broken_connections_file,
            "connections.json cannot be read: Expecting ',' delimiter",
            id="broken-connections-file",
        ),
        pytest.param(
            broken_registry,
            "practices.yml: harbor-dermatology: timezone: unknown IANA timezone 'Mars/Olympus_Mons'",
            id="broken-registry",
        ),
    ],
)
def test_init_refuses_a_broken_setting_naming_it(setup, tmp_path, break_it, message):
    env = break_it(setup, tmp_path)
    result = run_init(env)
    assert result.returncode != 0, f"airflow-init accepted a broken setting\n{output(result)}"
    assert "== airflow-init done" not in result.stdout, output(result)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], (
        f"expected exactly one error naming the problem ({message!r})\n{output(result)}"
    )
    # Neither the generated secrets nor the broken value itself (e.g. the bad Fernet key) may be printed.
    broken_values = {
        name: env[name] for name in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET") if name in env
    }
    assert_no_secret_printed(result, never_printed(setup) | broken_values)


# --- time zones: the preflight asks Cherry and the CRM (the compose sandboxes, started here on loopback) ----------


@pytest.fixture(scope="module")
def compose_sandboxes() -> Iterator[dict[str, str]]:
    """The `sandboxes` service as docker-compose.yml starts it (same seeds, so .env.example's credentials work),
    on free loopback ports: compose URL -> local URL."""
    from sandbox.__main__ import build_parser
    from sandbox.cherry import cli as cherry_cli
    from sandbox.cherry.app import create_app as create_cherry
    from sandbox.common.server import start_in_thread
    from sandbox.crm import cli as crm_cli
    from sandbox.crm.app import create_app as create_crm

    args = build_parser().parse_args(services(yaml.safe_load(COMPOSE_FILE.read_text()))["sandboxes"]["command"])
    cherry = start_in_thread(create_cherry(cherry_cli.config_from_args(args, "cherry-")))
    crm = start_in_thread(create_crm(crm_cli.config_from_args(args)))
    try:
        yield {SANDBOX_HOSTS["cherry"]: cherry.base_url, SANDBOX_HOSTS["crm"]: crm.base_url}
    finally:
        cherry.stop()
        crm.stop()


def test_init_checks_that_each_practice_has_one_time_zone(setup, tmp_path, compose_sandboxes):
    connections = json.loads(json.dumps(setup.connections))
    for conn in connections.values():
        conn["host"] = compose_sandboxes.get(conn["host"], conn["host"])
    env = setup.with_connections(setup.env(), connections, "local-sandboxes")
    agreed = run_init(env)
    assert agreed.returncode == 0, f"airflow-init failed with agreeing zones\n{output(agreed)}"
    assert "time zones: practice harbor-dermatology: time zones agree (America/Chicago)" in agreed.stdout

    registry = tmp_path / "practices.yml"
    original = (REPO / "include" / "practices.yml").read_text()
    registry.write_text(original.replace("timezone: America/Chicago", "timezone: America/Denver", 1))
    result = run_init(env | {"CHERRY_SYNC_REGISTRY": str(registry)})

    assert result.returncode != 0, f"airflow-init accepted disagreeing time zones\n{output(result)}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: practice harbor-dermatology: time zones disagree: the registry says America/Denver, Cherry keeps the "
        "practice in America/Chicago and the CRM location is in America/Chicago; set the registry's timezone to "
        "America/Chicago, or pin the registry's zone with `timezone_pinned: true`"
    ], output(result)
    assert_no_secret_printed(result, never_printed(setup))

    registry.write_text(
        registry.read_text().replace("timezone: America/Denver", "timezone: America/Denver\n  timezone_pinned: true")
    )
    pinned = run_init(env | {"CHERRY_SYNC_REGISTRY": str(registry)})
    assert pinned.returncode == 0, output(pinned)
    assert "pinned, syncing in America/Denver" in pinned.stdout
