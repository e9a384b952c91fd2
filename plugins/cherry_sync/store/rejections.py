"""Rejected records: what could not be synced, why, how often, and whether it has since been fixed.

One row per (practice, entity, source id, stage). Rejecting again bumps `attempts` and reopens it; a record
that later syncs is resolved. Warnings live here too (`kind` 'warning'): a record that synced without one detail
(a phone or e-mail a relative's contact holds) is open until that detail is written, then resolved the same way. Messages are for operators and must never carry patient data (callers pass
reason text, not record values); as a second line of defence they are passed through `safety.redact` and cut
to the column's size.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, update

from cherry_sync.safety import redact
from cherry_sync.store.base import StoreBase, chunked
from cherry_sync.store.models import REJECTION, WARNING, Rejection, RejectionRecord
from cherry_sync.store.schema import rejected_records as rejections

MESSAGE_LIMIT = 500


def _clean(message: str) -> str:
    message = redact(message)
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…"


class RejectionQueries(StoreBase):
    """Records, resolves and summarises rejected records."""

    def record_rejections(self, slug: str, items: Iterable[Rejection]) -> int:
        """Store rejections (new ones, or bump repeats); returns how many distinct records were written."""
        latest: dict[tuple[str, str, str], Rejection] = {}
        for item in items:
            latest[(item.entity, item.source_id, item.stage)] = item
        if not latest:
            return 0
        now = self._now()
        params = [
            {
                "practice_slug": slug,
                "entity": item.entity,
                "source_id": item.source_id,
                "stage": item.stage,
                "reason_code": item.reason_code,
                "message": _clean(item.message),
                "attempts": 1,
                "first_seen_at": now,
                "last_seen_at": now,
                "resolved_at": None,
                "kind": item.kind,
            }
            for item in latest.values()
        ]
        ins = self._insert(rejections)
        stmt = ins.on_conflict_do_update(
            index_elements=[
                rejections.c.practice_slug,
                rejections.c.entity,
                rejections.c.source_id,
                rejections.c.stage,
            ],
            set_={
                "reason_code": ins.excluded.reason_code,
                "kind": ins.excluded.kind,
                "message": ins.excluded.message,
                "last_seen_at": ins.excluded.last_seen_at,
                "attempts": rejections.c.attempts + 1,
                "resolved_at": None,
            },
        )
        with self.engine.begin() as conn:
            for batch in chunked(params):
                conn.execute(stmt, batch)
        return len(params)

    def resolve_rejections(self, slug: str, entity: str, source_ids: Iterable[str], *, stage: str | None = None) -> int:
        """Mark open rejections of these records resolved (all stages unless `stage`); returns rows resolved."""
        now = self._now()
        resolved = 0
        with self.engine.begin() as conn:
            for batch in chunked(dict.fromkeys(source_ids)):
                stmt = update(rejections).where(
                    rejections.c.practice_slug == slug,
                    rejections.c.entity == entity,
                    rejections.c.source_id.in_(batch),
                    rejections.c.resolved_at.is_(None),
                )
                if stage is not None:
                    stmt = stmt.where(rejections.c.stage == stage)
                resolved += conn.execute(stmt.values(resolved_at=now)).rowcount
        return resolved

    def open_rejections(
        self, slug: str | None = None, *, limit: int | None = None, kind: str | None = None
    ) -> list[RejectionRecord]:
        """Unresolved rejections and warnings (or only one `kind`), most recent first, for one practice or all."""
        query = select(rejections).where(rejections.c.resolved_at.is_(None))
        if slug is not None:
            query = query.where(rejections.c.practice_slug == slug)
        if kind is not None:
            query = query.where(rejections.c.kind == kind)
        query = query.order_by(rejections.c.last_seen_at.desc(), rejections.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.begin() as conn:
            return [RejectionRecord(**row._mapping) for row in conn.execute(query)]

    def open_source_ids(self, slug: str, entity: str, reason_code: str) -> list[str]:
        """Source ids of the records with an open rejection or warning for `reason_code`, in id order."""
        query = (
            select(rejections.c.source_id)
            .where(
                rejections.c.practice_slug == slug,
                rejections.c.entity == entity,
                rejections.c.reason_code == reason_code,
                rejections.c.resolved_at.is_(None),
            )
            .distinct()
            .order_by(rejections.c.source_id)
        )
        with self.engine.begin() as conn:
            return list(conn.execute(query).scalars())

    def rejection_counts(self, slug: str | None = None, *, kind: str = REJECTION) -> dict[str, int]:
        """Open rejections (or, with `kind=WARNING`, warnings) per reason code, for one practice or all."""
        query = (
            select(rejections.c.reason_code, func.count())
            .where(rejections.c.resolved_at.is_(None), rejections.c.kind == kind)
            .group_by(rejections.c.reason_code)
        )
        if slug is not None:
            query = query.where(rejections.c.practice_slug == slug)
        with self.engine.begin() as conn:
            return {reason: count for reason, count in conn.execute(query)}

    def warning_counts(self, slug: str | None = None) -> dict[str, int]:
        """Open warnings per reason code (records that synced without one detail), for one practice or all."""
        return self.rejection_counts(slug, kind=WARNING)
