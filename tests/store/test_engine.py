"""Engines: SQLite pragmas and folder creation, caching, Airflow connections, run-time store lookup."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.sdk import Connection
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from cherry_sync.store import SyncStore, engine_from_connection, engine_from_url, get_store, url_from_connection
from cherry_sync.store.engine import dispose_engine
from cherry_sync.store.migrate import current_revision, head_revision
from cherry_sync.store.schema import practices


def test_sqlite_engine_settings(tmp_path):
    path = tmp_path / "deep" / "folder" / "store.db"
    engine = engine_from_url(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert path.parent.is_dir()
    finally:
        dispose_engine(engine.url)


def test_engines_are_cached_per_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    try:
        assert engine_from_url(url) is engine_from_url(make_url(url))
        assert engine_from_url(url) is not engine_from_url(f"sqlite:///{tmp_path / 'b.db'}")
    finally:
        dispose_engine(url)
        dispose_engine(f"sqlite:///{tmp_path / 'b.db'}")


def test_unsupported_backend_is_refused():
    with pytest.raises(ValueError, match="sqlite or postgresql"):
        engine_from_url("mysql://user@localhost/db")


@pytest.mark.parametrize(
    "make_conn",
    [
        pytest.param(lambda path: Connection.from_uri(f"sqlite:///{path}", conn_id="store"), id="uri"),
        pytest.param(lambda path: Connection(conn_id="store", conn_type="sqlite", host=str(path)), id="host"),
    ],
)
def test_sqlite_airflow_connection(tmp_path, make_conn):
    path = tmp_path / "store.db"
    conn = make_conn(path)

    engine = engine_from_connection(conn)
    try:
        assert engine.url.database == str(path)
        with engine.connect() as db:
            assert db.execute(text("SELECT 1")).scalar() == 1
        assert path.exists()
    finally:
        dispose_engine(engine.url)


@pytest.mark.postgres
def test_postgres_airflow_connection(postgres_url):
    url = make_url(postgres_url)
    conn = Connection.from_uri(
        f"postgresql://{url.username}@{url.host}:{url.port}/{url.database}?sslmode=disable&cursor=realdictcursor",
        conn_id="store",
    )

    built = url_from_connection(conn)
    engine = engine_from_connection(conn)

    assert built.drivername == "postgresql+psycopg2"
    assert dict(built.query) == {"sslmode": "disable"}  # libpq options pass, Airflow-only extras do not
    assert engine.pool._pre_ping
    with engine.connect() as db:
        assert db.execute(text("SELECT current_database()")).scalar() == url.database


def test_postgres_url_from_fields_keeps_the_password_out_of_repr():
    conn = Connection(
        conn_id="store",
        conn_type="postgres",
        host="db.internal",
        login="sync",
        password="s3cret",
        schema="cs",
        port=5433,
    )

    url = url_from_connection(conn)

    assert url.render_as_string(hide_password=False) == "postgresql+psycopg2://sync:s3cret@db.internal:5433/cs"
    assert "s3cret" not in repr(url)


def test_other_connection_types_are_refused():
    with pytest.raises(ValueError, match="sqlite or postgres"):
        url_from_connection(Connection(conn_id="store", conn_type="http", host="example.com"))
    with pytest.raises(ValueError, match="names no SQLite file"):
        url_from_connection(Connection(conn_id="store", conn_type="sqlite"))


def test_get_store_resolves_the_connection_at_run_time(tmp_path, monkeypatch):
    from airflow.sdk import BaseHook

    path = tmp_path / "runtime" / "store.db"
    asked = []

    def fake_get_connection(conn_id):
        asked.append(conn_id)
        return Connection(conn_id=conn_id, conn_type="sqlite", host=str(path))

    monkeypatch.setattr(BaseHook, "get_connection", staticmethod(fake_get_connection))
    try:
        store = get_store()

        assert asked == ["cherry_sync_store"]
        assert isinstance(store, SyncStore)
        assert current_revision(store.engine) == head_revision()
        assert get_store("cherry_sync_store").engine is store.engine
    finally:
        dispose_engine(f"sqlite:///{path}")


def test_timestamps_round_trip_as_utc_and_naive_ones_are_refused(store):
    local = datetime.fromisoformat("2026-03-01T09:30:00-05:00")
    row = {
        "slug": "glow-aesthetics",
        "display_name": "Glow",
        "timezone": "America/New_York",
        "enabled": True,
        "cherry_conn_id": "c",
        "crm_conn_id": "d",
        "registry_fingerprint": "f",
        "created_at": local,
        "updated_at": local,
    }
    with store.engine.begin() as conn:
        conn.execute(insert(practices).values(row))
    with store.engine.connect() as conn:
        created = conn.execute(select(practices.c.created_at)).scalar_one()

    assert created == datetime(2026, 3, 1, 14, 30, tzinfo=UTC)
    assert created.utcoffset().total_seconds() == 0
    with pytest.raises(Exception, match="timezone-aware"), store.engine.begin() as conn:
        conn.execute(insert(practices).values({**row, "slug": "other", "created_at": datetime(2026, 3, 1)}))


def test_first_connection_waits_for_a_locked_file_to_switch_it_to_wal(tmp_path):
    # SQLite answers "database is locked" at once (busy_timeout is not consulted) when another process holds the
    # file while this one switches it to WAL: two first-time migrations at one instant used to fail that way.
    import sqlite3
    import threading

    path = tmp_path / "store.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        engine = engine_from_url(f"sqlite:///{path}")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        release.join()
        holder.close()
