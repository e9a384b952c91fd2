"""Threshold alert states (`alert_states`): one row per practice, DAG and alert kind, and its transitions.

`set_alert_state` records one evaluation: it keeps the state when it holds (only the measured value and the run
move on) and flips it, with a new `since` and a notice owed (`notified_at` NULL), when it changes. The first
evaluation of an alert that is fine owes no notice: nothing changed for the operators. The row is locked for the
read-then-write (PostgreSQL `SELECT ... FOR UPDATE`; SQLite's `BEGIN IMMEDIATE`, store/engine.py), so two
evaluations at once flip a state once. `mark_alert_notified` settles the notice of the state that began at `since`
only, so a notice sent late never settles a newer change.

`successful_runs` reads the run ledger for the silent-run rule: a practice's latest runs of a DAG whose every
ledger row succeeded.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, func, select, update

from cherry_sync.store.base import StoreBase
from cherry_sync.store.ledger import _entry
from cherry_sync.store.models import ALERT_OK, ALERT_RAISED, AlertState, AlertTransition, LedgerEntry
from cherry_sync.store.schema import run_ledger as ledger
from cherry_sync.store.schema_alerts import ALERT_KINDS
from cherry_sync.store.schema_alerts import alert_states as states


def _state(row) -> AlertState:
    return AlertState(**row._asdict())


class AlertQueries(StoreBase):
    """Reads and moves threshold alert states; reads the ledger's successful runs for the silent rule."""

    def alert_states(self, slug: str | None = None, *, dag_id: str | None = None) -> list[AlertState]:
        """Stored alert states (all practices when `slug` is None), by practice, DAG and kind."""
        query = select(states)
        if slug is not None:
            query = query.where(states.c.practice_slug == slug)
        if dag_id is not None:
            query = query.where(states.c.dag_id == dag_id)
        query = query.order_by(states.c.practice_slug, states.c.dag_id, states.c.alert_kind)
        with self.engine.begin() as conn:
            return [_state(row) for row in conn.execute(query)]

    def set_alert_state(
        self,
        slug: str,
        dag_id: str,
        kind: str,
        *,
        raised: bool,
        value: float | None,
        threshold: float | None,
        run_id: str,
    ) -> AlertTransition:
        """Record one evaluation of an alert (see the module docstring); returns the state before and after."""
        if kind not in ALERT_KINDS:
            raise ValueError(f"alert kind must be one of {ALERT_KINDS}, not {kind!r}")
        now = self._now()
        new_state = ALERT_RAISED if raised else ALERT_OK
        key = and_(states.c.practice_slug == slug, states.c.dag_id == dag_id, states.c.alert_kind == kind)
        measured = {"value": value, "threshold": threshold, "last_run_id": run_id}
        with self.engine.begin() as conn:
            row = conn.execute(select(states).where(key).with_for_update()).first()
            if row is None:
                # A first evaluation that finds nothing wrong owes no notice (notified at once).
                conn.execute(
                    self._insert(states).values(
                        practice_slug=slug,
                        dag_id=dag_id,
                        alert_kind=kind,
                        state=new_state,
                        since=now,
                        notified_at=None if raised else now,
                        **measured,
                    )
                )
                previous = None
            else:
                previous = row.state
                values = dict(measured)
                if previous != new_state:
                    values.update(state=new_state, since=now, notified_at=None)
                conn.execute(update(states).where(key).values(**values))
            current = conn.execute(select(states).where(key)).one()
        return AlertTransition(previous=previous, current=_state(current))

    def mark_alert_notified(self, slug: str, dag_id: str, kind: str, since: datetime) -> bool:
        """Record that the notice of the state that began at `since` went out; False when that state has moved on."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(states)
                .where(
                    states.c.practice_slug == slug,
                    states.c.dag_id == dag_id,
                    states.c.alert_kind == kind,
                    states.c.since == since,
                    states.c.notified_at.is_(None),
                )
                .values(notified_at=self._now())
            )
        return result.rowcount == 1

    def successful_runs(
        self, slug: str, dag_id: str, *, before_run_id: str, limit: int, offset: int = 0
    ) -> list[list[LedgerEntry]]:
        """The practice's latest runs of `dag_id` started no later than `before_run_id` (itself excluded) whose
        every ledger row succeeded, newest first, each as its ledger rows; `offset`/`limit` page through them."""
        started = (
            select(func.min(ledger.c.started_at))
            .where(ledger.c.run_id == before_run_id, ledger.c.dag_id == dag_id, ledger.c.practice_slug == slug)
            .scalar_subquery()
        )
        runs = (
            select(ledger.c.run_id)
            .where(ledger.c.practice_slug == slug, ledger.c.dag_id == dag_id, ledger.c.run_id != before_run_id)
            .group_by(ledger.c.run_id)
            .having(func.sum(case((ledger.c.status == "success", 0), else_=1)) == 0)
            .having(func.min(ledger.c.started_at) <= func.coalesce(started, func.max(ledger.c.started_at)))
            .order_by(func.max(ledger.c.started_at).desc(), ledger.c.run_id.desc())
            .offset(offset)
            .limit(limit)
        )
        with self.engine.begin() as conn:
            run_ids = list(conn.execute(runs).scalars())
            if not run_ids:
                return []
            rows = conn.execute(
                select(ledger).where(
                    ledger.c.practice_slug == slug, ledger.c.dag_id == dag_id, ledger.c.run_id.in_(run_ids)
                )
            )
            grouped: dict[str, list[LedgerEntry]] = {run_id: [] for run_id in run_ids}
            for row in rows:
                grouped[row.run_id].append(_entry(row))
        return [grouped[run_id] for run_id in run_ids]
