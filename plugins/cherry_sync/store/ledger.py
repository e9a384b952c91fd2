"""The run ledger: one row per (run, DAG, practice, task) with its status and counters.

`start_run` is idempotent on retry: the same key reuses its row, bumps `attempts` and resets it to running.
A run-level row (no task) stores task_id as '' because NULLs never collide in a unique key; the API speaks None.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from cherry_sync.store.base import StoreBase
from cherry_sync.store.models import LedgerEntry, RunCounts
from cherry_sync.store.schema import RUN_STATUSES
from cherry_sync.store.schema import run_ledger as ledger

_COUNT_COLUMNS = {
    "read": "read_count",
    "created": "created_count",
    "updated": "updated_count",
    "unchanged": "unchanged_count",
    "rejected": "rejected_count",
    "api_calls": "api_calls",
}
_ZERO_COUNTS = {column: 0 for column in _COUNT_COLUMNS.values()}


def _entry(row) -> LedgerEntry:
    data = row._mapping
    return LedgerEntry(
        id=data["id"],
        run_id=data["run_id"],
        dag_id=data["dag_id"],
        task_id=data["task_id"] or None,
        practice_slug=data["practice_slug"],
        status=data["status"],
        attempts=data["attempts"],
        started_at=data["started_at"],
        finished_at=data["finished_at"],
        counts=RunCounts(**{name: data[column] for name, column in _COUNT_COLUMNS.items()}),
        details=data["details"] or {},
    )


class LedgerQueries(StoreBase):
    """Starts, finishes and lists ledger rows."""

    def start_run(self, run_id: str, dag_id: str, slug: str, task_id: str | None = None) -> int:
        """Open (or, on a retry, reopen) the ledger row for this work; returns its id."""
        now = self._now()
        ins = self._insert(ledger).values(
            run_id=run_id,
            dag_id=dag_id,
            practice_slug=slug,
            task_id=task_id or "",
            status="running",
            attempts=1,
            started_at=now,
            finished_at=None,
            details={},
            **_ZERO_COUNTS,
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[ledger.c.run_id, ledger.c.dag_id, ledger.c.practice_slug, ledger.c.task_id],
            set_={
                "status": "running",
                "attempts": ledger.c.attempts + 1,
                "started_at": now,
                "finished_at": None,
                "details": {},
                **_ZERO_COUNTS,
            },
        ).returning(ledger.c.id)
        with self.engine.begin() as conn:
            return conn.execute(stmt).scalar_one()

    def finish_run(
        self,
        ledger_id: int,
        status: str,
        counts: RunCounts | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Close a ledger row with its outcome. `details` is JSON (rejects by reason, calls per endpoint…),
        never patient data."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"finish status must be one of {[s for s in RUN_STATUSES if s != 'running']}")
        counts = counts or RunCounts()
        values = {column: getattr(counts, name) for name, column in _COUNT_COLUMNS.items()}
        with self.engine.begin() as conn:
            result = conn.execute(
                update(ledger)
                .where(ledger.c.id == ledger_id)
                .values(status=status, finished_at=self._now(), details=dict(details or {}), **values)
            )
        if result.rowcount == 0:
            raise LookupError(f"no run ledger row {ledger_id}")

    def get_run(self, ledger_id: int) -> LedgerEntry | None:
        with self.engine.begin() as conn:
            row = conn.execute(select(ledger).where(ledger.c.id == ledger_id)).first()
        return _entry(row) if row else None

    def task_outcomes(self, run_id: str, dag_id: str, task_id: str, slugs: list[str]) -> dict[str, LedgerEntry]:
        """The ledger rows of one task of one run for these practices, by practice (a task's earlier tries)."""
        if not slugs:
            return {}
        query = select(ledger).where(
            ledger.c.run_id == run_id,
            ledger.c.dag_id == dag_id,
            ledger.c.task_id == task_id,
            ledger.c.practice_slug.in_(slugs),
        )
        with self.engine.begin() as conn:
            return {entry.practice_slug: entry for entry in map(_entry, conn.execute(query))}

    def list_runs(
        self,
        *,
        slug: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[LedgerEntry]:
        """Ledger rows, newest first, filtered by any of practice, DAG, run and start time."""
        query = select(ledger)
        if slug is not None:
            query = query.where(ledger.c.practice_slug == slug)
        if dag_id is not None:
            query = query.where(ledger.c.dag_id == dag_id)
        if run_id is not None:
            query = query.where(ledger.c.run_id == run_id)
        if since is not None:
            query = query.where(ledger.c.started_at >= since)
        query = query.order_by(ledger.c.started_at.desc(), ledger.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.begin() as conn:
            return [_entry(row) for row in conn.execute(query)]
