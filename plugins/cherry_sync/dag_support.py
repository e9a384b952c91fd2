"""What every Cherry Sync DAG file shares: default args, the practice picker, the contacts Asset.

Nothing here touches the network, a database or Airflow Variables: DAG files import it at parse time.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import yaml
from airflow.sdk import Asset, Param, task

from cherry_sync.notify import OperatorsFailureNotifier

OWNER = "cherry-sync"

# Pools (include/pools.json) cap how many tasks call one API at once; the request rate itself is paced per API key
# or CRM location by the shared limiter (hooks/pacing.py). A task that calls both APIs takes the CRM's pool.
CRM_API_POOL = "cherry_sync_crm_api"
CHERRY_API_POOL = "cherry_sync_cherry_api"

# Updated by cherry_backfill and cherry_refresh; cherry_smart_list is scheduled on it.
CHERRY_CONTACTS = Asset(name="cherry_contacts", uri="cherry-sync://crm/contacts", group="cherry-sync")

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
    # After the last retry: email the operators (the SMTP connection's `ops_email` extra), no patient data.
    "on_failure_callback": OperatorsFailureNotifier(),
}


def practice_choices() -> dict[str, str]:
    """The registry file's practices for the trigger form's picker: slug -> label, in file order.

    The label is the display name with the slug (what logs, task names and the store show), and says when a
    practice is switched off. A plain local read with no validation: whether a chosen practice exists, is
    enabled and valid is decided at run time from the registry as it is then.
    """
    from cherry_sync.registry import DEFAULT_PATH, ENV_VAR

    path = Path(os.environ.get(ENV_VAR) or DEFAULT_PATH)
    try:
        entries = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(entries, list):
        return {}
    choices: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("slug"), str) or entry["slug"] in choices:
            continue
        slug = entry["slug"]
        name = entry.get("display_name")
        label = f"{name.strip()} ({slug})" if isinstance(name, str) and name.strip() else slug
        if entry.get("enabled") is False:
            label += " - disabled, skipped if chosen"
        choices[slug] = label
    return choices


def practices_param() -> Param:
    """Practices picker: a multi-select of the registry's practices by name; empty (or cleared) means all.

    Airflow's form renders an array with `examples` as a multi-select and labels its options with
    `values_display`. "null" in the type makes the field optional in the form (no required mark), and is
    what the picker sends once cleared; both mean every enabled practice.
    """
    choices = practice_choices()
    return Param(
        [],
        type=["array", "null"],
        items={"type": "string"},
        examples=list(choices),
        values_display=choices,
        title="Practices",
        description="Which practices to run. Leave empty for every enabled practice of the registry "
        "(include/practices.yml).",
    )


def dry_run_param(what: str) -> Param:
    return Param(False, type="boolean", title="Dry run", description=f"Plan only: {what}, with zero CRM writes.")


def page_size_param() -> Param:
    return Param(
        500,
        type="integer",
        minimum=1,
        maximum=500,
        title="Page size",
        description="Records per Cherry API page (1-500). Smaller pages checkpoint more often.",
    )


@task
def select_practices(params=None) -> list[str]:
    """The enabled practices chosen in the trigger form (every enabled practice when none is chosen)."""
    from cherry_sync.tasks import select_practices as select

    return select(params["practices"])


@task(trigger_rule="all_done")
def summarize(run_id=None, dag=None) -> dict:
    """Totals of this run from the run ledger (counts only), whatever the practices' outcomes."""
    from cherry_sync.tasks import summarize_run

    return summarize_run(run_id, dag.dag_id)


@task(trigger_rule="one_failed", retries=0, on_failure_callback=None)
def fail_run_if_a_practice_failed() -> None:
    """Leaf that fails the DAG run when a practice's task failed, so the run shows failed in the UI.

    `summarize` runs whatever happens (all_done) and would otherwise make every run end "success". This task runs
    only when an upstream task failed; it sends no email of its own (the failed task already notified).
    """
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException("a practice's task failed (see the failed task instances); the other practices ran")
