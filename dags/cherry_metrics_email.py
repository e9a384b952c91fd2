"""
### cherry_metrics_email — the monthly Cherry report each practice receives by email

**When:** early on the 1st of every month (11:00 UTC: already the 1st in every US timezone), and by hand for chosen practices and an end date.

**What, per enabled practice (mapped in batches, docs/scale.md):** `send_report` covers the 90 whole days that end the day before the run's
logical date in the practice's time zone (or end on the form's end date): applications, approvals, payments,
refunds and cancellations, net volume, each against the previous 90 days, plus today's active Cherry patients and
their available balance. Figures come from Cherry's reporting metrics and the sync store; a source that fails is
shown as unavailable, never as zero. The email (HTML + plain text + a weekly volume chart) goes to the practice's
`options.report_recipients` through the `cherry_sync_smtp` connection, once per practice and window: a re-run or
retry sends nothing more unless **force** is on. A practice with no recipients is skipped. Every rendered report
is also written to `$CHERRY_SYNC_REPORT_DIR` (default `$AIRFLOW_HOME/reports/`). Then `summarize` prints the run.

**Form:** practices (empty = every enabled practice), end date (last day covered; empty = the day before the
logical date), send (off = render and write the files only), force (send again a report already sent).
Details: docs/metrics-email.md.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from cherry_sync.dag_support import (
    CHERRY_API_POOL,
    METRICS_EMAIL_BUDGET,
    PRACTICE_LABEL,
    fail_run_if_a_practice_failed,
    failure,
    practices_param,
    practices_per_task_param,
    runbook,
    select_practices,
    summarize,
)
from cherry_sync.operators.metrics_email import MetricsEmailOperator
from cherry_sync.reasons import ReasonCode

with DAG(
    dag_id="cherry_metrics_email",
    description="Monthly 90-day Cherry report emailed to each practice",
    doc_md=runbook(
        __doc__,
        failure(
            ReasonCode.SEND_INTERRUPTED,
            action="The email may or may not have gone out: check the mailbox before re-sending (force on).",
            where="`cherry_sync_smtp`",
        ),
        failure(
            ReasonCode.SMTP_NOT_CONFIGURED,
            action="The SMTP connection is missing, has no host or no `from_email` extra: complete it.",
            where="`cherry_sync_smtp`",
        ),
        failure(
            ReasonCode.SEND_FAILED,
            action="The SMTP server did not accept the message: it is retried; check the server if it persists.",
            where="`cherry_sync_smtp`",
        ),
        failure(
            ReasonCode.INVALID_REPORT_WINDOW,
            action="The end date is malformed or has not ended yet in the practice's zone: choose an earlier day.",
            where="the trigger form",
        ),
    ),
    schedule="0 11 1 * *",  # 11:00 UTC: already the 1st in every US timezone (the window is per practice)
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,  # params reach the operators typed (booleans, integers, None)
    default_args=METRICS_EMAIL_BUDGET.default_args(),
    dagrun_timeout=METRICS_EMAIL_BUDGET.dagrun_timeout,
    tags=["cherry-sync", "reports"],
    params={
        "practices": practices_param(),
        "practices_per_task": practices_per_task_param(),
        "end_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="End date",
            description=(
                "Last day the report covers (YYYY-MM-DD, in each practice's time zone); the report spans the 90 days "
                "ending that day. Leave empty for the day before the run's logical date."
            ),
        ),
        "send": Param(
            True,
            type="boolean",
            title="Send",
            description="Email the reports. Off: render them and write the files to the report folder only.",
        ),
        "force": Param(
            False,
            type="boolean",
            title="Force",
            description="Send again a report already sent for the same practice and window (normally sent once).",
        ),
    },
) as dag:
    reports = MetricsEmailOperator.partial(
        task_id="send_report",
        report_end_date="{{ params.end_date }}",
        send="{{ params.send }}",
        force="{{ params.force }}",
        map_index_template=PRACTICE_LABEL,
        pool=CHERRY_API_POOL,
    ).expand(batch=select_practices())
    reports >> [summarize(), fail_run_if_a_practice_failed()]
