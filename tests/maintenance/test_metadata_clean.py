"""`cherry_maintenance`'s `clean_metadata_db`: the real `airflow db clean` on a throwaway PostgreSQL metadata DB.

The metadata DB holds a real run of `cherry_maintenance` moved 60 days into the past and a recent one
(conftest.py). The task code reaches the DB only through the `cherry_sync_airflow_db` connection: the real-run test
calls it after the task SDK's own `block_orm_access()`, as the supervisor does in every task process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from cherry_sync.maintenance import (
    CLEAN_TABLES,
    NO_CONNECTION,
    MetadataCleanFailed,
    clean_command,
    clean_metadata_db,
)
from scripts.local_env import REPO, airflow, free_port
from tests.maintenance.conftest import (
    CANARY_PASSWORD,
    DAG_ID,
    OLD_AUDIT_ROWS,
    MetadataDb,
    airflow_services,
    real_stack_env,
)

pytestmark = pytest.mark.postgres

RETENTION = 30

# The task process as the supervisor leaves it: Airflow's settings loaded, then `block_orm_access()`.
_BLOCKED_TASK = """
import json, os, sys
import airflow.settings  # loaded in every task process: the block then covers it too
from airflow.sdk.execution_time.supervisor import block_orm_access
block_orm_access()
assert os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "airflow-db-not-allowed:///"
if sys.argv[1] == "task":
    from cherry_sync.maintenance import clean_metadata_task
    print(json.dumps(clean_metadata_task(int(sys.argv[2]), False)))
else:  # the CLI with the environment the task process would hand down unchanged
    import subprocess
    sys.exit(subprocess.run(json.loads(sys.argv[2])).returncode)
"""


def _counts(db: MetadataDb) -> dict[str, int]:
    present = {row[0] for row in db.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    return {table: db.count(table) for table in CLEAN_TABLES if table in present}


def _old_rows(db: MetadataDb, before: datetime) -> dict[str, int]:
    """What the seeding put before the cut-off, counted with SQL (not by the code under test)."""
    old = {"run_id": db.seeded.old_run_id}
    return {
        "dag_run": int(db.scalar("SELECT count(*) FROM dag_run WHERE start_date < :b", b=before)),
        "task_instance": int(db.scalar("SELECT count(*) FROM task_instance WHERE run_id = :run_id", **old)),
        "xcom": int(db.scalar("SELECT count(*) FROM xcom WHERE run_id = :run_id", **old)),
        "log": int(db.scalar("SELECT count(*) FROM log WHERE dttm < :b", b=before)),
    }


def test_every_table_cleaned_exists_in_this_airflow_and_none_pulls_in_another():
    # Test-side import: task code never imports airflow.utils (tests/dags/test_no_metadata_db.py).
    from airflow.utils.db_cleanup import _effective_table_names, config_dict

    assert set(CLEAN_TABLES) <= set(config_dict)
    # Airflow cleans a table's dependents first: the list is closed under them, so nothing unlisted is touched.
    effective, _ = _effective_table_names(table_names=list(CLEAN_TABLES))
    assert set(effective) == set(CLEAN_TABLES)
    assert not {"trigger", "dag", "dag_version", "import_error"} & set(effective)


def test_the_command_asks_for_batches_no_archive_no_prompt_and_a_dry_run_only_when_asked():
    before = datetime(2026, 1, 1, tzinfo=UTC)
    real, dry = clean_command(before, dry_run=False), clean_command(before, dry_run=True)
    assert real[1:5] == ["-m", "airflow", "db", "clean"]
    for flag in ("--skip-archive", "--yes", "--error-on-cleanup-failure"):
        assert flag in real
    assert real[real.index("--batch-size") + 1] == "5000"
    assert real[real.index("--clean-before-timestamp") + 1] == "2026-01-01T00:00:00+00:00"
    assert "--dry-run" not in real and dry == [*real, "--dry-run"]


def test_a_run_without_the_connection_skips_its_metadata_task_with_one_sentence(seeded_template):
    from tests.maintenance.conftest import run_sql

    assert NO_CONNECTION in seeded_template.first_run_output
    states = dict(
        run_sql(
            seeded_template.url,
            "SELECT task_id, state FROM task_instance WHERE run_id = :r",
            r=seeded_template.old_run_id,
        )
    )
    assert states == {"prune_record_outcomes": "success", "clean_metadata_db": "skipped"}


def test_dry_run_reports_rows_per_table_and_deletes_nothing(metadata_db: MetadataDb):
    now = datetime.now(UTC)
    expected = _old_rows(metadata_db, now - timedelta(days=RETENTION))
    assert expected["dag_run"] == 1 and expected["task_instance"] == 2 and expected["log"] > OLD_AUDIT_ROWS
    before = _counts(metadata_db)

    result = clean_metadata_db(metadata_db.url_with_password, RETENTION, dry_run=True, now=now)

    after = _counts(metadata_db)
    # The CLI writes its own audit-log row ("cli_db_clean"): the log table may grow, nothing else changes.
    assert after["log"] >= before.pop("log") and after.pop("log") >= 0
    assert after == before
    assert _old_rows(metadata_db, now - timedelta(days=RETENTION)) == expected
    assert {table: result["tables"][table] for table in expected} == expected
    assert set(result["tables"]) == {*before, "log"}  # every table present was checked (no celery_* here)
    assert result["rows"] == sum(result["tables"].values())
    assert result["dry_run"] is True and result["retention_days"] == RETENTION
    assert CANARY_PASSWORD not in json.dumps(result)


def test_real_run_from_a_blocked_task_process_deletes_old_rows_and_keeps_recent_ones(metadata_db: MetadataDb):
    before_cutoff = datetime.now(UTC) - timedelta(days=RETENTION)
    expected = _old_rows(metadata_db, before_cutoff)
    recent_log = int(metadata_db.scalar("SELECT count(*) FROM log WHERE dttm >= :b", b=before_cutoff))

    env = metadata_db.env(connection=True)
    done = subprocess.run(
        [sys.executable, "-c", _BLOCKED_TASK, "task", str(RETENTION)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert {table: result["tables"][table] for table in expected} == expected
    old, new = metadata_db.seeded.old_run_id, metadata_db.seeded.new_run_id
    remaining = metadata_db.rows("SELECT run_id, count(*) FROM task_instance GROUP BY run_id")
    assert dict(remaining) == {new: 2}
    assert [r[0] for r in metadata_db.rows("SELECT run_id FROM dag_run")] == [new]
    assert metadata_db.scalar("SELECT count(*) FROM xcom WHERE run_id = :r", r=old) == 0
    assert metadata_db.scalar("SELECT count(*) FROM xcom WHERE run_id = :r", r=new) >= 1
    assert metadata_db.scalar("SELECT count(*) FROM log WHERE dttm < :b", b=before_cutoff) == 0
    assert metadata_db.scalar("SELECT count(*) FROM log WHERE dttm >= :b", b=before_cutoff) >= recent_log
    # --skip-archive: no _airflow_deleted__* copies left behind.
    assert metadata_db.scalar("SELECT count(*) FROM pg_tables WHERE tablename LIKE '\\_airflow\\_deleted%'") == 0
    assert CANARY_PASSWORD not in done.stdout + done.stderr


def test_without_the_grant_the_cli_inherits_the_blocked_url_and_cannot_reach_the_db(metadata_db: MetadataDb):
    # Why the connection exists: a child of the task process gets `airflow-db-not-allowed:///` from it.
    command = clean_command(datetime.now(UTC), dry_run=True)
    done = subprocess.run(
        [sys.executable, "-c", _BLOCKED_TASK, "cli", json.dumps(command)],
        env=metadata_db.env(connection=False),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # SQLAlchemy cannot even parse the supervisor's placeholder URL: the CLI dies before any query.
    assert done.returncode != 0
    assert "Could not parse SQLAlchemy URL" in done.stderr, done.stderr[-3000:]


def test_dag_task_returns_counts_in_xcom_and_the_password_appears_nowhere(metadata_db: MetadataDb):
    env = metadata_db.env(connection=True)
    runs_before = metadata_db.count("dag_run")

    result = airflow(env, "dags", "test", DAG_ID, "-c", json.dumps({"dry_run": True}), check=False)

    out = result.stdout or ""
    assert result.returncode == 0 and "DagRun Finished" in out, out[-6000:]
    assert metadata_db.count("dag_run") == runs_before + 1  # a dry run: the old run is still there
    (state, value) = metadata_db.rows(
        "SELECT ti.state, x.value::text FROM task_instance ti JOIN dag_run r ON r.run_id = ti.run_id "
        "JOIN xcom x ON x.run_id = ti.run_id AND x.task_id = ti.task_id AND x.key = 'return_value' "
        "WHERE ti.task_id = 'clean_metadata_db' ORDER BY r.start_date DESC LIMIT 1"
    )[0]
    assert state == "success"
    xcom = json.loads(value)
    assert xcom["dry_run"] is True and xcom["tables"]["dag_run"] == 1 and xcom["tables"]["task_instance"] == 2
    assert set(xcom) == {"retention_days", "before", "dry_run", "tables", "rows"}

    logs = "".join(p.read_text(errors="replace") for p in metadata_db.home.rglob("*") if p.is_file())
    audit = " ".join(str(row) for row in metadata_db.rows("SELECT extra FROM log"))
    xcoms = " ".join(row[0] for row in metadata_db.rows("SELECT value::text FROM xcom"))
    for where, text in {"output": out, "log files": logs, "audit log": audit, "xcom": xcoms}.items():
        assert CANARY_PASSWORD not in text, where


def test_the_daily_run_on_the_real_scheduler_cleans_through_the_connection(metadata_db: MetadataDb):
    # The production path: scheduler + LocalExecutor, the task in a supervised process whose own metadata-DB URL is
    # blocked; the only way to the DB is the `cherry_sync_airflow_db` connection.
    port = free_port()
    env = real_stack_env(metadata_db, port)
    old, new = metadata_db.seeded.old_run_id, metadata_db.seeded.new_run_id
    airflow(env, "dags", "reserialize")
    with airflow_services(env, metadata_db.home, port):
        airflow(env, "dags", "unpause", DAG_ID)  # catchup=False: the latest daily interval is scheduled at once
        deadline = time.monotonic() + 300
        run = []
        while time.monotonic() < deadline:
            run = metadata_db.rows(
                "SELECT run_id, state FROM dag_run WHERE dag_id = :d AND run_type = 'scheduled'", d=DAG_ID
            )
            if run and run[0][1] in ("success", "failed"):
                break
            time.sleep(3)
    assert run and run[0][1] == "success", (metadata_db.home / "scheduler.log").read_text()[-4000:]
    scheduled = run[0][0]
    states = dict(metadata_db.rows("SELECT task_id, state FROM task_instance WHERE run_id = :r", r=scheduled))
    assert states == {"prune_record_outcomes": "success", "clean_metadata_db": "success"}
    tables = json.loads(
        metadata_db.scalar(
            "SELECT value::text FROM xcom WHERE run_id = :r AND task_id = 'clean_metadata_db' AND key = 'tables'",
            r=scheduled,
        )
    )
    assert tables["dag_run"] == 1 and tables["task_instance"] == 2
    assert {r[0] for r in metadata_db.rows("SELECT run_id FROM dag_run")} == {new, scheduled}
    assert metadata_db.scalar("SELECT count(*) FROM task_instance WHERE run_id = :r", r=old) == 0
    task_logs = [p for p in (metadata_db.home / "logs").rglob("*") if p.is_file() and "clean_metadata_db" in str(p)]
    assert task_logs and "rows deleted" in "".join(p.read_text() for p in task_logs)
    everything = "".join(p.read_text(errors="replace") for p in metadata_db.home.rglob("*") if p.is_file())
    assert CANARY_PASSWORD not in everything


def test_a_failing_clean_fails_the_task_with_the_cli_tail_and_without_the_password(postgres_server):
    url = postgres_server.set(database="cherry_sync_test_absent", password=CANARY_PASSWORD)
    with pytest.raises(MetadataCleanFailed) as caught:
        clean_metadata_db(url.render_as_string(hide_password=False), RETENTION, dry_run=True)
    message = str(caught.value)
    assert "exited" in message and "cherry_sync_test_absent" in message
    assert CANARY_PASSWORD not in message


_PARAM_DEFAULTS = """
import json, runpy, sys
namespace = runpy.run_path(sys.argv[1])
params = namespace["dag"].params
print(json.dumps({key: params[key] for key in ("retention_days", "metadata_retention_days", "dry_run")}))
"""


@pytest.mark.parametrize(("value", "expected"), [("7", 7), ("", 30), ("zero", 30), ("0", 30)])
def test_metadata_retention_default_comes_from_the_environment(value, expected, tmp_path):
    from scripts.local_env import airflow_env

    env = airflow_env(tmp_path / "home", extra={"CHERRY_SYNC_METADATA_RETENTION_DAYS": value})
    done = subprocess.run(
        [sys.executable, "-c", _PARAM_DEFAULTS, str(REPO / "dags" / f"{DAG_ID}.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "retention_days": 14,
        "metadata_retention_days": expected,
        "dry_run": False,
    }
