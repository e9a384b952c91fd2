"""Airflow owns run time: a task stuck on a hung API is ended by its `execution_timeout`, and the next run finishes
the work. The DAGs' budgets (`dag_support.RunBudget`) are checked to fit their retries inside the run's timeout.

The timeout is time-scaled through the test's cluster policy (`failures_helpers.scaled_retries`): 8 s instead of the
backfill's 4 hours, no retry, so the run ends as soon as the stuck try is stopped.
"""

from __future__ import annotations

import json
import time

import pytest

from cherry_sync.dag_support import (
    BACKFILL_BUDGET,
    MEDIA_IMPORT_BUDGET,
    METRICS_EMAIL_BUDGET,
    REFRESH_BUDGET,
    SMART_LIST_BUDGET,
)
from cherry_sync.store import engine_from_url, store_from_engine
from tests.dags.conftest import DagEnv
from tests.dags.failures_helpers import run_dag, scaled_retries, task_log
from tests.sync.conftest import duplicates_by_contact_point

pytestmark = pytest.mark.airflow

PRACTICE, LOCATION = "lumen-medspa", 1  # the registry's second practice: the sandboxes' second location
TIMEOUT_SECONDS = 8


@pytest.mark.parametrize(
    "budget", [BACKFILL_BUDGET, REFRESH_BUDGET, SMART_LIST_BUDGET, MEDIA_IMPORT_BUDGET, METRICS_EMAIL_BUDGET]
)
def test_every_try_and_the_waits_between_fit_inside_the_runs_timeout(budget) -> None:
    args = budget.default_args()
    assert args["execution_timeout"] == budget.task_timeout
    tries = (args["retries"] + 1) * budget.task_timeout + budget.retry_waits()
    assert tries < budget.dagrun_timeout


def test_a_task_stuck_on_a_hung_crm_is_ended_by_its_timeout_and_the_next_run_finishes(dag_env: DagEnv, tmp_path):
    env = dag_env
    name = f"AIRFLOW_CONN_CRM_{PRACTICE.replace('-', '_').upper()}"
    crm_conn = json.loads(env.env[name])
    # Each attempt gives up after 3 s and is retried (8 attempts): the hook alone would hold the task for ~half a
    # minute; Airflow's timeout ends it first.
    crm_conn["extra"] = {**crm_conn["extra"], "read_timeout": 3, "backoff_initial": 0.2, "backoff_max": 0.5}
    env.extra[name] = json.dumps(crm_conn)
    scaled_retries(env, tmp_path / "policy", timeout_seconds=TIMEOUT_SECONDS, retries=0)
    env.crm.set_faults(hang_share=1.0, hang_seconds=120, path_prefixes=["/contacts/upsert"])

    started = time.monotonic()
    stuck = run_dag(env, "cherry_backfill", timeout=300, practices=[PRACTICE], page_size=20)
    assert time.monotonic() - started < 120, "the run must end at the task's timeout, not when the CRM answers"
    assert stuck.state == "failed"
    assert set(stuck.states("sync_patients").values()) == {"failed"}
    log = task_log(env.home, "cherry_backfill", stuck.run_id, "sync_patients") + stuck.output
    assert "AirflowTaskTimeout" in log or "Timeout, PID" in log, log[-3000:]
    # The run ledger says why: the try was ended by its timeout (not left "running").
    store = store_from_engine(engine_from_url(env.store_url))
    [entry] = [
        r
        for r in store.list_runs(dag_id="cherry_backfill", run_id=stuck.run_id)
        if r.task_id == "practice.sync_patients"
    ]
    assert (entry.status, entry.details.get("reason")) == ("failed", "task_timeout")

    env.crm.clear_faults()
    done = run_dag(env, "cherry_backfill", timeout=300, practices=[PRACTICE], page_size=20)
    assert done.state == "success"
    contacts = env.crm.location_state(env.crm.locations[LOCATION].id)["contacts"]
    assert contacts and not duplicates_by_contact_point(contacts)
