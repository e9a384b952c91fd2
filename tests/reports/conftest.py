"""Metrics-report test harness: a Cherry sandbox, a store filled the way the sync fills it, and expectations
computed independently of the report code (tests/reports/helpers.py).

`report_env` (every store backend, through the `store` fixture) and `report_env_sqlite`: a `ReportEnv` with the
sandbox, the store, a practice config per sandbox practice (its own timezone, recipients), a fast-retry
`CherryHook`, `load_store(i)` (what a backfill leaves in the store for practice i) and `expected(i, start, end)`
(the report's figures recomputed from the sandbox's admin dumps and the store's patients).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from airflow.sdk import Connection

from cherry_sync.hooks.base import RetrySettings
from cherry_sync.hooks.cherry import CherryHook
from cherry_sync.hooks.pacing import MemoryPacer
from cherry_sync.registry import PracticeConfig
from cherry_sync.store import SyncStore
from sandbox.cherry.testing import CherrySandbox
from tests.reports.helpers import expected_figures, load_store_from_cherry

FAST_RETRY = RetrySettings(backoff_initial=0.01, backoff_max=0.05, max_attempts=2, read_timeout=5.0)
RECIPIENTS = {0: ["owner@glow.example", "frontdesk@glow.example"], 1: ["manager@lumen.example"]}
SLUGS = {0: "glow-aesthetics", 1: "lumen-medspa", 2: "harbor-dermatology"}


@dataclass
class ReportEnv:
    cherry: CherrySandbox
    store: SyncStore
    practices: dict[int, PracticeConfig] = field(default_factory=dict)

    def practice(self, index: int = 0, **options) -> PracticeConfig:
        info = self.cherry.practices[index]
        options = {"report_recipients": RECIPIENTS.get(index, []), **options}
        config = PracticeConfig.model_validate(
            {
                "slug": SLUGS[index],
                "display_name": info.name[:200],
                "timezone": info.timezone,
                "cherry_conn_id": f"cherry_{index}",
                "crm_conn_id": f"crm_{index}",
                "options": options,
            }
        )
        self.store.sync_practices([config])
        self.practices[index] = config
        return config

    def hook(self, index: int = 0) -> CherryHook:
        info = self.cherry.practices[index]
        return CherryHook(
            f"cherry_{index}",
            connection=Connection(
                conn_id=f"cherry_{index}", conn_type="http", host=self.cherry.base_url, password=info.api_key
            ),
            pacer=MemoryPacer(),
            retry=FAST_RETRY,
        )

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
def report_env(store, cherry_sandbox_factory) -> ReportEnv:
    cherry = cherry_sandbox_factory(seed=7, practices=2, patients_per_practice=120)
    return ReportEnv(cherry, store)


@pytest.fixture
def report_env_sqlite(sqlite_url, cherry_sandbox_factory) -> Iterator[ReportEnv]:
    """`report_env` on SQLite only (tests whose subject is not the store)."""
    from cherry_sync.store import engine_from_url, migrate
    from cherry_sync.store.engine import dispose_engine

    engine = engine_from_url(sqlite_url)
    migrate(engine)
    cherry = cherry_sandbox_factory(seed=7, practices=2, patients_per_practice=120)
    yield ReportEnv(cherry, SyncStore(engine))
    dispose_engine(sqlite_url)
