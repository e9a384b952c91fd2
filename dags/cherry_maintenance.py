"""
### cherry_maintenance — housekeeping of the sync store

**When:** daily. Safe to run by hand at any time; a run that fails changes nothing the next one cannot finish.

**Form:** retention in days (default 14, or `CHERRY_SYNC_OUTCOME_RETENTION_DAYS` of the scheduler's
environment when set), dry run (count what would go, delete nothing).

**Tasks:** `prune_record_outcomes` deletes the per-record outcome history (`record_outcomes`, docs/store.md)
older than the retention, 10,000 rows per transaction. Its return value (XCom) holds the cut-off and the number
of rows deleted: no patient data.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from cherry_sync.dag_support import RunBudget, runbook

RETENTION_ENV_VAR = "CHERRY_SYNC_OUTCOME_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 14
MAINTENANCE_BUDGET = RunBudget(task_timeout=timedelta(hours=1), queueing=timedelta(minutes=10))


def default_retention_days() -> int:
    """`$CHERRY_SYNC_OUTCOME_RETENTION_DAYS` when it is a whole number of days >= 1, else 14."""
    value = os.environ.get(RETENTION_ENV_VAR, "").strip()
    return int(value) if value.isdigit() and int(value) >= 1 else DEFAULT_RETENTION_DAYS


with DAG(
    dag_id="cherry_maintenance",
    description="Housekeeping of the sync store: prune the per-record outcome history",
    doc_md=runbook(__doc__),
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
            default_retention_days(),
            type="integer",
            minimum=1,
            title="Retention (days)",
            description=f"Keep this many days of per-record outcomes (default from ${RETENTION_ENV_VAR}, else "
            f"{DEFAULT_RETENTION_DAYS}).",
        ),
        "dry_run": Param(
            False, type="boolean", title="Dry run", description="Count the rows that would be deleted; delete none."
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

    prune_record_outcomes()
