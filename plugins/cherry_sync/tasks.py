"""Plain functions behind the DAGs' small @task steps (selection and summaries). No patient data."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from cherry_sync.batches import default_practices_per_task, plan_batches
from cherry_sync.context import STORE_CONN_ID
from cherry_sync.registry import Registry, RegistryFileError
from cherry_sync.runtime import registry
from cherry_sync.store import get_store

log = logging.getLogger(__name__)


def select_practices(requested: Iterable[str] | None, *, reg: Registry | None = None) -> list[str]:
    """Enabled, valid practices, limited to `requested` when given. Unknown or disabled requests are logged."""
    reg = reg or registry()
    enabled = [p.slug for p in reg.enabled()]
    wanted = [s for s in (requested or []) if s]
    if not wanted:
        chosen = enabled
    else:
        chosen = [s for s in wanted if s in enabled]
        for slug in wanted:
            if slug not in enabled:
                practice = reg.get(slug)
                why = "disabled" if practice is not None else "unknown or invalid"
                log.warning("practice %s skipped: %s in the registry", slug, why)
    get_store(STORE_CONN_ID).sync_practices(reg.practices)
    log.info("%d practice(s) selected: %s", len(chosen), ", ".join(chosen) or "none")
    return chosen


def practice_batches(
    requested: Iterable[str] | None,
    practices_per_task: int | None = None,
    arguments: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The run's practice batches (`cherry_sync.batches`): the registry read and validated once, the practices
    chosen as `select_practices` chooses them (every enabled one when `requested` is empty), split into batches of
    at most `practices_per_task` (default `$CHERRY_SYNC_PRACTICES_PER_TASK`, else 10)."""
    reg = registry()
    chosen = select_practices(requested, reg=reg)
    return plan_batches_for(reg, chosen, practices_per_task, arguments)


def plan_batches_for(
    reg: Registry,
    slugs: Iterable[str],
    practices_per_task: int | None,
    arguments: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """`slugs`' validated entries from `reg`, in batches of at most `practices_per_task` (see `practice_batches`)."""
    per_task = int(practices_per_task or default_practices_per_task())
    configs = [config for config in (reg.get(slug) for slug in slugs) if config is not None]
    batches = plan_batches(configs, per_task, arguments)
    log.info("%d practice(s) in %d task(s) of at most %d", len(configs), len(batches), max(per_task, 1))
    return batches


def changed_practice_batches(
    triggering_events: Iterable[Mapping[str, Any] | None],
    requested: Iterable[str] | None,
    practices_per_task: int | None = None,
) -> list[dict[str, Any]]:
    """The smart list's batches: with `triggering_events` (the extras of the `cherry_contacts` Asset events that
    started the run), only the enabled practices they name (all of them when an event names none: a producer that
    does not say); without (a manual or the daily run), as `practice_batches`."""
    extras = list(triggering_events)
    if not extras:
        return practice_batches(requested, practices_per_task)
    named: set[str] = set()
    for extra in extras:
        practices = (extra or {}).get("practices")
        if not isinstance(practices, list):
            return practice_batches(requested, practices_per_task)
        named.update(slug for slug in practices if isinstance(slug, str))
    reg = registry()
    get_store(STORE_CONN_ID).sync_practices(reg.practices)
    chosen = [practice.slug for practice in reg.enabled() if practice.slug in named]
    log.info("%d practice(s) changed contacts in the runs that triggered this one", len(chosen))
    return plan_batches_for(reg, chosen, practices_per_task)


def practices_with_contact_changes(run_id: str, dag_id: str) -> list[str]:
    """Practices whose tasks in this run wrote contacts (created or updated), or failed after perhaps writing some:
    those whose smart list membership can have changed."""
    entries = get_store(STORE_CONN_ID).list_runs(run_id=run_id, dag_id=dag_id)
    return sorted(
        {
            entry.practice_slug
            for entry in entries
            if entry.counts.created or entry.counts.updated or entry.status == "failed"
        }
    )


def _registry_or_defaults() -> Registry:
    """The registry; an unreadable file (already reported by the run's own tasks) leaves every alert at defaults."""
    try:
        return registry()
    except RegistryFileError as exc:
        log.error("alerts use the default thresholds: %s", exc)
        return Registry(practices=(), errors=())


def summarize_run(run_id: str, dag_id: str) -> dict:
    """Totals of one DAG run from the ledger, logged as a small table and returned (counts only); then the run's
    threshold alerts are evaluated per practice (`cherry_sync.alerts`), the operators told of each state change."""
    from cherry_sync.alerts import evaluate_run

    store = get_store(STORE_CONN_ID)
    entries = store.list_runs(run_id=run_id, dag_id=dag_id)
    per_practice: dict[str, dict] = {}
    for entry in entries:
        row = per_practice.setdefault(
            entry.practice_slug,
            {"status": [], "read": 0, "created": 0, "updated": 0, "unchanged": 0, "rejected": 0, "api_calls": 0},
        )
        row["status"].append(f"{entry.task_id}:{entry.status}")
        for name in ("read", "created", "updated", "unchanged", "rejected", "api_calls"):
            row[name] += getattr(entry.counts, name)
    log.info(
        "%-24s %6s %7s %7s %9s %8s %9s  %s",
        "practice",
        "read",
        "created",
        "updated",
        "unchanged",
        "rejected",
        "api_calls",
        "tasks",
    )
    for slug, row in sorted(per_practice.items()):
        log.info(
            "%-24s %6d %7d %7d %9d %8d %9d  %s",
            slug,
            row["read"],
            row["created"],
            row["updated"],
            row["unchanged"],
            row["rejected"],
            row["api_calls"],
            " ".join(row["status"]),
        )
    rejects = store.rejection_counts()
    if rejects:
        log.info("open rejections by reason (all runs): %s", rejects)
    warnings = store.warning_counts()
    if warnings:
        log.info("open warnings by reason (synced without a detail; all runs): %s", warnings)
    states = evaluate_run(store, _registry_or_defaults(), run_id, dag_id)
    raised = [f"{state.practice_slug}:{state.alert_kind}" for state in states if state.raised]
    if raised:
        log.warning("alerts raised for this DAG: %s", ", ".join(raised))
    return {
        "practices": per_practice,
        "open_rejections": rejects,
        "open_warnings": warnings,
        "alerts": [
            {"practice": state.practice_slug, "kind": state.alert_kind, "state": state.state} for state in states
        ],
    }
