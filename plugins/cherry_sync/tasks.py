"""Plain functions behind the DAGs' small @task steps (selection and summaries). No patient data."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from cherry_sync.context import STORE_CONN_ID
from cherry_sync.registry import Registry, RegistryFileError
from cherry_sync.runtime import registry
from cherry_sync.store import get_store

log = logging.getLogger(__name__)


def select_practices(requested: Iterable[str] | None) -> list[str]:
    """Enabled, valid practices, limited to `requested` when given. Unknown or disabled requests are logged."""
    reg = registry()
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
