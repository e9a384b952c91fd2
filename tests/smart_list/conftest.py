"""Smart-list test harness: real Cherry and CRM sandboxes on loopback, a real store (SQLite and PostgreSQL).

`smart_env` gives a `SmartEnv`: Cherry practices synced into CRM locations by the real backfill and refresh
(`cherry_sync.sync.practice_runs`), and helpers to move patients across statuses and the balance threshold in
Cherry (through the sandbox's own lifecycle, announced by events), to run the smart list for a practice, and to
compare the CRM's tags with the membership computed independently in Python (`segments_of` over the store's
patient states). Time is scaled as in tests/sync: 100 CRM requests per 1 s per location, fast hook retries.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Connection

from cherry_sync.hooks.base import RetrySettings
from cherry_sync.hooks.cherry import CherryHook
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.hooks.pacing import MemoryPacer
from cherry_sync.registry import PracticeConfig
from cherry_sync.smart_list import update_smart_list
from cherry_sync.smart_list.segments import SegmentPlan, segments_of
from cherry_sync.store import SyncStore
from cherry_sync.sync.practice_runs import PracticeContext, backfill_practice, refresh_practice
from sandbox.cherry.testing import CherrySandbox
from sandbox.crm.testing import CrmSandbox, start_crm_sandbox

CRM_LIMITS = {"burst_limit": 100, "burst_window_seconds": 1.0}
FAST_RETRY = RetrySettings(
    backoff_initial=0.01, backoff_max=0.05, read_timeout=2.0, max_elapsed_seconds=30.0, max_attempts=3
)
WRITE_METHODS = ("POST", "PUT", "DELETE", "PATCH")
READS_BY_POST = frozenset({"POST /contacts/search"})


def is_write(endpoint: str) -> bool:
    return endpoint.split(" ", 1)[0] in WRITE_METHODS and endpoint not in READS_BY_POST


@dataclass
class SmartEnv:
    """Cherry practice i is synced into CRM location i, as practice `practice-i`."""

    cherry: CherrySandbox
    crm: CrmSandbox
    store: SyncStore
    export_dir: Path
    pacer: MemoryPacer = field(default_factory=MemoryPacer)
    practices: dict[int, PracticeConfig] = field(default_factory=dict)
    # Every tag any configuration of the practice used, so renamed-away tags are compared too.
    seen_tags: dict[int, set[str]] = field(default_factory=dict)

    # -- practices and runs ----------------------------------------------------------------------

    def configure(self, index: int = 0, **options: Any) -> PracticeConfig:
        info = self.cherry.practices[index]
        config = PracticeConfig.model_validate(
            {
                "slug": f"practice-{index}",
                "display_name": f"Practice {index}",
                "timezone": info.timezone,
                "cherry_conn_id": f"cherry_{index}",
                "crm_conn_id": f"crm_{index}",
                "options": options,
            }
        )
        self.store.sync_practices([config])
        self.practices[index] = config
        self.seen_tags.setdefault(index, set()).update(SegmentPlan.from_practice(config).managed_tags)
        return config

    def ctx(self, index: int = 0, retry: RetrySettings | None = None) -> PracticeContext:
        """A fresh context (new hooks: call counters start at zero)."""
        practice = self.practices.get(index) or self.configure(index)
        loc = self.crm.locations[index]
        cherry = CherryHook(
            practice.cherry_conn_id,
            connection=Connection(
                conn_id=practice.cherry_conn_id,
                conn_type="http",
                host=self.cherry.base_url,
                password=self.cherry.practices[index].api_key,
            ),
            pacer=self.pacer,
            retry=retry or FAST_RETRY,
        )
        crm = AesthetixCrmHook(
            practice.crm_conn_id,
            connection=Connection(
                conn_id=practice.crm_conn_id,
                conn_type="http",
                host=self.crm.base_url,
                password=loc.token,
                extra=json.dumps({"location_id": loc.id, "burst_window_seconds": 1}),
            ),
            pacer=self.pacer,
            retry=retry or FAST_RETRY,
        )
        return PracticeContext(practice=practice, store=self.store, cherry=cherry, crm=crm)

    def backfill(self, index: int = 0) -> None:
        backfill_practice(self.ctx(index), scope="all")

    def refresh(self, index: int = 0) -> None:
        refresh_practice(self.ctx(index))

    def smart_list(self, index: int = 0, **kwargs: Any) -> dict:
        return update_smart_list(self.ctx(index), export_dir=self.export_dir, **kwargs)

    def slug(self, index: int = 0) -> str:
        return f"practice-{index}"

    def location_id(self, index: int = 0) -> str:
        return self.crm.locations[index].id

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
        """Per member contact, the tags its segments call for: Python's rule over the store's patient states."""
        plan = SegmentPlan.from_practice(self.practices[index])
        wanted: dict[str, set[str]] = {}
        for state in self.store.iter_patient_states(self.slug(index)):
            if not state.crm_contact_id:
                continue
            segments = segments_of(
                state.account_status, state.balance_available, state.snapshot.get("increase_eligible"), plan.threshold
            )
            wanted.setdefault(state.crm_contact_id, set()).update(plan.tags[name] for name in segments)
        return {cid: frozenset(tags) for cid, tags in wanted.items()}

    def assert_list_matches(self, index: int = 0) -> None:
        actual, expected = self.crm_tags(index), self.expected_tags(index)
        diff = {
            cid: (actual.get(cid), expected.get(cid))
            for cid in set(actual) | set(expected)
            if actual.get(cid) != expected.get(cid)
        }
        assert not diff, f"{len(diff)} contacts differ (crm, expected): {dict(list(diff.items())[:5])}"

    def endpoint_counts(self, index: int = 0) -> Counter:
        by_key = self.crm.stats()["by_key"].get(self.location_id(index), {})
        return Counter(by_key.get("endpoints", {}))

    def crm_requests(self, index: int = 0) -> int:
        return sum(self.endpoint_counts(index).values())

    def crm_writes(self, index: int = 0) -> int:
        return sum(n for ep, n in self.endpoint_counts(index).items() if is_write(ep))

    def patients_with_contacts(self, index: int = 0) -> list[str]:
        return sorted(s.patient_id for s in self.store.iter_patient_states(self.slug(index)) if s.crm_contact_id)


@pytest.fixture
def smart_env(store: SyncStore, tmp_path) -> Iterator[SmartEnv]:
    """1 Cherry practice x 60 patients (seed 11, every status), 1 CRM location, backfilled; both store backends."""
    cherry = CherrySandbox.start(seed=11, practices=1, patients_per_practice=60)
    crm = start_crm_sandbox(locations=1, rate_limits=CRM_LIMITS)
    env = SmartEnv(cherry, crm, store, tmp_path / "exports")
    env.configure(0)
    env.backfill(0)
    yield env
    cherry.stop(wait=False)
    crm.stop(wait=False)
    env.pacer.close()
