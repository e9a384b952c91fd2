"""The webhook inbox: events the receiver stored, what the refresh applied, and what the receiver refused."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from cherry_sync.store.base import StoreBase, chunked
from cherry_sync.store.schema_webhooks import webhook_inbox, webhook_rejections

UNKNOWN_PRACTICE = "(unknown)"


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """One stored webhook: the event exactly as Cherry sent it (it holds patient data: never log `payload`)."""

    id: int
    event_id: str
    event_type: str
    payload: dict[str, Any]
    received_at: datetime


class InboxQueries(StoreBase):
    """Webhook inbox and rejection counters."""

    def store_webhook(self, slug: str, event_id: str, event_type: str, payload: dict[str, Any]) -> bool:
        """Keep one delivered event (committed when this returns); False when the event id was already stored."""
        stmt = (
            self._insert(webhook_inbox)
            .values(
                practice_slug=slug,
                event_id=event_id,
                event_type=event_type,
                payload=payload,
                received_at=self._now(),
            )
            .on_conflict_do_nothing(index_elements=[webhook_inbox.c.practice_slug, webhook_inbox.c.event_id])
            .returning(webhook_inbox.c.id)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).first() is not None

    def pending_webhooks(self, slug: str, after_id: int = 0, limit: int = 500) -> list[InboxEvent]:
        """The practice's stored events not applied yet, after inbox row `after_id`, in arrival order."""
        query = (
            select(webhook_inbox)
            .where(
                webhook_inbox.c.applied_at.is_(None),
                webhook_inbox.c.practice_slug == slug,
                webhook_inbox.c.id > after_id,
            )
            .order_by(webhook_inbox.c.id)
            .limit(limit)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(query).all()
        return [InboxEvent(r.id, r.event_id, r.event_type, r.payload, r.received_at) for r in rows]

    def mark_webhooks_applied(self, slug: str, ids: Iterable[int]) -> int:
        """Stamp inbox rows applied (after the events' effects landed); returns rows stamped."""
        now, stamped = self._now(), 0
        with self.engine.begin() as conn:
            for batch in chunked(list(ids)):
                stamped += conn.execute(
                    update(webhook_inbox)
                    .where(
                        webhook_inbox.c.practice_slug == slug,
                        webhook_inbox.c.id.in_(batch),
                        webhook_inbox.c.applied_at.is_(None),
                    )
                    .values(applied_at=now)
                ).rowcount
        return stamped

    def pending_webhook_ids(self) -> dict[str, set[int]]:
        """Practice -> inbox rows not applied yet (the inbox watcher's poll: ids only, no payload)."""
        query = select(webhook_inbox.c.practice_slug, webhook_inbox.c.id).where(webhook_inbox.c.applied_at.is_(None))
        pending: dict[str, set[int]] = {}
        with self.engine.begin() as conn:
            for slug, row_id in conn.execute(query):
                pending.setdefault(slug, set()).add(row_id)
        return pending

    def webhook_backlog(self, slug: str) -> int:
        """How many of the practice's stored events are not applied yet."""
        query = select(func.count()).where(webhook_inbox.c.practice_slug == slug, webhook_inbox.c.applied_at.is_(None))
        with self.engine.begin() as conn:
            return conn.execute(query).scalar_one()

    def count_webhook_rejection(self, slug: str | None, reason: str) -> None:
        """Count one refused delivery (no body, no header values: the practice and the reason only)."""
        now = self._now()
        ins = self._insert(webhook_rejections).values(
            practice_slug=slug or UNKNOWN_PRACTICE, reason=reason, count=1, last_at=now
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[webhook_rejections.c.practice_slug, webhook_rejections.c.reason],
            set_={"count": webhook_rejections.c.count + 1, "last_at": ins.excluded.last_at},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def webhook_rejection_counts(self, slug: str | None = None) -> dict[tuple[str, str], int]:
        """(practice, reason) -> deliveries refused, for one practice or all."""
        query = select(webhook_rejections.c.practice_slug, webhook_rejections.c.reason, webhook_rejections.c.count)
        if slug is not None:
            query = query.where(webhook_rejections.c.practice_slug == slug)
        with self.engine.begin() as conn:
            return {(s, r): n for s, r, n in conn.execute(query)}

    def prune_webhooks(self, applied_before: datetime) -> int:
        """Forget inbox rows applied before `applied_before` (processed_events keeps their ids); rows removed."""
        with self.engine.begin() as conn:
            return conn.execute(
                delete(webhook_inbox).where(
                    webhook_inbox.c.applied_at.is_not(None), webhook_inbox.c.applied_at < applied_before
                )
            ).rowcount
