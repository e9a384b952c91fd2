"""
### cherry_backfill — pull every active Cherry patient of a practice into Aesthetix CRM

**When:** by hand, when a practice connects (or to re-check one). Resumable: a failed or killed run picks
up at the first page whose CRM writes were not confirmed, on retry or on a new trigger.

**Form:** practices (empty = every enabled practice), scope (active patients or all), dry run (plan only:
counts of creates, updates, unchanged and rejects, zero CRM writes), page size, practices per task.

**Tasks, per batch of practices (mapped; one practice per task up to 8 practices):** `provision_custom_fields`
(the 14 `contact.cherry_*` fields) then `sync_patients` (page by page, checkpointed) for each practice whose
fields are ready. Then `summarize` prints the totals from the run ledger, and `announce_contact_changes` updates
the `cherry_contacts` Asset for the practices that got contacts, which schedules `cherry_smart_list` for them.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task_group

from cherry_sync.dag_support import (
    BACKFILL_BUDGET,
    BACKFILL_POOL,
    PRACTICE_LABEL,
    announce_contact_changes,
    dry_run_param,
    fail_run_if_a_practice_failed,
    failure,
    page_size_param,
    practices_param,
    practices_per_task_param,
    runbook,
    select_practices,
    summarize,
)
from cherry_sync.operators import ProvisionCustomFieldsOperator, SyncPatientsOperator
from cherry_sync.reasons import ReasonCode

with DAG(
    dag_id="cherry_backfill",
    description="Pull every active Cherry patient into the CRM (manual, resumable)",
    doc_md=runbook(
        __doc__,
        failure(
            ReasonCode.CUSTOM_FIELD_CONFLICT,
            action="A `contact.cherry_*` field was changed to another type by hand: restore its type "
            "(docs/field-mapping.md).",
            where="the CRM location",
        ),
    ),
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,  # params reach the operators typed (booleans, integers, None)
    default_args=BACKFILL_BUDGET.default_args(),
    dagrun_timeout=BACKFILL_BUDGET.dagrun_timeout,
    tags=["cherry-sync", "backfill"],
    params={
        "practices": practices_param(),
        "scope": Param(
            "active",
            enum=["active", "all"],
            values_display={"active": "Active patients", "all": "All patients"},
            title="Scope",
            description="Which Cherry patients to pull: those with an ACTIVE account, or every status.",
        ),
        "dry_run": dry_run_param("counts of creates, updates, unchanged and rejects"),
        "page_size": page_size_param(),
        "practices_per_task": practices_per_task_param(),
    },
) as dag:

    @task_group
    def practice(batch: dict):
        fields = ProvisionCustomFieldsOperator(
            task_id="provision_custom_fields",
            batch=batch,
            dry_run="{{ params.dry_run }}",
            map_index_template=PRACTICE_LABEL,
            pool=BACKFILL_POOL,
        )
        patients = SyncPatientsOperator(
            task_id="sync_patients",
            batch=batch,
            dry_run="{{ params.dry_run }}",
            scope="{{ params.scope }}",
            page_size="{{ params.page_size }}",
            map_index_template=PRACTICE_LABEL,
            pool=BACKFILL_POOL,
            # A practice whose fields failed is skipped here; the others of the batch still sync.
            trigger_rule="all_done",
        )
        fields >> patients

    practice.expand(batch=select_practices()) >> [
        summarize(),
        announce_contact_changes(),
        fail_run_if_a_practice_failed(),
    ]
