"""What every query module of the store shares: the engine, the clock, dialect-aware upserts and batching."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, ColumnElement, Connection, Engine, Table, bindparam, cast, column, update, values
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")

# Rows or ids per statement. Keeps every statement well under SQLite's 32,766 bound parameters and
# PostgreSQL's 65,535 while still turning 10,000 rows into a handful of round trips.
BATCH_SIZE = 1000


def utc_now() -> datetime:
    return datetime.now(UTC)


def chunked(items: Iterable[T], size: int = BATCH_SIZE) -> Iterator[list[T]]:
    """Split `items` into lists of at most `size`."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class StoreBase:
    """Holds the engine and clock; the query mixins that make up `SyncStore` build on it."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"the sync store runs on sqlite or postgresql, not {engine.dialect.name!r}")
        self.engine = engine
        self._clock = clock

    def _now(self) -> datetime:
        return self._clock()

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that supports ON CONFLICT on this backend (both dialects spell it the same way)."""
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _update_many(
        self,
        conn: Connection,
        table: Table,
        slug: str,
        key: str,
        rows: list[dict[str, Any]],
        assign: Callable[[Callable[[str], ColumnElement]], Mapping[str, Any]],
    ) -> int:
        """UPDATE one practice's rows matched on column `key`, one statement per batch; returns rows updated.

        `rows` are dicts keyed by column names (the key and the incoming values); `assign(incoming)` builds the
        SET clause, where `incoming(name)` is the incoming value of that column. PostgreSQL joins the table to a
        VALUES list (executemany there would cost a round trip per ~100 rows); SQLite runs in-process, so a
        plain executemany is just as fast.
        """
        names = list(rows[0]) if rows else []
        updated = 0
        for batch in chunked(rows):
            if conn.dialect.name == "postgresql":
                incoming = values(*(column(name, table.c[name].type) for name in names), name="incoming").data(
                    [tuple(row[name] for name in names) for row in batch]
                )
                stmt = (
                    update(table)
                    .where(table.c.practice_slug == slug, table.c[key] == incoming.c[key])
                    .values(dict(assign(lambda name, src=incoming: _typed(src.c[name], table.c[name].type))))
                )
                updated += conn.execute(stmt).rowcount
            else:
                # Bind names must differ from column names in an UPDATE, hence the prefix.
                stmt = (
                    update(table)
                    .where(table.c.practice_slug == slug, table.c[key] == bindparam(f"in_{key}"))
                    .values(dict(assign(lambda name: bindparam(f"in_{name}"))))
                )
                updated += conn.execute(stmt, [{f"in_{name}": row[name] for name in names} for row in batch]).rowcount
        return updated

    def _upsert_newer_wins(
        self, table: Table, key: str, slug: str, params: list[dict[str, Any]], columns: Iterable[str]
    ) -> set[str]:
        """Insert rows, or update `columns` of stored ones unless the stored `source_updated_at` is newer.

        Returns the keys applied (new, or not older). A stale row changes nothing but `last_seen_at`. The rule
        is enforced in SQL (a WHERE on the conflict update), so concurrent writers cannot break it.
        """
        key_column = table.c[key]
        ins = self._insert(table)
        stmt = ins.on_conflict_do_update(
            index_elements=[table.c.practice_slug, key_column],
            set_={name: ins.excluded[name] for name in columns},
            where=table.c.source_updated_at <= ins.excluded.source_updated_at,
        ).returning(key_column)
        applied: set[str] = set()
        with self.engine.begin() as conn:
            for batch in chunked(params):
                applied.update(conn.execute(stmt, batch).scalars())
            stale = [row[key] for row in params if row[key] not in applied]
            for batch in chunked(stale):
                conn.execute(
                    update(table)
                    .where(table.c.practice_slug == slug, key_column.in_(batch))
                    .values(last_seen_at=params[0]["last_seen_at"])
                )
        return applied


def newest_per(rows: Iterable[T], key: Callable[[T], str]) -> dict[str, T]:
    """Each key's newest row (by `source_updated_at`; the later one wins a tie).

    One statement may not touch a row twice (PostgreSQL refuses), so a batch keeps each record's newest only.
    """
    newest: dict[str, T] = {}
    for row in rows:
        kept = newest.get(key(row))
        if kept is None or row.source_updated_at >= kept.source_updated_at:  # type: ignore[attr-defined]
            newest[key(row)] = row
    return newest


def _typed(value: ColumnElement, type_: Any) -> ColumnElement:
    """A VALUES-list column as the target column's type: PostgreSQL reads a bound JSON value there as text,
    which a json column does not take without a cast."""
    return cast(value, type_) if isinstance(type_, JSON) else value
