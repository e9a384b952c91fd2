"""One whole deployment on this machine: the Airflow stack (tests/e2e/stack.py), both API sandboxes, an SMTP server,
the sync store and the metadata DB. Used by the e2e fixture and by `python -m bench event_latency`.

Services: PostgreSQL at 127.0.0.1:5432 (Airflow's metadata DB and the sync store, two throwaway databases), Redis at
127.0.0.1:6379 (Celery broker, and the API pacer as in docker-compose.yml), both API sandboxes and an SMTP server in
the calling process on loopback.

By default it serves include/practices.yml's three practices, their connections as AIRFLOW_CONN_* variables. With
`practices=N` (the scale benchmark and test) it serves N generated practices instead, `practice-0001`... each its own
Cherry practice and CRM location, and their connections come from a connections file through the product's secrets
backend (`cherry_sync.secrets_backend.ConnectionsFileBackend`, as docker-compose.yml deploys it: no per-practice
variable in any process's environment); `connections="env"` or `"airflow-file"` chooses AIRFLOW_CONN_* variables or
Airflow's own `LocalFilesystemBackend` instead. The latter does not scale past a few dozen connections: every look-up
builds a `Connection` for every entry of the file, and each one registers its password with the secrets masker,
which recompiles its pattern per new secret (quadratic): at 600 connections the first look-up of a task process took
68-142 s of CPU on this machine.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from pydantic import Field

from cherry_sync.store import SyncStore, engine_from_url, store_from_engine
from sandbox.cherry.config import CherrySandboxConfig
from sandbox.cherry.testing import CherrySandbox
from sandbox.crm.testing import CrmSandbox, start_crm_sandbox
from scripts.local_env import _store_conn, connection_env, registry_practices, registry_with_oauth
from tests.e2e.stack import AirflowStack
from tests.fixtures.databases import create_database, drop_database
from tests.fixtures.smtp import SmtpServer, start_smtp_server

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
CRM_WINDOW = 1.0  # time-scaled burst window (100 per 1 s), as in the DAG tests and the demo
OPS_EMAIL = "oncall@aesthetix.example"
CONNECTIONS_FILE = "connections.json"
LOCAL_FILESYSTEM_BACKEND = "airflow.secrets.local_filesystem.LocalFilesystemBackend"
PRODUCT_BACKEND = "cherry_sync.secrets_backend.ConnectionsFileBackend"


class ManyPracticesConfig(CherrySandboxConfig):
    """The Cherry sandbox's settings, allowing more practices than its usual cap of 100 (scale runs)."""

    practices: int = Field(3, ge=1, le=5000)


@dataclass
class Deployment:
    """Everything a test of the deployment touches."""

    stack: AirflowStack
    cherry: CherrySandbox
    crm: CrmSandbox
    smtp: SmtpServer
    store_url: str
    metadata_url: str
    practices: list[dict]  # registry entries, in order (i-th practice = i-th sandbox practice and location)

    @property
    def store(self) -> SyncStore:
        return store_from_engine(engine_from_url(self.store_url))

    def location_id(self, slug: str) -> str:
        index = next(i for i, p in enumerate(self.practices) if p["slug"] == slug)
        return self.crm.locations[index].id

    def cherry_practice(self, slug: str):
        index = next(i for i, p in enumerate(self.practices) if p["slug"] == slug)
        return self.cherry.practices[index]


def generated_registry(cherry: CherrySandbox, crm: CrmSandbox) -> list[dict]:
    """One registry entry per sandbox practice, `practice-0001`...: the i-th paired with the i-th Cherry practice
    and CRM location, in the zone both of them keep (the sandboxes place both in the same metro cycle)."""
    locations = crm.locations
    entries = []
    for number, (practice, location) in enumerate(zip(cherry.practices, locations, strict=True), start=1):
        assert practice.timezone == location.timezone, (number, practice.timezone, location.timezone)
        name = f"practice-{number:04d}"
        entries.append(
            {
                "slug": name,
                "display_name": f"Practice {number:04d}",
                "timezone": practice.timezone,
                "cherry_conn_id": f"cherry_practice_{number:04d}",
                "crm_conn_id": f"crm_practice_{number:04d}",
                "enabled": True,
                "options": {"report_recipients": [f"owner@{name}.example"]},
            }
        )
    return entries


def connections_file(env: dict[str, str], path: Path, backend: str = PRODUCT_BACKEND) -> dict[str, str]:
    """Move AIRFLOW_CONN_* connections (JSON form) into `path`, Airflow's documented connections JSON file
    (`{conn_id: {"conn_type": ..., "host": ..., "password": ..., "extra": {...}}}`); returns the Airflow settings
    that make every component read it through `backend`, before the environment variables."""
    connections = {name.removeprefix("AIRFLOW_CONN_").lower(): json.loads(value) for name, value in env.items()}
    path.write_text(json.dumps(connections, indent=1))
    path.chmod(0o600)
    return {
        "AIRFLOW__SECRETS__BACKEND": backend,
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(path)}),
    }


@contextmanager
def deployed(home: Path, options: dict[str, Any] | None = None, on_stop=None) -> Iterator[Deployment]:
    """Start a deployment with its Airflow home in `home`; stop it and drop its databases on exit. `options`:
    `registry` (entries replacing include/practices.yml), `oauth` (slugs whose CRM location is reached through the
    CRM sandbox's marketplace app instead of a PIT: `cherry_onboard` must exchange a code first), `cherry_extras` (slug -> extras of that practice's Cherry
    connection), `triggerer` (start one), `env` (more Airflow settings), `patients` (per Cherry practice, 40),
    `practices` (N: serve N generated practices instead of the registry), `connections` ("env", "file": the
    product's secrets backend, default with `practices`, or "airflow-file"; see the module docstring).
    `on_stop(stack)` is called once the stack has stopped (to keep its logs)."""
    options = options or {}
    count = options.get("practices")
    metadata_db = create_database()
    store_db = create_database()
    patients = options.get("patients", 40)
    if count:
        cherry = CherrySandbox.start(ManyPracticesConfig(seed=11, practices=count, patients_per_practice=patients))
    else:
        cherry = CherrySandbox.start(seed=11, practices=3, patients_per_practice=patients)
    crm = start_crm_sandbox(locations=count or 3, rate_limits={"burst_limit": 100, "burst_window_seconds": CRM_WINDOW})
    smtp = start_smtp_server()
    stack = None
    try:
        store_url = store_db.render_as_string(hide_password=False)
        metadata_url = metadata_db.render_as_string(hide_password=False)
        info = {
            "cherry": {"practices": [{"api_key": p.api_key} for p in cherry.practices]},
            "crm": {"locations": [{"id": loc.id, "token": loc.token} for loc in crm.locations]},
        }
        sandboxes = SimpleNamespace(info=info, cherry_url=cherry.base_url, crm_url=crm.base_url)
        redis_db = 8 + secrets.randbelow(7)
        registry_path = None
        registry = generated_registry(cherry, crm) if count else options.get("registry")
        if registry:
            home.mkdir(parents=True, exist_ok=True)
            registry_path = home / "practices.yml"
            registry_path.write_text(yaml.safe_dump(registry))
        if options.get("oauth"):
            registry_path = registry_with_oauth(sandboxes, set(options["oauth"]), home / "practices.yml", registry_path)
        cherry_connections = connection_env(sandboxes, registry_path, crm_window=CRM_WINDOW)
        for entry in registry_practices(registry_path):
            extras = options.get("cherry_extras", {}).get(entry["slug"])
            name = f"AIRFLOW_CONN_{entry['cherry_conn_id'].upper()}"
            if extras and name in cherry_connections:
                cherry_connections[name] = json.dumps({**json.loads(cherry_connections[name]), "extra": extras})
        secrets_backend: dict[str, str] = {}
        mode = options.get("connections", "file" if count else "env")
        if mode in ("file", "airflow-file"):
            backend = PRODUCT_BACKEND if mode == "file" else LOCAL_FILESYSTEM_BACKEND
            secrets_backend = connections_file(cherry_connections, home / CONNECTIONS_FILE, backend)
            cherry_connections = {}
        connections = {
            **cherry_connections,
            "AIRFLOW_CONN_CHERRY_SYNC_STORE": json.dumps(_store_conn(store_url)),
            "AIRFLOW_CONN_CHERRY_SYNC_PACER": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
            **smtp.conn_env(ops_email=OPS_EMAIL),
        }
        stack = AirflowStack(
            home=home,
            metadata_url=metadata_url,
            broker_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
            connections=connections,
            extra_env={
                "CHERRY_SYNC_REPORT_DIR": str(home / "reports"),
                "CHERRY_SYNC_EXPORT_DIR": str(home / "exports"),
                "NO_PROXY": "*",
                **({"CHERRY_SYNC_REGISTRY": str(registry_path)} if registry_path else {}),
                **secrets_backend,
                **options.get("env", {}),
            },
        )
        stack.prepare()
        stack.start(workers=2, triggerer=options.get("triggerer", False))
        yield Deployment(stack, cherry, crm, smtp, store_url, metadata_url, registry_practices(registry_path))
    finally:
        if stack is not None:
            stack.stop()
            if on_stop is not None:
                on_stop(stack)
        smtp.controller.stop()
        crm.stop(wait=False)
        cherry.stop(wait=False)
        for db in (metadata_db, store_db):
            drop_database(db)
