"""Practice batches: how one DAG run hands its practices to its mapped tasks.

A run's first task reads and validates the registry once and splits the chosen practices into batches; each mapped
task instance receives one batch: the practices' validated registry entries (configuration only: slugs, connection
ids, options; never a secret, never patient data) and any per-practice arguments (the refresh's `read_feed`). The
practice tasks therefore never read the registry file themselves.

Sizing. A task instance costs Airflow about a CPU-second whatever it does (a process, imports, the API round
trips of its start and end), so at hundreds of practices one task per practice spends more on Airflow than on the
sync. A batch holds at most `practices_per_task` practices, but a run never makes fewer than `min_tasks()` task
instances (8, or `$CHERRY_SYNC_MIN_TASKS_PER_RUN`) while it has that many practices: a small deployment keeps one task per practice (its practices run in
parallel, and a task's label is its practice), a large one gets fewer, fuller tasks. The number of batches never
exceeds `MAX_TASKS`, under Airflow's `max_map_length` (1,024 task instances per mapped task): past
`MAX_TASKS * practices_per_task` practices, batches grow instead.

Isolation inside a batch is `PracticeOperator`'s job: each practice has its own ledger row and its own outcome;
one practice's failure fails or defers that practice only, and the task's retry skips the practices already done.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # DAG files import this module at parse time (the form's default): the registry model waits
    from cherry_sync.registry import PracticeConfig

PRACTICES_PER_TASK_ENV = "CHERRY_SYNC_PRACTICES_PER_TASK"
DEFAULT_PRACTICES_PER_TASK = 10
MIN_TASKS_ENV = "CHERRY_SYNC_MIN_TASKS_PER_RUN"
MIN_TASKS = 8  # up to this many practices: one task each (the pools' size, so a small run stays parallel)
MAX_TASKS = 1000  # Airflow's [core] max_map_length is 1,024


def default_practices_per_task() -> int:
    """`$CHERRY_SYNC_PRACTICES_PER_TASK` when it is a whole number >= 1, else 10 (the trigger forms' default)."""
    value = os.environ.get(PRACTICES_PER_TASK_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) >= 1 else DEFAULT_PRACTICES_PER_TASK


def min_tasks() -> int:
    """`$CHERRY_SYNC_MIN_TASKS_PER_RUN` when it is a whole number >= 1, else 8."""
    value = os.environ.get(MIN_TASKS_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) >= 1 else MIN_TASKS


@dataclass(frozen=True)
class PracticeWork:
    """One practice's share of a batch: its validated registry entry and its own arguments."""

    practice: PracticeConfig
    arguments: Mapping[str, Any]

    @property
    def slug(self) -> str:
        return self.practice.slug


def batch_sizes(practices: int, practices_per_task: int, at_least: int | None = None) -> list[int]:
    """How many practices each batch gets, as even as possible (see the module docstring for the rule);
    `at_least`: the fewest tasks while there are that many practices (default `min_tasks()`)."""
    if practices <= 0:
        return []
    per_task = max(1, practices_per_task)
    floor = min_tasks() if at_least is None else max(1, at_least)
    tasks = max(math.ceil(practices / per_task), min(practices, floor))
    tasks = min(tasks, MAX_TASKS)
    base, extra = divmod(practices, tasks)
    return [base + (1 if index < extra else 0) for index in range(tasks)]


def batch_label(slugs: Sequence[str]) -> str:
    """The UI label of a batch's task instance: its practice, or its first and last practice and how many."""
    if len(slugs) == 1:
        return slugs[0]
    return f"{slugs[0]} .. {slugs[-1]} ({len(slugs)})"


def plan_batches(
    practices: Sequence[PracticeConfig],
    practices_per_task: int,
    arguments: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The batches for a run, in the practices' order, as JSON for XCom: `[{"label", "practices": [{"entry",
    "arguments"}]}]`. `arguments` maps a slug to that practice's own operator arguments."""
    batches: list[dict[str, Any]] = []
    start = 0
    for size in batch_sizes(len(practices), practices_per_task):
        batches.append(_batch(practices[start : start + size], arguments or {}))
        start += size
    return batches


def _batch(practices: Sequence[PracticeConfig], arguments: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "label": batch_label([practice.slug for practice in practices]),
        "practices": [
            {"entry": practice.model_dump(mode="json"), "arguments": dict(arguments.get(practice.slug, {}))}
            for practice in practices
        ],
    }


def unpack_batch(batch: Mapping[str, Any]) -> list[PracticeWork]:
    """A batch's practices back as validated entries (no file read). Raises `ValueError` for a malformed batch."""
    from cherry_sync.registry import PracticeConfig

    items = batch.get("practices") if isinstance(batch, Mapping) else None
    if not isinstance(items, list):
        raise ValueError("a practice batch holds a list under 'practices'")
    work = []
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("entry"), Mapping):
            raise ValueError("each practice of a batch holds its registry entry under 'entry'")
        work.append(PracticeWork(PracticeConfig.model_validate(item["entry"]), dict(item.get("arguments") or {})))
    return work


def batch_of(*slugs: str, registry_path: str | None = None) -> dict[str, Any]:
    """One batch of these practices from the registry as it is now (an operator used outside the product's DAGs,
    e.g. in a one-off DAG or a test). Raises `KeyError` for a slug that is not a valid entry."""
    from cherry_sync.registry import load_registry

    reg = load_registry(registry_path)
    practices = []
    for slug in slugs:
        practice = reg.get(slug)
        if practice is None:
            raise KeyError(f"practice {slug} is not a valid entry of the registry")
        practices.append(practice)
    return _batch(practices, {})
