"""
### cherry_refresh — follow Cherry's event feed into Aesthetix CRM

**When:** every 5 minutes (one run at a time). Can be triggered by hand for chosen practices.

**What, per enabled practice (mapped):** `apply_events` reads Cherry events after the stored cursor,
drops duplicates and `test.ping`, never lets an older version overwrite a newer one, updates contacts
(new patient, account refreshed) and payment fields, and for practices with an opportunity pipeline marks
opportunities won / lost / lowered / abandoned. The cursor advances only past events whose effects landed.
Updates the `cherry_contacts` Asset.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from cherry_sync.dag_support import (
    CHERRY_CONTACTS,
    CRM_API_POOL,
    DEFAULT_ARGS,
    dry_run_param,
    fail_run_if_a_practice_failed,
    page_size_param,
    practices_param,
    select_practices,
    summarize,
)
from cherry_sync.operators import ApplyEventsOperator

with DAG(
    dag_id="cherry_refresh",
    description="Incremental sync of Cherry events (every 5 minutes)",
    doc_md=__doc__,
    schedule="*/5 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["cherry-sync", "refresh"],
    params={
        "practices": practices_param(),
        "dry_run": dry_run_param("what the events would change"),
        "page_size": page_size_param(),
    },
) as dag:
    events = ApplyEventsOperator.partial(
        task_id="apply_events",
        dry_run="{{ params.dry_run }}",
        page_size="{{ params.page_size }}",
        map_index_template="{{ task.practice }}",
        pool=CRM_API_POOL,
        outlets=[CHERRY_CONTACTS],
    ).expand(practice=select_practices())
    events >> [summarize(), fail_run_if_a_practice_failed()]
