"""Backfill checkpoints: a backfill resumes where it stopped; a completed one starts fresh when run again."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from cherry_sync.store.base import StoreBase
from cherry_sync.store.models import Checkpoint
from cherry_sync.store.schema import backfill_checkpoints as checkpoints


def _checkpoint(row) -> Checkpoint:
    return Checkpoint(**row._mapping)


class CheckpointQueries(StoreBase):
    """One row per (practice, scope) recording how far its backfill got."""

    def get_checkpoint(self, slug: str, scope: str) -> Checkpoint | None:
        with self.engine.begin() as conn:
            return self._read(conn, slug, scope)

    def begin_checkpoint(self, slug: str, scope: str) -> Checkpoint:
        """Where a backfill should start: the unfinished checkpoint if any, else a fresh one."""
        with self.engine.begin() as conn:
            current = self._read(conn, slug, scope)
            if current is not None and not current.completed:
                return current
            return self._write_fresh(conn, slug, scope)

    def save_checkpoint(
        self, slug: str, scope: str, cursor: str | None, pages_done: int, patients_done: int
    ) -> Checkpoint:
        """Record progress (totals so far, not increments); a saved checkpoint is unfinished by definition."""
        now = self._now()
        ins = self._insert(checkpoints).values(
            practice_slug=slug,
            scope=scope,
            cursor=cursor,
            pages_done=pages_done,
            patients_done=patients_done,
            started_at=now,
            updated_at=now,
            completed_at=None,
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[checkpoints.c.practice_slug, checkpoints.c.scope],
            set_={
                "cursor": ins.excluded.cursor,
                "pages_done": ins.excluded.pages_done,
                "patients_done": ins.excluded.patients_done,
                "updated_at": ins.excluded.updated_at,
                "completed_at": None,
            },
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
            return self._read(conn, slug, scope)

    def complete_checkpoint(self, slug: str, scope: str) -> Checkpoint:
        """Mark the backfill finished; the next `begin_checkpoint` starts over."""
        now = self._now()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(checkpoints)
                .where(checkpoints.c.practice_slug == slug, checkpoints.c.scope == scope)
                .values(completed_at=now, updated_at=now)
            )
            if result.rowcount == 0:
                raise LookupError(f"no backfill checkpoint for practice {slug!r}, scope {scope!r}")
            return self._read(conn, slug, scope)

    def reset_checkpoint(self, slug: str, scope: str) -> Checkpoint:
        """Start the backfill over from the beginning, finished or not."""
        with self.engine.begin() as conn:
            return self._write_fresh(conn, slug, scope)

    def _read(self, conn: Connection, slug: str, scope: str) -> Checkpoint | None:
        row = conn.execute(
            select(checkpoints).where(checkpoints.c.practice_slug == slug, checkpoints.c.scope == scope)
        ).first()
        return _checkpoint(row) if row else None

    def _write_fresh(self, conn: Connection, slug: str, scope: str) -> Checkpoint:
        now = self._now()
        fresh = {"cursor": None, "pages_done": 0, "patients_done": 0, "started_at": now, "updated_at": now}
        ins = self._insert(checkpoints).values(practice_slug=slug, scope=scope, completed_at=None, **fresh)
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=[checkpoints.c.practice_slug, checkpoints.c.scope],
                set_={**fresh, "completed_at": None},
            )
        )
        return self._read(conn, slug, scope)
