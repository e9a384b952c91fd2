"""Housekeeping of Airflow's own metadata DB: `airflow db clean`, run as a child process, counts only in the result.

Airflow 3 task code has no metadata-DB access: the task-SDK supervisor's `block_orm_access()` sets
`AIRFLOW__DATABASE__SQL_ALCHEMY_CONN` (and the `[core]` alias) to `airflow-db-not-allowed:///` in the task process,
and a child process inherits that. So the URL is granted explicitly: the `cherry_sync_airflow_db` connection
(postgres, or sqlite for the embedded default) is handed to the child as `AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`,
registered with the secrets masker and redacted from anything this module logs or raises. Without that connection
the task is skipped with one sentence. Nothing here imports Airflow's ORM: the CLI does the work in its own process.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from cherry_sync.errors import CherrySyncError, Disposition
from cherry_sync.reasons import ReasonCode

log = logging.getLogger(__name__)

METADATA_DB_CONN_ID = "cherry_sync_airflow_db"
METADATA_RETENTION_ENV_VAR = "CHERRY_SYNC_METADATA_RETENTION_DAYS"
DEFAULT_METADATA_RETENTION_DAYS = 30
# Rows per delete transaction: a large first clean never holds a table's locks for long.
CLEAN_BATCH_SIZE = 5_000
# The tables that grow with every run, and nothing whose age alone does not make it dead (airflow/utils/db_cleanup.py):
# - dag_run keeps each DAG's latest scheduled run (continuity of the schedule); its task instances, their
#   history, XComs, task_state_store and deadlines go with it (Airflow adds a table's dependents itself);
# - job: scheduler / triggerer / dag-processor heartbeats; log: the audit log; asset_event: the contacts Asset's
#   events; callback: finished callbacks only; celery_*: the Celery result backend when it lives here (absent
#   tables are skipped);
# - revoked_token and connection_test_request: only expired tokens and finished tests qualify.
# Left out on purpose: `trigger` (age is its creation time, and the event-driven refresh's asset watchers run on
# triggers that live for months), `dag` and `dag_version` (DAG definitions and the versions their runs' graphs and
# `serialized_dag` / `dag_code` rows depend on; a few rows per DAG change, not growth), `import_error`,
# `partitioned_asset_key_log`, `_xcom_archive`.
CLEAN_TABLES: tuple[str, ...] = (
    "asset_event",
    "callback",
    "celery_taskmeta",
    "celery_tasksetmeta",
    "connection_test_request",
    "dag_run",
    "deadline",
    "job",
    "log",
    "revoked_token",
    "task_instance",
    "task_instance_history",
    "task_reschedule",
    "task_state_store",
    "xcom",
)
NO_CONNECTION = (
    f"Airflow's metadata DB is not cleaned: the connection {METADATA_DB_CONN_ID!r} is not defined "
    "(docs/maintenance.md says how to add it)."
)
# Variables the child must not inherit: the supervisor's blocked URL and its aliases, which would compete with the
# granted one, and the task runner's own process markers.
_DROPPED_ENV = (
    "AIRFLOW__CORE__SQL_ALCHEMY_CONN",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET",
    "AIRFLOW__CORE__SQL_ALCHEMY_CONN_CMD",
    "AIRFLOW__CORE__SQL_ALCHEMY_CONN_SECRET",
)
_CHECKING = re.compile(r"^Checking table (\S+)\s*$")
_FOUND = re.compile(r"^Found (\d+) rows meeting deletion criteria\.\s*$")
_NOT_FOUND = re.compile(r"Table (\S+) not found\.\s+Skipping")


class MetadataCleanFailed(CherrySyncError):
    """`airflow db clean` exited non-zero (a table it could not clean, or no database). Retried by Airflow."""

    reason_code = ReasonCode.API_ERROR
    disposition = Disposition.RETRY


def retention_days(env_var: str, default: int) -> int:
    """`$env_var` when it is a whole number of days >= 1, else `default` (the trigger forms' defaults)."""
    value = os.environ.get(env_var, "").strip()
    return int(value) if value.isdigit() and int(value) >= 1 else default


def clean_command(
    before: datetime,
    *,
    dry_run: bool,
    tables: Sequence[str] = CLEAN_TABLES,
    batch_size: int = CLEAN_BATCH_SIZE,
    python: str = sys.executable,
) -> list[str]:
    """The `airflow db clean` argv: rows older than `before`, no archive tables, no prompt, fail on any table."""
    command = [
        python,
        "-m",
        "airflow",
        "db",
        "clean",
        "--clean-before-timestamp",
        before.astimezone(UTC).isoformat(),
        "--tables",
        ",".join(tables),
        "--batch-size",
        str(batch_size),
        "--skip-archive",
        "--error-on-cleanup-failure",
        "--yes",
    ]
    return [*command, "--dry-run"] if dry_run else command


def child_env(db_url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: this process's, with the metadata DB URL granted explicitly."""
    env = {
        key: value
        for key, value in (os.environ if base is None else base).items()
        if key not in _DROPPED_ENV and not key.startswith(("_AIRFLOW", "__AIRFLOW"))
    }
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = db_url
    return env


def parse_clean_output(text: str) -> dict[str, int]:
    """Rows per table from `airflow db clean` output ("Checking table t" then "Found n rows ..."): every table
    the CLI looked at, dependents it added included; a table absent from this database is left out."""
    counts: dict[str, int] = {}
    table: str | None = None
    for line in text.splitlines():
        line = line.strip()
        if match := _CHECKING.match(line):
            table = match.group(1)
        elif (match := _FOUND.match(line)) and table is not None:
            counts[table] = int(match.group(1))
            table = None
    return dict(sorted(counts.items()))


def skipped_tables(text: str) -> list[str]:
    """Tables the CLI skipped because this database does not have them (e.g. celery_* without Celery)."""
    return sorted({match.group(1) for match in _NOT_FOUND.finditer(text)})


def metadata_db_url(conn_id: str = METADATA_DB_CONN_ID) -> str | None:
    """The connection as a SQLAlchemy URL (password included, registered with the masker), or None when undefined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from cherry_sync.store import url_from_connection

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    url = url_from_connection(conn).render_as_string(hide_password=False)
    _mask(url, conn.password)
    return url


def _mask(*secrets: str | None) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - the task SDK is always installed with Airflow 3
        return
    for secret in secrets:
        if secret:
            mask_secret(secret)


def _redact(text: str, *secrets: str | None) -> str:
    # The masker only filters Airflow's task log handlers: an exception message or a `dags test` run passes by it.
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def clean_metadata_db(
    db_url: str,
    retention_days: int,
    *,
    dry_run: bool,
    now: datetime | None = None,
    tables: Sequence[str] = CLEAN_TABLES,
    batch_size: int = CLEAN_BATCH_SIZE,
    timeout: float | None = None,
) -> dict:
    """Run `airflow db clean` on `db_url` for rows older than `retention_days`; returns counts only.

    `rows` per table is what the CLI found older than the cut-off: deleted, or with `dry_run` what would be.
    """
    from sqlalchemy.engine import make_url

    before = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    password = make_url(db_url).password
    result = subprocess.run(
        clean_command(before, dry_run=dry_run, tables=tables, batch_size=batch_size),
        env=child_env(db_url),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = _redact(f"{result.stdout}\n{result.stderr}", db_url, password)
    if result.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-20:])
        raise MetadataCleanFailed(f"airflow db clean exited {result.returncode}:\n{tail}")
    counts = parse_clean_output(result.stdout)
    missing = skipped_tables(output)
    verb = "would be deleted" if dry_run else "deleted"
    for table, rows in counts.items():
        log.info("metadata DB, %s before %s: %d rows %s", table, before.isoformat(), rows, verb)
    if missing:
        log.info("metadata DB tables not present here, skipped: %s", ", ".join(missing))
    return {
        "retention_days": retention_days,
        "before": before.isoformat(),
        "dry_run": dry_run,
        "tables": counts,
        "rows": sum(counts.values()),
    }


def clean_metadata_task(retention_days: int, dry_run: bool, conn_id: str = METADATA_DB_CONN_ID) -> dict:
    """What `cherry_maintenance`'s task runs: the granted URL, or a skip with `NO_CONNECTION` when there is none."""
    from airflow.sdk.exceptions import AirflowSkipException

    db_url = metadata_db_url(conn_id)
    if db_url is None:
        raise AirflowSkipException(NO_CONNECTION)
    return clean_metadata_db(db_url, retention_days, dry_run=dry_run)
