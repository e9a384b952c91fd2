"""A throwaway PostgreSQL metadata DB for `airflow db clean`, with a real old run and a real recent one.

`seeded_template` builds it once per module: `airflow db migrate`, then `airflow dags test cherry_maintenance`
(without `cherry_sync_airflow_db`, so its `clean_metadata_db` task is skipped: that run's output is kept for the
test of the skip), its rows moved 60 days into the past by SQL (dag run, task instances, XComs, the audit log
written so far, plus a few old audit-log rows), then a second `dags test` run that stays recent. Each test gets its
own copy (`metadata_db`, a PostgreSQL template copy), so tests that delete rows do not depend on each other.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from scripts.local_env import airflow, airflow_env, migrate_metadata
from tests.fixtures.databases import create_database, drop_database

DAG_ID = "cherry_maintenance"
AIRFLOW_BIN = str(Path(sys.executable).with_name("airflow"))
AGE = "60 days"  # the old run's age: past the 30-day default retention
OLD_AUDIT_ROWS = 3
# A password that must never show up anywhere: PostgreSQL's trust auth accepts it, so the connection works.
CANARY_PASSWORD = "canary-pw-7f3a9c"  # noqa: S105 - a test marker, not a secret


@dataclass
class SeededDb:
    """The migrated and seeded template database, and what seeding it printed."""

    url: URL
    old_run_id: str
    new_run_id: str
    first_run_output: str


@dataclass
class MetadataDb:
    """One test's copy of the seeded metadata DB."""

    url: URL
    seeded: SeededDb
    home: Path

    @property
    def url_with_password(self) -> str:
        return self.url.set(password=CANARY_PASSWORD).render_as_string(hide_password=False)

    def env(self, *, connection: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
        """An Airflow process on this metadata DB; with `connection`, `cherry_sync_airflow_db` points at it too."""
        conns = {}
        if connection:
            conns["AIRFLOW_CONN_CHERRY_SYNC_AIRFLOW_DB"] = json.dumps(airflow_db_connection(self.url))
        return airflow_env(
            self.home,
            extra={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.url.render_as_string(False), **conns, **(extra or {})},
        )

    def scalar(self, sql: str, **params) -> object:
        return run_sql(self.url, sql, **params)[0][0]

    def rows(self, sql: str, **params) -> list[tuple]:
        return run_sql(self.url, sql, **params)

    def count(self, table: str) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {table}"))  # noqa: S608 - table names from the tests


def airflow_db_connection(url: URL) -> dict:
    """`cherry_sync_airflow_db` in JSON form, with the canary password."""
    return {
        "conn_type": "postgres",
        "host": url.host,
        "port": url.port or 5432,
        "login": url.username,
        "password": CANARY_PASSWORD,
        "schema": url.database,
    }


def run_sql(url: URL, sql: str, **params) -> list[tuple]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _dags_test(env: dict[str, str]) -> str:
    result = airflow(env, "dags", "test", DAG_ID, check=False)
    assert result.returncode == 0 and "DagRun Finished" in result.stdout, result.stdout[-6000:]
    return result.stdout


def _backdate_everything(url: URL, run_id: str) -> None:
    """Move the run, its task instances, XComs and every audit-log row so far `AGE` into the past."""
    shift = f"- interval '{AGE}'"
    run_sql(
        url,
        f"UPDATE dag_run SET start_date = start_date {shift}, end_date = end_date {shift}, "
        f"queued_at = queued_at {shift}, run_after = run_after {shift}, logical_date = logical_date {shift} "
        "WHERE run_id = :run_id",
        run_id=run_id,
    )
    run_sql(
        url,
        f"UPDATE task_instance SET start_date = start_date {shift}, end_date = end_date {shift}, "
        f"queued_dttm = queued_dttm {shift} WHERE run_id = :run_id",
        run_id=run_id,
    )
    run_sql(url, f"UPDATE xcom SET timestamp = timestamp {shift} WHERE run_id = :run_id", run_id=run_id)
    run_sql(url, f"UPDATE log SET dttm = dttm {shift}")
    for n in range(OLD_AUDIT_ROWS):
        run_sql(
            url,
            f"INSERT INTO log (dttm, event, owner, extra) VALUES (now() {shift} - interval '{n} hours', "
            "'seeded-old-event', 'cherry-sync', '{}')",
        )


@pytest.fixture(scope="module")
def seeded_template(postgres_server, tmp_path_factory) -> Iterator[SeededDb]:
    url = create_database()
    home = tmp_path_factory.mktemp("metadata-home")
    env = airflow_env(home, extra={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url.render_as_string(False)})
    try:
        migrate_metadata(env)
        first_output = _dags_test(env)
        (old_run_id,) = run_sql(url, "SELECT run_id FROM dag_run WHERE dag_id = :d", d=DAG_ID)[0]
        _backdate_everything(url, old_run_id)
        _dags_test(env)
        (new_run_id,) = run_sql(
            url, "SELECT run_id FROM dag_run WHERE dag_id = :d AND run_id <> :old", d=DAG_ID, old=old_run_id
        )[0]
        yield SeededDb(url, old_run_id, new_run_id, first_output)
    finally:
        drop_database(url)


@pytest.fixture
def metadata_db(seeded_template: SeededDb, tmp_path) -> Iterator[MetadataDb]:
    url = create_database(template=seeded_template.url.database)
    try:
        yield MetadataDb(url, seeded_template, tmp_path / "home")
    finally:
        drop_database(url)


@contextmanager
def airflow_services(env: dict[str, str], home: Path, api_port: int) -> Iterator[None]:
    """api-server, scheduler and dag-processor on `env` (LocalExecutor): tasks run under the task-SDK supervisor."""
    processes = []
    try:
        for name, args in (
            ("api-server", ["api-server", "--port", str(api_port), "--host", "127.0.0.1"]),
            ("scheduler", ["scheduler"]),
            ("dag-processor", ["dag-processor"]),
        ):
            log = (home / f"{name}.log").open("w")
            processes.append(subprocess.Popen([AIRFLOW_BIN, *args], env=env, stdout=log, stderr=subprocess.STDOUT))
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def real_stack_env(db: MetadataDb, api_port: int) -> dict[str, str]:
    """`db.env(connection=True)` plus what separate Airflow components share (as docker-compose.yml sets them)."""
    from cryptography.fernet import Fernet

    api = f"http://127.0.0.1:{api_port}"
    return db.env(
        connection=True,
        extra={
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(db.home / "logs"),
        },
    )
