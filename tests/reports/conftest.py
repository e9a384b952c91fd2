"""Metrics-report test harness: a Cherry sandbox, a store filled the way the sync fills it, and expectations
computed independently of the report code (tests/reports/helpers.py).

`report_env` (every store backend, through the `store` fixture) and `report_env_sqlite`: a `ReportEnv` (the shared
`SandboxEnv` of tests/fixtures/sandbox_env.py, without a CRM) with the sandbox, the store, a practice config per sandbox practice (its own timezone, recipients), a fast-retry
`CherryHook`, `load_store(i)` (what a backfill leaves in the store for practice i) and `expected(i, start, end)`
(the report's figures recomputed from the sandbox's admin dumps and the store's patients).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest

from cherry_sync.hooks.base import RetrySettings
from cherry_sync.hooks.cherry import CherryHook
from cherry_sync.registry import PracticeConfig
from cherry_sync.store import SyncStore
from tests.fixtures.sandbox_env import SandboxEnv, SandboxEnvs
from tests.reports.helpers import expected_figures, load_store_from_cherry

FAST_RETRY = RetrySettings(backoff_initial=0.01, backoff_max=0.05, max_attempts=2, read_timeout=5.0)
RECIPIENTS = {0: ["owner@glow.example", "frontdesk@glow.example"], 1: ["manager@lumen.example"]}
SLUGS = {0: "glow-aesthetics", 1: "lumen-medspa", 2: "harbor-dermatology"}


@dataclass
class ReportEnv(SandboxEnv):
    """The Cherry sandbox's practices (no CRM) over a store filled as the sync fills it."""

    cherry_settings: ClassVar[dict[str, Any]] = {"seed": 7, "practices": 2, "patients_per_practice": 120}
    crm_settings: ClassVar[dict[str, Any] | None] = None

    retry: RetrySettings = FAST_RETRY

    def slug(self, index: int = 0) -> str:
        return SLUGS[index]

    def practice(self, index: int = 0, **options: Any) -> PracticeConfig:
        """As `SandboxEnv.practice`, with the index's report recipients unless `options` say otherwise."""
        return super().practice(index, **{"report_recipients": RECIPIENTS.get(index, []), **options})

    def hook(self, index: int = 0) -> CherryHook:
        return self.cherry_hook(index)

    def load_store(self, index: int = 0) -> None:
        load_store_from_cherry(self.store, self.cherry, index, self.practices[index].slug)

    def expected(self, index: int, start: date, end: date) -> dict[str, str]:
        practice = self.practices[index]
        return expected_figures(
            self.cherry, self.store, index, practice.slug, start, end, practice.options.segments.balance_threshold
        )

    def last_full_day(self, index: int = 0) -> date:
        """The sandbox's data ends at its clock; the last local day that ended before it."""
        now = datetime.fromisoformat(self.cherry.now().replace("Z", "+00:00"))
        return now.astimezone(ZoneInfo(self.cherry.practices[index].timezone)).date() - timedelta(days=1)


@pytest.fixture
def report_env(store: SyncStore, sandbox_envs: SandboxEnvs) -> ReportEnv:
    return sandbox_envs.build(ReportEnv, store=store)


@pytest.fixture
def report_env_sqlite(sandbox_envs: SandboxEnvs) -> ReportEnv:
    """`report_env` on SQLite only (tests whose subject is not the store)."""
    return sandbox_envs.build(ReportEnv, store="sqlite")
