"""The onboarding world: a Cherry and a CRM sandbox on loopback, the sync store, and every connection the report
reads given the way Airflow reads them in production (`AIRFLOW_CONN_*` variables, JSON).

Cherry practice i and CRM location i belong together. Which practices the registry names, which connections
exist and where the marketplace app is installed is up to each test (`OnboardWorld` helpers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from cherry_sync.registry import Registry, load_registry
from sandbox.cherry.testing import CherrySandbox
from sandbox.crm.testing import CrmSandbox


def conn_env(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def store_connection(url: str) -> dict[str, Any]:
    """The `cherry_sync_store` connection for a store URL (SQLite file or PostgreSQL database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return {"conn_type": "sqlite", "host": parsed.database}
    return {
        "conn_type": "postgres",
        "host": parsed.host,
        "port": parsed.port or 5432,
        "login": parsed.username,
        "password": parsed.password,
        "schema": parsed.database,
    }


@dataclass
class OnboardWorld:
    cherry: CherrySandbox
    crm: CrmSandbox
    store_url: str
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    token_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    entries: list[dict] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)  # every credential handed out: none may show in a report

    def __post_init__(self) -> None:
        self.set_conn("cherry_sync_store", store_connection(self.store_url))
        # Pacing shared through a file of the test's own: not a developer's pacer, and not the test's PostgreSQL
        # database, which is dropped at the end of the test while the cached pacer would still be polling it.
        self.monkeypatch.setenv("CHERRY_SYNC_PACER_URL", f"sqlite:///{self.tmp_path / 'pacing.db'}")
        self.monkeypatch.delenv(conn_env("cherry_sync_pacer"), raising=False)

    def set_conn(self, conn_id: str, conn: dict[str, Any]) -> None:
        if conn.get("password"):
            self.secrets.add(conn["password"])
        self.monkeypatch.setenv(conn_env(conn_id), json.dumps(conn))

    def drop_conn(self, conn_id: str) -> None:
        self.monkeypatch.delenv(conn_env(conn_id), raising=False)

    def location(self, index: int) -> str:
        return self.crm.locations[index].id

    # -- the app ---------------------------------------------------------------------------------

    def app_connections(self) -> dict:
        app = self.crm.oauth_app()
        self.secrets.add(app["client_secret"])
        self.set_conn(
            "cherry_sync_highlevel_app",
            {
                "conn_type": "http",
                "host": self.crm.base_url,
                "login": app["client_id"],
                "password": app["client_secret"],
                "extra": {
                    "company_id": app["company_id"],
                    "app_id": app["app_id"],
                    "redirect_uri": app["redirect_uri"],
                },
            },
        )
        self.set_conn("cherry_sync_token_key", {"conn_type": "generic", "password": self.token_key})
        return app

    def install(self, *indexes: int) -> str:
        """Install the app on these locations; the authorization code the redirect would carry."""
        return self.crm.oauth_install([self.location(i) for i in indexes])

    # -- practices -------------------------------------------------------------------------------

    def practice(self, slug: str, index: int, *, auth: str, api_key: str | None = None, **entry: Any) -> dict:
        """Registry entry `slug` for Cherry practice `index` and CRM location `index`, with its connections."""
        info = self.cherry.practices[index]
        key = api_key or info.api_key
        self.set_conn(f"cherry_{slug}", {"conn_type": "http", "host": self.cherry.base_url, "password": key})
        row = {"slug": slug, "display_name": f"Practice {slug}", "timezone": info.timezone}
        row["cherry_conn_id"] = f"cherry_{slug}"
        if auth == "oauth":
            row |= {"crm_auth": "oauth", "crm_location_id": self.location(index)}
        else:
            location = self.crm.locations[index]
            self.set_conn(
                f"crm_{slug}",
                {
                    "conn_type": "http",
                    "host": self.crm.base_url,
                    "password": location.token,
                    "extra": {"location_id": location.id},
                },
            )
            row["crm_conn_id"] = f"crm_{slug}"
        row |= entry
        self.entries.append(row)
        return row

    def registry_path(self) -> Path:
        path = self.tmp_path / "practices.yml"
        path.write_text(yaml.safe_dump(self.entries, sort_keys=False))
        self.monkeypatch.setenv("CHERRY_SYNC_REGISTRY", str(path))
        return path

    def registry(self) -> Registry:
        return load_registry(self.registry_path())


@pytest.fixture
def world(cherry_sandbox_factory, crm_sandbox_factory, store_url, tmp_path, monkeypatch) -> OnboardWorld:
    """4 Cherry practices and 5 CRM locations, the store on SQLite and on PostgreSQL."""
    return OnboardWorld(
        cherry=cherry_sandbox_factory(practices=4, patients_per_practice=2),
        crm=crm_sandbox_factory(locations=5),
        store_url=store_url,
        tmp_path=tmp_path,
        monkeypatch=monkeypatch,
    )
