"""Incremental progress: stream cursors and the processed-event ledger used for at-least-once dedupe."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select

from cherry_sync.store.base import StoreBase, chunked
from cherry_sync.store.schema import processed_events, sync_cursors


class ProgressQueries(StoreBase):
    """Where each practice's streams got to, and which events were already handled."""

    def get_cursor(self, slug: str, stream: str) -> str | None:
        """The saved position in a stream (e.g. "events"), or None to start from the beginning."""
        query = select(sync_cursors.c.cursor).where(
            sync_cursors.c.practice_slug == slug, sync_cursors.c.stream == stream
        )
        with self.engine.begin() as conn:
            return conn.execute(query).scalar_one_or_none()

    def set_cursor(self, slug: str, stream: str, cursor: str) -> None:
        """Save the position in a stream; call it only after the records before it are stored."""
        ins = self._insert(sync_cursors).values(
            practice_slug=slug, stream=stream, cursor=cursor, updated_at=self._now()
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[sync_cursors.c.practice_slug, sync_cursors.c.stream],
            set_={"cursor": ins.excluded.cursor, "updated_at": ins.excluded.updated_at},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def filter_new_events(self, slug: str, event_ids: Iterable[str]) -> set[str]:
        """The ids among `event_ids` not yet marked processed for this practice."""
        wanted = list(dict.fromkeys(event_ids))
        seen: set[str] = set()
        with self.engine.begin() as conn:
            for batch in chunked(wanted):
                query = select(processed_events.c.event_id).where(
                    processed_events.c.practice_slug == slug, processed_events.c.event_id.in_(batch)
                )
                seen.update(conn.execute(query).scalars())
        return set(wanted) - seen

    def mark_events_processed(self, slug: str, event_ids: Iterable[str]) -> int:
        """Mark events handled (idempotent); returns how many were newly marked."""
        now = self._now()
        params = [
            {"practice_slug": slug, "event_id": event_id, "processed_at": now} for event_id in dict.fromkeys(event_ids)
        ]
        if not params:
            return 0
        stmt = (
            self._insert(processed_events)
            .on_conflict_do_nothing(index_elements=[processed_events.c.practice_slug, processed_events.c.event_id])
            .returning(processed_events.c.event_id)
        )
        marked = 0
        with self.engine.begin() as conn:
            for batch in chunked(params):
                marked += len(conn.execute(stmt, batch).all())
        return marked

    def prune_processed_events(self, older_than: datetime) -> int:
        """Forget events processed before `older_than` (older than any redelivery window); returns rows removed."""
        with self.engine.begin() as conn:
            return conn.execute(delete(processed_events).where(processed_events.c.processed_at < older_than)).rowcount
