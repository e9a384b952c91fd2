"""
### cherry_refresh — Cherry events into Aesthetix CRM, seconds after they happen

**When:** when a practice's watcher (run by the triggerer, one `cherry_events/<slug>` Asset per practice) sees
events for it: webhooks Cherry delivered to the receiver and stored in the sync store's inbox (checked every
second), or, for practices without webhooks, new events in Cherry's feed (read every `events.poll_seconds`,
default 15, per practice). Events that arrive while a run is going are batched into the next one. Nothing happening starts nothing. **Hourly** it
also runs as the safety net: every practice reads the feed from its stored cursor, so a lost webhook or a receiver
outage loses nothing. One run at a time. Can be triggered by hand for chosen practices (inbox and feed).

**What, per practice to refresh (mapped, in batches of up to `practices_per_task` practices; only practices with
events get a task):** `apply_events` applies the practice's pending webhooks, then (feed
wake-ups, the hourly run, manual runs) Cherry events after the stored cursor: drops duplicates and `test.ping`,
never lets an older version overwrite a newer one, updates contacts (new patient, account refreshed) and payment
fields, and for practices with an opportunity pipeline marks opportunities won / lost / lowered / abandoned.
The cursor advances, and inbox rows are marked applied, only once their effects landed. When contacts were
written, `announce_contact_changes` updates the `cherry_contacts` Asset naming those practices (the smart list
then runs for them alone); a run that wrote nothing schedules nothing. Receiver, watchers and set-up: docs/webhooks.md.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable

from cherry_sync.dag_support import (
    PRACTICE_LABEL,
    REFRESH_BUDGET,
    REFRESH_POOL,
    REFRESH_PRIORITY,
    announce_contact_changes,
    dry_run_param,
    fail_run_if_a_practice_failed,
    failure,
    page_size_param,
    practices_param,
    practices_per_task_param,
    runbook,
    summarize,
)
from cherry_sync.operators import ApplyEventsOperator
from cherry_sync.reasons import ReasonCode
from cherry_sync.triggers.schedule import cherry_events_assets, plan_refresh_work

with DAG(
    dag_id="cherry_refresh",
    description="Cherry events into the CRM as they happen (webhooks or polled feed), reconciled hourly",
    doc_md=runbook(
        __doc__,
        failure(
            ReasonCode.PIPELINE_NOT_FOUND,
            action="The registry's opportunity pipeline or stage is not in the location: fix the name.",
            where="`include/practices.yml`",
        ),
        failure(
            ReasonCode.CUSTOM_FIELD_CONFLICT,
            action="A `contact.cherry_*` field was changed to another type by hand: restore its type.",
            where="the CRM location",
        ),
    ),
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("17 * * * *", timezone="UTC"),  # the safety net: the feed, hourly
        assets=cherry_events_assets(),
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,  # params reach the operators typed (booleans, integers, None)
    default_args=REFRESH_BUDGET.default_args(),
    dagrun_timeout=REFRESH_BUDGET.dagrun_timeout,
    tags=["cherry-sync", "refresh"],
    params={
        "practices": practices_param(),
        "dry_run": dry_run_param("what the events would change"),
        "page_size": page_size_param(),
        "practices_per_task": practices_per_task_param(),
    },
) as dag:
    events = ApplyEventsOperator.partial(
        task_id="apply_events",
        dry_run="{{ params.dry_run }}",
        page_size="{{ params.page_size }}",
        map_index_template=PRACTICE_LABEL,
        pool=REFRESH_POOL,
        **REFRESH_PRIORITY,
    ).expand(batch=plan_refresh_work())
    events >> [summarize(), announce_contact_changes(), fail_run_if_a_practice_failed()]
