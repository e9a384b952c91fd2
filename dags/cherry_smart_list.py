"""
### cherry_smart_list — keep the "Cherry Patients" smart list exact in Aesthetix CRM

**When:** after every run of `cherry_backfill` or `cherry_refresh` that wrote contacts (they update the
`cherry_contacts` Asset, naming the practices), for those practices only (one run at a time; events that arrive
meanwhile are served by the next run); daily at 04:41 UTC for every enabled practice (verification cadence, tags a
run could not send); or by hand for chosen practices.

**What, per practice (mapped, in batches of up to `practices_per_task`):** `update_smart_list` computes from the sync store, in SQL, who is a
member (every Cherry patient synced to a CRM contact) and which segments each is in (active, inactive, balance
at or above the practice's threshold, increase eligible), using the tags and threshold of the practice's
registry entry (`options.segments`). It sends only the differences from what it applied before, 100 contacts per
bulk tag call, falling back to one call per contact for a batch the CRM refuses; what failed is retried next
run. Tags people added are never touched; a renamed segment tag is removed where the product had applied it.
When the membership changed, or once per cadence, it also checks the list's columns (Account Status, Active
Balance) against the store and makes disagreeing contacts rewrite on the next sync. An unchanged run makes no
CRM call. Writes a CSV of the list (opaque ids, one column per segment) to `$CHERRY_SYNC_EXPORT_DIR` or
`$AIRFLOW_HOME/exports/smart_list_<practice>.csv`. Counts per segment, added and removed go to the run ledger.

**Form:** practices (empty = every enabled practice), dry run (the changes, without sending them), verify
(auto / always / never), verification cadence in hours. Details: docs/smart-list.md.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param

from cherry_sync.dag_support import (
    CHERRY_CONTACTS,
    PRACTICE_LABEL,
    SMART_LIST_BUDGET,
    SMART_LIST_POOL,
    dry_run_param,
    fail_run_if_a_practice_failed,
    practices_param,
    practices_per_task_param,
    runbook,
    select_changed_practices,
    summarize,
)
from cherry_sync.operators.smart_list import SmartListOperator

with DAG(
    dag_id="cherry_smart_list",
    description="Keep the Cherry Patients smart list's tags exact (after each contacts update)",
    doc_md=runbook(__doc__),
    schedule=AssetOrTimeSchedule(
        # Daily, every practice: the verification cadence and the retry of tags a run could not send.
        timetable=CronTriggerTimetable("41 4 * * *", timezone="UTC"),
        assets=[CHERRY_CONTACTS],
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,  # params reach the operators typed (booleans, integers, None)
    default_args=SMART_LIST_BUDGET.default_args(),
    dagrun_timeout=SMART_LIST_BUDGET.dagrun_timeout,
    tags=["cherry-sync", "smart-list"],
    params={
        "practices": practices_param(),
        "dry_run": dry_run_param("the tags each segment would gain and lose, and the calls that would take"),
        "verify": Param(
            "auto",
            enum=["auto", "always", "never"],
            values_display={
                "auto": "When the membership changed, or the cadence is due",
                "always": "Always (reads every contact of the location)",
                "never": "Never",
            },
            title="Verify CRM columns",
            description="Compare Account Status, Active Balance and the product's tags in the CRM with the store.",
        ),
        "verify_every_hours": Param(
            24,
            type="number",
            minimum=0,
            maximum=720,
            title="Verification cadence (hours)",
            description="With verify=auto: verify an unchanged list when the last verification is this old.",
        ),
        "practices_per_task": practices_per_task_param(),
    },
) as dag:
    smart_list = SmartListOperator.partial(
        task_id="update_smart_list",
        dry_run="{{ params.dry_run }}",
        verify="{{ params.verify }}",
        verify_every_hours="{{ params.verify_every_hours }}",
        map_index_template=PRACTICE_LABEL,
        pool=SMART_LIST_POOL,
    ).expand(batch=select_changed_practices())
    smart_list >> [summarize(), fail_run_if_a_practice_failed()]
