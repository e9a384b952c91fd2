"""What every Cherry Sync DAG file shares: default args, the practice picker, the contacts Asset.

Nothing here touches the network, a database or Airflow Variables: DAG files import it at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from airflow.sdk import Asset, Param, task

from cherry_sync.notify import OperatorsFailureNotifier
from cherry_sync.reasons import ReasonCode

OWNER = "cherry-sync"

# One pool per kind of work (include/pools.json), so a long backfill or media import never holds the slots the
# refresh, the smart list or the monthly email need; sizing in docs/scale.md. Pools cap how many tasks run at
# once; the request rate itself is paced per API key or CRM location by the shared limiter (hooks/pacing.py).
BACKFILL_POOL = "cherry_sync_backfill"
REFRESH_POOL = "cherry_sync_refresh"
SMART_LIST_POOL = "cherry_sync_smart_list"
MEDIA_POOL = "cherry_sync_media"
CHERRY_API_POOL = "cherry_sync_cherry_api"  # the monthly metrics email: Cherry's API only
POOLS = (BACKFILL_POOL, REFRESH_POOL, SMART_LIST_POOL, MEDIA_POOL, CHERRY_API_POOL)
# The refresh's tasks go first when the scheduler must choose which waiting tasks to queue.
REFRESH_PRIORITY = {"priority_weight": 100, "weight_rule": "absolute"}

# Announced by cherry_backfill and cherry_refresh when a run wrote contacts (its extra names the practices);
# cherry_smart_list is scheduled on it.
CHERRY_CONTACTS = Asset(name="cherry_contacts", uri="cherry-sync://crm/contacts", group="cherry-sync")

# A mapped practice task's label in the UI: its practice's slug, or its batch's first and last slug and size
# (`cherry_sync.batches`). The DAGs render templates as native objects (`render_template_as_native_obj=True`: a
# param reaches its operator as the form's boolean, integer or None), and rendered natively a digit-only slug
# ("2024") would become a number, which Airflow cannot use as a label; as a JSON string it stays text.
PRACTICE_LABEL = "{{ task.label | string | tojson }}"

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
    # After the last retry: email the operators (the SMTP connection's `ops_email` extra), no patient data.
    "on_failure_callback": OperatorsFailureNotifier(),
}


@dataclass(frozen=True)
class RunBudget:
    """How long one DAG's tasks and runs may take, with the retries that fit inside.

    Airflow ends a task that runs past `task_timeout` (`execution_timeout`: a hung API call no longer holds the
    run, and with `max_active_runs=1` every later run, forever) and retries it like any failure; the work is
    resumable, so a retry carries on where the stopped try was. The run's own limit (`dagrun_timeout`) leaves
    room for every try of the longest task, the waits between them and the closing tasks, so it only ends a run
    that is stuck some other way (e.g. tasks queued behind a pool that never frees).
    """

    task_timeout: timedelta
    retries: int = 3
    queueing: timedelta = timedelta(minutes=30)  # practices waiting for a pool slot, and the closing tasks

    def retry_waits(self) -> timedelta:
        """The longest total wait between tries (exponential backoff from `retry_delay`, capped)."""
        base, cap = DEFAULT_ARGS["retry_delay"], DEFAULT_ARGS["max_retry_delay"]
        return sum((min(cap, base * 2**n) for n in range(self.retries)), timedelta())

    @property
    def dagrun_timeout(self) -> timedelta:
        return (self.retries + 1) * self.task_timeout + self.retry_waits() + self.queueing

    def default_args(self) -> dict:
        return {**DEFAULT_ARGS, "retries": self.retries, "execution_timeout": self.task_timeout}


# One practice's task at HighLevel's 9.5 requests per second: a backfill of 100,000 patients is ~3 hours (and
# resumes from its checkpoint after a timeout); a refresh of one 5-minute batch of events takes seconds.
BACKFILL_BUDGET = RunBudget(task_timeout=timedelta(hours=4))
REFRESH_BUDGET = RunBudget(task_timeout=timedelta(minutes=20), retries=2, queueing=timedelta(minutes=10))
SMART_LIST_BUDGET = RunBudget(task_timeout=timedelta(hours=1))
MEDIA_IMPORT_BUDGET = RunBudget(task_timeout=timedelta(hours=2))
METRICS_EMAIL_BUDGET = RunBudget(task_timeout=timedelta(minutes=30))


class RunbookRow(NamedTuple):
    """One row of a DAG's "If it fails" table: reason codes -> what to do -> which connection (or file)."""

    codes: tuple[ReasonCode, ...]
    action: str
    where: str


def failure(*codes: ReasonCode, action: str, where: str) -> RunbookRow:
    """A runbook row for one reason code, or for several that call for the same action."""
    return RunbookRow(codes, action, where)


# "If it fails" rows every DAG shares: the reason code in the run ledger (and the failed task's one-sentence error)
# -> what to do -> which connection. DAG files add their own rows with `runbook()`.
COMMON_FAILURES = (
    failure(
        ReasonCode.AUTH_FAILED,
        action="The key or token was refused: replace it.",
        where="`cherry_<practice>` (API key) or `crm_<practice>` (token)",
    ),
    failure(
        ReasonCode.KEY_NOT_ACTIVATED,
        action="The practice generated a Cherry key but has not activated it: ask them to.",
        where="`cherry_<practice>`",
    ),
    failure(
        ReasonCode.FORBIDDEN,
        action="The token may not use this location: check `location_id` and the token's scopes.",
        where="`crm_<practice>`",
    ),
    failure(
        ReasonCode.UNAVAILABLE,
        ReasonCode.TIMEOUT,
        ReasonCode.SERVER_ERROR,
        action="The API did not answer after the retries: the next run carries on where this one stopped; check the "
        "host if it persists.",
        where="the practice's two connections (host)",
    ),
    failure(
        ReasonCode.DAILY_BUDGET_EXHAUSTED,
        action="The location spent its 200,000 requests today: the practice is deferred (task skipped) and resumes "
        "tomorrow.",
        where="`crm_<practice>` (`daily_reserve`)",
    ),
    failure(
        ReasonCode.TIMEZONE_MISMATCH,
        action="Registry, Cherry and CRM location zones disagree: fix the wrong one, or set `timezone_pinned`.",
        where="`include/practices.yml`",
    ),
    failure(
        ReasonCode.TASK_TIMEOUT,
        action="The task ran past its `execution_timeout` (AirflowTaskTimeout; docs/deployment.md): it is retried "
        "and resumes; a repeat means an API hangs.",
        where="-",
    ),
)


def runbook(doc: str, *rows: RunbookRow) -> str:
    """`doc` with its "If it fails" section: this DAG's own rows first, then the ones every DAG shares."""
    lines = ["", "#### If it fails", "", "| reason code | what to do | where |", "|---|---|---|"]
    lines += [
        f"| {' / '.join(f'`{code}`' for code in row.codes)} | {row.action} | {row.where} |"
        for row in (*rows, *COMMON_FAILURES)
    ]
    lines += [
        "",
        "The run ledger (`run_ledger` in the sync store) and the failure email carry the reason code; the "
        "other practices of the run are not affected.",
    ]
    return doc.rstrip() + "\n" + "\n".join(lines) + "\n"


def practice_choices() -> dict[str, str]:
    """The registry file's practices for the trigger form's picker: slug -> label, in file order.

    The label is the display name with the slug (what logs, task names and the store show), and says when a
    practice is switched off. A plain local read with no validation: whether a chosen practice exists, is
    enabled and valid is decided at run time from the registry as it is then.
    """
    from cherry_sync.context import default_registry_path
    from cherry_sync.registry_file import RegistryFileError, read_entries

    try:
        entries = read_entries(default_registry_path())  # libyaml, parsed once per parse process
    except RegistryFileError:
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


def practices_per_task_param() -> Param:
    from cherry_sync.batches import DEFAULT_PRACTICES_PER_TASK, PRACTICES_PER_TASK_ENV, default_practices_per_task

    return Param(
        default_practices_per_task(),
        type="integer",
        minimum=1,
        maximum=100,
        title="Practices per task",
        description="At most this many practices run one after the other in one task instance (a run with fewer "
        f"than 8 practices gives each its own). Default ${PRACTICES_PER_TASK_ENV}, else "
        f"{DEFAULT_PRACTICES_PER_TASK}; docs/scale.md.",
    )


# The planners return the practices' registry entries (configuration, which includes the report recipients'
# addresses): XCom carries them to the practice tasks, the task log does not repeat them.
@task(show_return_value_in_logs=False)
def select_practices(params=None) -> list[dict]:
    """The enabled practices chosen in the trigger form (every enabled practice when none is chosen), in batches:
    the registry is read and validated here, once per run (`cherry_sync.batches`)."""
    from cherry_sync.tasks import practice_batches

    return practice_batches(params["practices"], params.get("practices_per_task"))


@task(show_return_value_in_logs=False)
def select_changed_practices(params=None, triggering_asset_events=None) -> list[dict]:
    """The smart list's practices, in batches: those the triggering `cherry_contacts` events name (contacts were
    written for them), or for a manual or the daily run those chosen in the form (empty: every enabled one)."""
    from cherry_sync.tasks import changed_practice_batches

    extras = [event.extra for events in (triggering_asset_events or {}).values() for event in events]
    return changed_practice_batches(extras, params["practices"], params.get("practices_per_task"))


@task(trigger_rule="all_done", outlets=[CHERRY_CONTACTS])
def announce_contact_changes(params=None, run_id=None, dag=None, outlet_events=None) -> dict:
    """Update the `cherry_contacts` Asset (which schedules the smart list) only when this run wrote contacts, naming
    the practices that did; skipped (no Asset event, no smart-list run) when none did or in a dry run."""
    from airflow.sdk.exceptions import AirflowSkipException

    from cherry_sync.tasks import practices_with_contact_changes

    if params.get("dry_run"):
        raise AirflowSkipException("a dry run writes no contact: the smart list is not scheduled")
    changed = practices_with_contact_changes(run_id, dag.dag_id)
    if not changed:
        raise AirflowSkipException("no contact was written: the smart list has nothing to recompute")
    outlet_events[CHERRY_CONTACTS].extra = {"practices": changed}
    return {"practices_changed": len(changed)}


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
