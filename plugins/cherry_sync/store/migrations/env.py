"""Alembic environment for the sync store. Runs only through `cherry_sync.store.migrate`, which hands over a
connection already inside a transaction (and, on PostgreSQL, holding the migration advisory lock)."""

from __future__ import annotations

from alembic import context

from cherry_sync.store.column_types import UTCDateTime
from cherry_sync.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")

if context.is_offline_mode() or connection is None:
    raise RuntimeError("run store migrations with cherry_sync.store.migrate.migrate(engine), not the alembic CLI")


def _render_item(type_, obj, autogen_context):
    # Revisions stay frozen in plain SQLAlchemy types; UTC conversion is the application's concern, not DDL's.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=config.get_main_option("version_table"),
    # SQLite cannot ALTER most things; batch mode rebuilds tables instead, so future revisions work there too.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=_render_item,
)

with context.begin_transaction():
    context.run_migrations()
