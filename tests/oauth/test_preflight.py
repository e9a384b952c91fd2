"""The deploy preflight on OAuth practices: no per-practice CRM connection, but the app and token key connections
(with valid Fernet keys), once for all of them; never a secret in what it prints."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cherry_sync.registry import parse_entries

PREFLIGHT = Path(__file__).resolve().parents[2] / "docker" / "preflight.py"


@pytest.fixture(scope="module")
def preflight():
    spec = importlib.util.spec_from_file_location("preflight_under_test", PREFLIGHT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def registry(*auths: str):
    entries = []
    for n, auth in enumerate(auths):
        entry = {"slug": f"p{n}", "display_name": "P", "timezone": "America/Chicago", "cherry_conn_id": f"cherry_{n}"}
        entry |= {"crm_auth": "oauth", "crm_location_id": f"loc{n}"} if auth == "oauth" else {"crm_conn_id": f"crm_{n}"}
        entries.append(entry)
    return parse_entries(entries)


@pytest.fixture
def base_env(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CHERRY_SYNC_STORE", "sqlite://%2Ftmp%2Fx.db")
    monkeypatch.setenv(
        "AIRFLOW_CONN_CHERRY_SYNC_SMTP", json.dumps({"conn_type": "smtp", "host": "h", "extra": {"from_email": "a@b"}})
    )
    for n in range(3):
        monkeypatch.setenv(
            f"AIRFLOW_CONN_CHERRY_{n}", json.dumps({"conn_type": "cherry", "host": "h", "password": "k"})
        )
    return monkeypatch


def test_oauth_practices_need_the_app_and_key_connections_not_their_own(preflight, base_env):
    problems, _ = preflight.connection_problems(registry("oauth", "oauth"))
    assert problems == [
        "connection 'cherry_sync_highlevel_app' is not defined (set AIRFLOW_CONN_CHERRY_SYNC_HIGHLEVEL_APP)",
        "connection 'cherry_sync_token_key' is not defined (set AIRFLOW_CONN_CHERRY_SYNC_TOKEN_KEY)",
    ]
    secret, key = "client-secret-value-123", Fernet.generate_key().decode()
    base_env.setenv(
        "AIRFLOW_CONN_CHERRY_SYNC_HIGHLEVEL_APP",
        json.dumps(
            {
                "conn_type": "aesthetix_crm",
                "host": "https://services.leadconnectorhq.com",
                "login": "client-id",
                "password": secret,
                "extra": {"company_id": "c1", "app_id": "a1"},
            }
        ),
    )
    base_env.setenv("AIRFLOW_CONN_CHERRY_SYNC_TOKEN_KEY", json.dumps({"conn_type": "generic", "password": key}))
    problems, checked = preflight.connection_problems(registry("oauth", "oauth"))
    assert problems == []
    assert {"cherry_sync_highlevel_app", "cherry_sync_token_key"} <= set(checked)
    assert not any(name.startswith("crm_") for name in checked)


def test_a_bad_token_key_is_named_not_shown(preflight, base_env):
    base_env.setenv(
        "AIRFLOW_CONN_CHERRY_SYNC_HIGHLEVEL_APP",
        json.dumps({"conn_type": "aesthetix_crm", "host": "https://h", "password": "s", "extra": {"company_id": "c"}}),
    )
    bad = f"{Fernet.generate_key().decode()},not-a-fernet-key"
    base_env.setenv("AIRFLOW_CONN_CHERRY_SYNC_TOKEN_KEY", json.dumps({"conn_type": "generic", "password": bad}))
    problems, _ = preflight.connection_problems(registry("oauth"))
    assert "connection 'cherry_sync_highlevel_app' needs the 'app_id' extra" in problems
    assert "connection 'cherry_sync_highlevel_app' has no login (the marketplace app's client id)" in problems
    assert any("key #2 is not a Fernet key" in p for p in problems)
    assert not any("not-a-fernet-key" in p for p in problems)


def test_pit_practices_are_checked_as_before(preflight, base_env):
    problems, _ = preflight.connection_problems(registry("pit"))
    assert problems == ["connection 'crm_0' is not defined (set AIRFLOW_CONN_CRM_0)"]
