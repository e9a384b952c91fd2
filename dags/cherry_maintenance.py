"""
### cherry_maintenance — housekeeping of the sync store and of Airflow's metadata DB

**When:** daily. Safe to run by hand at any time; a run that fails changes nothing the next one cannot finish.

**Form:** retention of the outcome history in days (default 14, or `CHERRY_SYNC_OUTCOME_RETENTION_DAYS` of the
scheduler's environment when set), retention of Airflow's metadata in days (default 30, or
`CHERRY_SYNC_METADATA_RETENTION_DAYS`), dry run (count what would go, delete nothing; both tasks).

**Tasks:**
- `prune_record_outcomes` deletes the per-record outcome history (`record_outcomes`, docs/store.md) older than
  the retention, 10,000 rows per transaction.
- `clean_metadata_db` runs `airflow db clean` on Airflow's metadata DB (dag runs, task instances, XComs, the audit
  log, jobs, asset events... older than the retention; 5,000 rows per transaction, no archive tables), reaching
  it through the connection `cherry_sync_airflow_db` (docs/maintenance.md). Without that connection it is
  skipped, and says so.

Both return counts only (XCom): the cut-off and the rows deleted (or that a dry run would delete), per table for
the metadata DB. No patient data, no database URL.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from cherry_sync.dag_support import RunBudget, failure, runbook
from cherry_sync.maintenance import (
    DEFAULT_METADATA_RETENTION_DAYS,
    METADATA_RETENTION_ENV_VAR,
    retention_days,
)
from cherry_sync.reasons import ReasonCode

RETENTION_ENV_VAR = "CHERRY_SYNC_OUTCOME_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 14
MAINTENANCE_BUDGET = RunBudget(task_timeout=timedelta(hours=1), queueing=timedelta(minutes=10))


with DAG(
    dag_id="cherry_maintenance",
    description="Housekeeping: prune the sync store's outcome history and Airflow's metadata DB",
    doc_md=runbook(
        __doc__,
        failure(
            ReasonCode.CONNECTION_MISSING,
            action="`clean_metadata_db` was skipped: add the connection to clean Airflow's metadata DB "
            "(docs/maintenance.md).",
            where="`cherry_sync_airflow_db`",
        ),
        failure(
            ReasonCode.API_ERROR,
            action="`clean_metadata_db`: `airflow db clean` exited non-zero (the DB refused the connection, or a "
            "table could not be cleaned); its last lines are in the task's error. Retried; the next run resumes.",
            where="`cherry_sync_airflow_db`",
        ),
    ),
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args=MAINTENANCE_BUDGET.default_args(),
    dagrun_timeout=MAINTENANCE_BUDGET.dagrun_timeout,
    tags=["cherry-sync", "maintenance"],
    params={
        "retention_days": Param(
            retention_days(RETENTION_ENV_VAR, DEFAULT_RETENTION_DAYS),
            type="integer",
            minimum=1,
            title="Retention (days)",
            description=f"Keep this many days of per-record outcomes (default from ${RETENTION_ENV_VAR}, else "
            f"{DEFAULT_RETENTION_DAYS}).",
        ),
        "metadata_retention_days": Param(
            retention_days(METADATA_RETENTION_ENV_VAR, DEFAULT_METADATA_RETENTION_DAYS),
            type="integer",
            minimum=1,
            title="Metadata retention (days)",
            description="Keep this many days of Airflow's run history (dag runs, task instances, XComs, logs) in "
            f"its metadata DB (default from ${METADATA_RETENTION_ENV_VAR}, else {DEFAULT_METADATA_RETENTION_DAYS}).",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Count the rows that would be deleted, in the store and in the metadata DB; delete none.",
        ),
    },
) as dag:

    @task
    def prune_record_outcomes(params=None) -> dict:
        """Delete outcomes older than the retention (counts only in the result)."""
        import logging
        from datetime import UTC

        from cherry_sync.store import get_store

        days, dry_run = int(params["retention_days"]), bool(params["dry_run"])
        before = datetime.now(UTC) - timedelta(days=days)
        rows = get_store().prune_outcomes(before, dry_run=dry_run)
        logging.getLogger(__name__).info(
            "record outcomes before %s: %d %s", before.isoformat(), rows, "would be deleted" if dry_run else "deleted"
        )
        return {"retention_days": days, "before": before.isoformat(), "dry_run": dry_run, "rows": rows}

    @task
    def clean_metadata_db(params=None) -> dict:
        """`airflow db clean` through the `cherry_sync_airflow_db` connection (counts per table in the result)."""
        from cherry_sync.maintenance import clean_metadata_task

        return clean_metadata_task(int(params["metadata_retention_days"]), bool(params["dry_run"]))

    prune_record_outcomes()
    clean_metadata_db()
