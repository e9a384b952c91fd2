"""Engines for the sync store: SQLite file by default, PostgreSQL in production; one cached engine per URL.

`get_store()` is what tasks call: it resolves the store's Airflow connection when the task runs (never when a
DAG file is parsed), builds or reuses the engine, applies pending migrations once per process and returns a
`SyncStore`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from cherry_sync.context import STORE_CONN_ID
from cherry_sync.store.migrate import is_at_head, migrate
from cherry_sync.store.sync_store import SyncStore

log = logging.getLogger(__name__)

# Writers wait this long for SQLite's single write lock before giving up; parallel tasks take turns.
SQLITE_BUSY_TIMEOUT_MS = 30_000

# libpq options worth passing through from a connection's extras; anything else there is Airflow's business.
_LIBPQ_EXTRAS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "connect_timeout",
        "application_name",
        "options",
        "target_session_attrs",
        "keepalives_idle",
    }
)


def _json_default(value: Any) -> Any:
    # Snapshots are normalised records; amounts and dates in them are stored as text (read back as str).
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_json_serializer = partial(json.dumps, default=_json_default, separators=(",", ":"))

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
_migrated: set[str] = set()


def _after_fork_in_child() -> None:
    # A forked child must not reuse its parent's pooled sockets (SQLAlchemy's advice: dispose without closing),
    # nor a lock another thread may have held at fork time.
    global _engines_lock
    _engines_lock = threading.Lock()
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


def engine_from_url(url: str | URL) -> Engine:
    """Return the process-wide engine for `url`, creating it on first use.

    SQLite: WAL journal, foreign keys on, a busy timeout, and the file's folder created. PostgreSQL (psycopg2):
    connections are pinged before use, so a restarted server does not fail the next task.
    """
    url = make_url(url)
    key = url.render_as_string(hide_password=False)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _create_engine(url)
            _engines[key] = engine
            log.info("sync store engine created for %s", url.render_as_string(hide_password=True))
        return engine


def _create_engine(url: URL) -> Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg2")
        connect_args: dict[str, Any] = {}
        if "application_name" not in url.query:
            connect_args["application_name"] = "cherry_sync"
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args, json_serializer=_json_serializer)
    raise ValueError(f"the sync store runs on sqlite or postgresql, not {backend!r}")


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    on_disk = database not in ("", ":memory:") and not database.startswith("file:")
    if on_disk:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, json_serializer=_json_serializer
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Hand transaction control to SQLAlchemy: pysqlite otherwise opens transactions late (not before DDL
        # or SELECT), which breaks atomic migrations and read-then-write units of work.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if on_disk:
            # WAL lets readers go on while a writer commits; NORMAL sync is safe with WAL.
            _ensure_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of one
        # failing with "database is locked" when it upgrades a read lock mid-transaction.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _ensure_wal(cursor) -> None:
    """Switch a SQLite file to WAL once (the mode is stored in the file).

    Switching needs an exclusive lock, and SQLite answers "database is locked" at once rather than waiting out
    busy_timeout when another process holds the file (two first-time migrations at the same instant): retry for
    as long as busy_timeout would have waited. A file already in WAL mode needs no lock and no retry.
    """
    import sqlite3

    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    for attempt in Retrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)),
        stop=stop_after_delay(SQLITE_BUSY_TIMEOUT_MS / 1000),
        wait=wait_random(0.01, 0.1),
        reraise=True,
    ):
        with attempt:
            cursor.execute("PRAGMA journal_mode = WAL")


def url_from_connection(conn: Any) -> URL:
    """Build the store URL from an Airflow Connection (conn_type `sqlite` or `postgres`/`postgresql`).

    SQLite follows Airflow's sqlite connections: the file path is the host (`sqlite://%2Fabs%2Fstore.db`);
    a URI such as `sqlite:////abs/path/store.db` parses with the path in `schema`, which is accepted too.
    """
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise ValueError(f"connection {conn.conn_id!r} names no SQLite file (set its host to the file path)")
        return URL.create("sqlite", database=path)
    if conn_type in ("postgres", "postgresql"):
        extras = getattr(conn, "extra_dejson", None) or {}
        query = {key: str(value) for key, value in extras.items() if key in _LIBPQ_EXTRAS}
        return URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
            query=query,
        )
    raise ValueError(
        f"connection {conn.conn_id!r} has type {conn.conn_type!r}; the sync store needs sqlite or postgres"
    )


def engine_from_connection(conn: Any) -> Engine:
    """The cached engine for an Airflow Connection object (see `url_from_connection`)."""
    return engine_from_url(url_from_connection(conn))


def store_from_engine(engine: Engine) -> SyncStore:
    """A `SyncStore` on `engine`, migrated to the latest schema (checked once per engine per process).

    The check is one query of the version table; Alembic runs only when the store is behind. A DAG run's first task
    (selecting its practices) brings the store to head, so its practice tasks find it there and never load Alembic.
    """
    key = engine.url.render_as_string(hide_password=False)
    if key not in _migrated:
        if not is_at_head(engine):
            migrate(engine)
        _migrated.add(key)
    return SyncStore(engine)


def get_store(conn_id: str = STORE_CONN_ID) -> SyncStore:
    """Resolve the store's Airflow connection now (at task run time) and return a migrated `SyncStore`."""
    from airflow.sdk import BaseHook  # imported here: the store itself must not need Airflow to load

    conn = BaseHook.get_connection(conn_id)
    return store_from_engine(engine_from_connection(conn))


def dispose_engine(url: str | URL) -> None:
    """Close and forget the cached engine for `url`, if any (tests dropping a database)."""
    key = make_url(url).render_as_string(hide_password=False)
    with _engines_lock:
        engine = _engines.pop(key, None)
        _migrated.discard(key)
    if engine is not None:
        engine.dispose()


def dispose_engines() -> None:
    """Close every cached engine's pooled connections (tests; a worker that forks)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()
