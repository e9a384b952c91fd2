"""Smart-list test harness: real Cherry and CRM sandboxes on loopback, a real store (SQLite and PostgreSQL).

`smart_env` gives a `SmartEnv` (the shared `SandboxEnv` of tests/fixtures/sandbox_env.py): Cherry practices synced into CRM locations by the real backfill and refresh
(`cherry_sync.sync.practice_runs`), and helpers to move patients across statuses and the balance threshold in
Cherry (through the sandbox's own lifecycle, announced by events), to run the smart list for a practice, and to
compare the CRM's tags with the membership computed independently in Python (`segments_of` over the store's
patient states). Time is scaled as in tests/sync: 100 CRM requests per 1 s per location, fast hook retries.

A fallback to per-contact calls runs them through a `WriteWindow`; `use_window(env, n)` pins it to `n` in flight
and, for n > 1, adds 50 ms to every CRM request so the calls really overlap (`env.set_faults` keeps it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cherry_sync.hooks.base import RetrySettings
from cherry_sync.registry import PracticeConfig
from cherry_sync.smart_list.run import update_smart_list
from cherry_sync.smart_list.segments import SegmentPlan, segments_of
from cherry_sync.store import SyncStore
from cherry_sync.sync.practice_runs import backfill_practice, refresh_practice
from tests.fixtures.sandbox_env import SandboxEnv, SandboxEnvs
from tests.fixtures.sandbox_env import use_window as use_window

FAST_RETRY = RetrySettings(
    backoff_initial=0.01, backoff_max=0.05, read_timeout=2.0, max_elapsed_seconds=30.0, max_attempts=3
)


@dataclass
class SmartEnv(SandboxEnv):
    """Cherry practice i is synced into CRM location i, as practice `practice-i`."""

    cherry_settings: ClassVar[dict[str, Any]] = {"seed": 11, "practices": 1, "patients_per_practice": 60}

    retry: RetrySettings = FAST_RETRY
    export_dir: Path | None = None
    # Every tag any configuration of the practice used, so renamed-away tags are compared too.
    seen_tags: dict[int, set[str]] = field(default_factory=dict)

    # -- practices and runs ----------------------------------------------------------------------

    def practice(self, index: int = 0, **options: Any) -> PracticeConfig:
        config = super().practice(index, **options)
        self.seen_tags.setdefault(index, set()).update(SegmentPlan.from_practice(config).managed_tags)
        return config

    configure = practice  # the name the smart-list tests use

    def backfill(self, index: int = 0) -> None:
        backfill_practice(self.context(index), scope="all")

    def refresh(self, index: int = 0) -> None:
        refresh_practice(self.context(index))

    def smart_list(self, index: int = 0, **kwargs: Any) -> dict:
        return update_smart_list(self.context(index), export_dir=self.export_dir, **kwargs)

    # -- Cherry changes (the sandbox's own lifecycle, announced by patient.refreshed) -------------

    def move(self, patient_id: str, how: str, amount: str = "6000.00") -> None:
        """deactivate | expire | approve (ACTIVE, balance = amount) | spend (amount) | eligible (increase)."""
        state = self.cherry.state
        with state.lock:
            book = state.find_patient_book(patient_id)
            life = book.lives[patient_id]
            state.offset_seconds += 60
            t = state.now_epoch()
            if how == "deactivate":
                version = life.deactivate(t)
            elif how == "expire":
                version = life.expire(t)
            elif how == "approve":
                version = life.approve(t, Decimal(amount), t)
            elif how == "spend":
                version = life.spend(t, Decimal(amount))
            elif how == "eligible":
                if life.status != "ACTIVE":
                    life.approve(t, Decimal(amount), t)
                life.purchases = max(1, life.purchases)
                life.increase_dice = 0.0
                version = life.touch(t)
            else:
                raise ValueError(how)
            book.write_patient(version)
            book.emit("patient.refreshed", version, version.updated_at)

    # -- what the CRM shows, and what it should ---------------------------------------------------

    def crm_contacts(self, index: int = 0) -> dict[str, dict]:
        return {c["id"]: c for c in self.crm.location_state(self.location_id(index), lists=True)["contacts"]}

    def crm_tags(self, index: int = 0) -> dict[str, frozenset[str]]:
        """Per contact, the product-managed tags it carries (any tag name this practice ever configured)."""
        managed = self.seen_tags.get(index, set())
        found = {
            cid: frozenset(t for t in c.get("tags") or () if t in managed)
            for cid, c in self.crm_contacts(index).items()
        }
        return {cid: tags for cid, tags in found.items() if tags}

    def expected_tags(self, index: int = 0) -> dict[str, frozenset[str]]:
        """Per member contact, the tags its segments call for (see `expected_tags`)."""
        return expected_tags(self.store, self.practices[index])

    def assert_list_matches(self, index: int = 0) -> None:
        actual, expected = self.crm_tags(index), self.expected_tags(index)
        diff = {
            cid: (actual.get(cid), expected.get(cid))
            for cid in set(actual) | set(expected)
            if actual.get(cid) != expected.get(cid)
        }
        assert not diff, f"{len(diff)} contacts differ (crm, expected): {dict(list(diff.items())[:5])}"

    def crm_writes(self, index: int = 0) -> int:  # type: ignore[override]
        """How many write requests reached the CRM for the location (the smart-list tests compare a count)."""
        return sum(super().crm_writes(index).values())

    def patients_with_contacts(self, index: int = 0) -> list[str]:
        return sorted(s.patient_id for s in self.store.iter_patient_states(self.slug(index)) if s.crm_contact_id)


def expected_tags(store: SyncStore, practice: PracticeConfig) -> dict[str, frozenset[str]]:
    """Per member contact, the tags its segments call for: Python's rule over the store's patient states."""
    plan = SegmentPlan.from_practice(practice)
    wanted: dict[str, set[str]] = {}
    for state in store.iter_patient_states(practice.slug):
        if not state.crm_contact_id:
            continue
        segments = segments_of(
            state.account_status, state.balance_available, state.snapshot.get("increase_eligible"), plan.threshold
        )
        wanted.setdefault(state.crm_contact_id, set()).update(plan.tags[name] for name in segments)
    return {cid: frozenset(tags) for cid, tags in wanted.items()}


@pytest.fixture
def smart_env(store: SyncStore, sandbox_envs: SandboxEnvs, tmp_path) -> SmartEnv:
    """1 Cherry practice x 60 patients (seed 11, every status), 1 CRM location, backfilled; both store backends."""
    return _smart_env(sandbox_envs.build(SmartEnv, store=store, export_dir=tmp_path / "exports"))


@pytest.fixture
def sqlite_smart_env(sandbox_envs: SandboxEnvs, tmp_path) -> SmartEnv:
    """As `smart_env`, on a SQLite store only: for scenarios about the CRM side (faults), whose store queries the
    `smart_env` tests already cover on both backends (keeps the suite fast)."""
    return _smart_env(sandbox_envs.build(SmartEnv, store="sqlite", export_dir=tmp_path / "exports"))


def _smart_env(env: SmartEnv) -> SmartEnv:
    env.configure(0)
    env.backfill(0)
    return env
