"""
### cherry_onboard — is every practice ready to sync? (and store the agency's OAuth tokens)

**When:** by hand: after installing the Cherry Sync marketplace app for the agency (with the authorization
code), after adding a practice to the registry, or to check the deployment at any time.

**Form:** `authorization_code` (optional): the code HighLevel hands the app's redirect URI after the agency
install. It is exchanged once for the agency token pair, stored encrypted (`cherry_sync_token_key`); the form
masks it and the task masks it in its log as soon as it reads it. A code is single-use and expires ten minutes
after the install, so the copy Airflow keeps with the run's configuration is worthless once exchanged.
`check_cherry_keys` (default on): one `GET /v1/practice` per practice to tell an active Cherry key from one not
yet activated.

**Tasks:** `exchange_authorization_code` (does nothing without a code) then `onboarding_report`: the app's
installed locations (every page) matched to the registry, one row per practice (OAuth by `crm_location_id`, PIT
by its connection's `location_id`) with what is missing; installed locations no entry names. The table is in the
task's log, the same as ids and states in its XCom. `summarize` fails the run when an enabled practice is not
ready. Same report from the command line: `python -m cherry_sync.onboarding` (docs/registry.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from cherry_sync.dag_support import (
    REFRESH_POOL,
    RunBudget,
    fail_run_if_a_practice_failed,
    failure,
    runbook,
)
from cherry_sync.reasons import ReasonCode

# A few API calls per practice: minutes, not hours.
ONBOARD_BUDGET = RunBudget(task_timeout=timedelta(minutes=15), retries=2, queueing=timedelta(minutes=10))


@task(pool=REFRESH_POOL)
def exchange_authorization_code(params=None) -> dict:
    """Exchange the form's authorization code for the agency token pair (nothing to do without one)."""
    from cherry_sync.onboarding import dag_exchange_authorization_code

    return dag_exchange_authorization_code(params)


@task(pool=REFRESH_POOL, trigger_rule="all_done")
def onboarding_report(params=None) -> dict:
    """The report (also after a refused code): logged as a table, returned as ids and states."""
    from cherry_sync.onboarding import dag_onboarding_report

    return dag_onboarding_report(params)


@task(task_id="summarize")
def summarize(report: dict) -> None:
    """Fails the run (no retry) when an enabled practice is not ready or a registry entry is invalid."""
    from cherry_sync.onboarding import dag_verdict

    dag_verdict(report)


with DAG(
    dag_id="cherry_onboard",
    description="Store the agency's OAuth tokens and report which practices are ready to sync (manual)",
    doc_md=runbook(
        __doc__,
        failure(
            ReasonCode.AUTH_FAILED,
            action="The authorization code was refused (used, older than ten minutes, or for another app): install "
            "the marketplace app for the agency again and run with the new code.",
            where="`cherry_sync_highlevel_app`",
        ),
        failure(
            ReasonCode.PRACTICE_UNAVAILABLE,
            action="A practice is not ready: the `onboarding_report` log says what is missing for each.",
            where="`include/practices.yml` and the practice's connections",
        ),
    ),
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args=ONBOARD_BUDGET.default_args(),
    dagrun_timeout=ONBOARD_BUDGET.dagrun_timeout,
    tags=["cherry-sync", "onboarding"],
    params={
        # format "password": the trigger form masks what is typed. The code is read from the run's params
        # inside the task (never templated into a task argument, so never a rendered field) and masked there.
        "authorization_code": Param(
            None,
            type=["null", "string"],
            format="password",
            title="Authorization code",
            description="Optional. The code from the app's redirect after installing the Cherry Sync marketplace "
            "app for the agency: exchanged once for the agency token pair, stored encrypted. Single-use, expires "
            "ten minutes after the install. Leave empty to only report.",
        ),
        "check_cherry_keys": Param(
            True,
            type="boolean",
            title="Check Cherry keys",
            description="Ask Cherry once per practice whether its API key is active (one GET /v1/practice each).",
        ),
    },
) as dag:
    exchange = exchange_authorization_code()
    report = onboarding_report()
    exchange >> report >> summarize(report)
    [exchange, report] >> fail_run_if_a_practice_failed()
