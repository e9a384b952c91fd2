"""The `cherry_sync_pacer` connection: a redis connection (as docker-compose.yml defines it) selects Redis pacing."""

from __future__ import annotations

import json

import pytest

from cherry_sync import runtime
from cherry_sync.hooks.pacing import RedisPacer, SQLitePacer


@pytest.fixture(autouse=True)
def _fresh_pacers(monkeypatch):
    monkeypatch.delenv("CHERRY_SYNC_PACER_URL", raising=False)
    runtime._pacer_for.cache_clear()
    yield
    runtime._pacer_for.cache_clear()


def test_redis_pacer_connection_uri(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CHERRY_SYNC_PACER", "redis://127.0.0.1:6379/5")
    assert runtime._conn_url("cherry_sync_pacer") == "redis://127.0.0.1:6379/5"
    assert isinstance(runtime.shared_pacer(), RedisPacer)


def test_redis_pacer_connection_json_with_password_and_db_extra(monkeypatch):
    conn = {"conn_type": "redis", "host": "redis", "port": 6380, "password": "p@ss/word", "extra": {"db": 2}}
    monkeypatch.setenv("AIRFLOW_CONN_CHERRY_SYNC_PACER", json.dumps(conn))
    assert runtime._conn_url("cherry_sync_pacer") == "redis://:p%40ss%2Fword@redis:6380/2"


def test_without_a_pacer_connection_a_sqlite_store_paces_beside_its_file(monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_CHERRY_SYNC_PACER", raising=False)
    store = tmp_path / "store.db"
    monkeypatch.setenv("AIRFLOW_CONN_CHERRY_SYNC_STORE", json.dumps({"conn_type": "sqlite", "host": str(store)}))
    assert isinstance(runtime.shared_pacer(), SQLitePacer)
