"""The practices mirror: the registry as of the last run, plus the ids learned from Cherry and the CRM."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update

from cherry_sync.store.base import StoreBase
from cherry_sync.store.models import PracticeRecord, PracticeSource, PracticeSyncResult
from cherry_sync.store.schema import practices

_REGISTRY_COLUMNS = ("display_name", "timezone", "enabled", "cherry_conn_id", "crm_conn_id", "registry_fingerprint")


def _record(row) -> PracticeRecord:
    return PracticeRecord(**row._mapping)


class PracticeQueries(StoreBase):
    """Upserts the registry into `practices`; rows are never deleted, a disabled practice keeps its history."""

    def sync_practices(self, configs: Iterable[PracticeSource]) -> PracticeSyncResult:
        """Mirror registry entries (run start). Only entries whose fingerprint changed are rewritten."""
        by_slug = {config.slug: config for config in configs}
        if not by_slug:
            return PracticeSyncResult()
        now = self._now()
        rows = [
            {
                "slug": config.slug,
                "display_name": config.display_name,
                "timezone": config.timezone,
                "enabled": config.enabled,
                "cherry_conn_id": config.cherry_conn_id,
                "crm_conn_id": config.crm_connection_id,
                "registry_fingerprint": config.fingerprint(),
                "created_at": now,
                "updated_at": now,
            }
            for config in by_slug.values()
        ]
        ins = self._insert(practices)
        stmt = ins.on_conflict_do_update(
            index_elements=[practices.c.slug],
            set_={name: ins.excluded[name] for name in (*_REGISTRY_COLUMNS, "updated_at")},
            where=practices.c.registry_fingerprint != ins.excluded.registry_fingerprint,
        )
        with self.engine.begin() as conn:
            before = dict(
                conn.execute(
                    select(practices.c.slug, practices.c.registry_fingerprint).where(practices.c.slug.in_(by_slug))
                ).all()
            )
            conn.execute(stmt, rows)
        added = frozenset(slug for slug in by_slug if slug not in before)
        changed = frozenset(
            row["slug"] for row in rows if row["slug"] in before and before[row["slug"]] != row["registry_fingerprint"]
        )
        return PracticeSyncResult(added=added, changed=changed, unchanged=frozenset(by_slug) - added - changed)

    def set_practice_ids(
        self, slug: str, *, cherry_practice_id: str | None = None, crm_location_id: str | None = None
    ) -> None:
        """Record the ids the APIs report for a practice; an argument left as None keeps the stored value."""
        values = {
            name: value
            for name, value in (("cherry_practice_id", cherry_practice_id), ("crm_location_id", crm_location_id))
            if value is not None
        }
        if not values:
            return
        with self.engine.begin() as conn:
            result = conn.execute(
                update(practices).where(practices.c.slug == slug).values(**values, updated_at=self._now())
            )
        if result.rowcount == 0:
            raise LookupError(f"practice {slug!r} is not in the store; sync the registry first")

    def get_practice(self, slug: str) -> PracticeRecord | None:
        with self.engine.begin() as conn:
            row = conn.execute(select(practices).where(practices.c.slug == slug)).first()
        return _record(row) if row else None

    def list_practices(self, *, enabled_only: bool = False) -> list[PracticeRecord]:
        query = select(practices).order_by(practices.c.slug)
        if enabled_only:
            query = query.where(practices.c.enabled.is_(True))
        with self.engine.begin() as conn:
            return [_record(row) for row in conn.execute(query)]
