"""Migrations: up from empty, re-run is a no-op, schema.py equals what they build, concurrent runs are safe."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, inspect, select
from sqlalchemy.exc import IntegrityError

from cherry_sync.store import SyncStore, engine_from_url, migrate
from cherry_sync.store.migrate import VERSION_TABLE, current_revision, head_revision
from cherry_sync.store.schema import metadata, rejected_records
from tests.store.conftest import make_practice

REPO = Path(__file__).resolve().parents[2]
# The core tables; later features add theirs (all of them must be in schema.py's metadata, checked below).
TABLES = {
    "practices",
    "cherry_patients",
    "payments",
    "sync_cursors",
    "processed_events",
    "backfill_checkpoints",
    "rejected_records",
    "run_ledger",
}


def _diff(engine, target: MetaData) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, target)


def test_upgrade_from_empty_creates_every_table(store_url):
    engine = engine_from_url(store_url)
    assert current_revision(engine) is None

    migrate(engine)

    assert current_revision(engine) == head_revision()
    created = set(inspect(engine).get_table_names())
    assert created >= TABLES
    assert set(metadata.tables) | {VERSION_TABLE} == created


def test_second_upgrade_is_a_no_op(store_url):
    engine = engine_from_url(store_url)
    migrate(engine)
    migrate(engine)

    assert current_revision(engine) == head_revision()
    created = set(inspect(engine).get_table_names())
    assert created >= TABLES
    assert set(metadata.tables) | {VERSION_TABLE} == created


def test_schema_module_matches_migrations(store_url):
    engine = engine_from_url(store_url)
    migrate(engine)

    assert _diff(engine, metadata) == []


def test_comparison_would_notice_a_drift(store_url):
    # Guards the test above: an extra column in the metadata must show up as a difference.
    engine = engine_from_url(store_url)
    migrate(engine)
    drifted = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["payments"].append_column(Column("not_migrated", Integer))

    diffs = _diff(engine, drifted)

    assert [diff[0] for diff in diffs] == ["add_column"]


def test_concurrent_migrations_from_two_processes(store_url):
    # Both processes sleep until the same instant, so their upgrades really overlap.
    code = (
        "import sys, time; from cherry_sync.store import engine_from_url, migrate;"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); migrate(engine_from_url(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)])}
    engine = engine_from_url(store_url)
    url = engine.url.render_as_string(hide_password=False)
    start_at = str(time.time() + 2.0)

    workers = [
        subprocess.Popen([sys.executable, "-c", code, url, start_at], env=env, stderr=subprocess.PIPE) for _ in range(2)
    ]
    results = [(worker.wait(timeout=120), worker.stderr.read().decode()) for worker in workers]

    assert [code for code, _ in results] == [0, 0], [err[-2000:] for _, err in results]
    assert current_revision(engine) == head_revision()
    assert _diff(engine, metadata) == []


def test_0005_keeps_existing_rejections_as_rejections_and_allows_only_known_kinds(store_url):
    engine = engine_from_url(store_url)
    migrate(engine, "0004_reports")
    SyncStore(engine).sync_practices([make_practice("glow-aesthetics")])
    now = datetime(2026, 3, 1, tzinfo=UTC)
    row = {
        "practice_slug": "glow-aesthetics",
        "entity": "patient",
        "stage": "match",
        "reason_code": "contact_conflict",
        "message": "",
        "attempts": 1,
        "first_seen_at": now,
        "last_seen_at": now,
    }
    # Written as a 0004 store would: without the column.
    legacy = sa.table("rejected_records", *(sa.column(name) for name in [*row, "source_id"]))
    with engine.begin() as conn:
        conn.execute(legacy.insert().values(**row, source_id="p1"))

    migrate(engine)

    with engine.begin() as conn:
        assert conn.execute(select(rejected_records.c.kind)).scalars().all() == ["rejection"]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(rejected_records.insert().values(**row, source_id="p2", kind="notice"))


def test_the_quick_head_check_agrees_with_alembic(store_url):
    """Tasks check the schema with one query against `shipped_head()` (newest file name), not Alembic: both
    conventions it rests on hold for every shipped migration, and the check says behind, then at head."""
    from alembic.script import ScriptDirectory

    from cherry_sync.store.migrate import MIGRATIONS_DIR, alembic_config, is_at_head, shipped_head_number

    scripts = ScriptDirectory.from_config(alembic_config())
    numbers = []
    for revision in scripts.walk_revisions():
        number = Path(revision.path).stem.split("_", 1)[0]
        assert revision.revision.startswith(number + "_"), f"{revision.path}: its id does not begin with its number"
        numbers.append(number)
    assert len(set(numbers)) == len(numbers)
    assert head_revision().startswith(shipped_head_number() + "_")
    assert len(list((MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))) == len(numbers)

    engine = engine_from_url(store_url)
    assert not is_at_head(engine)  # empty: no version table
    migrate(engine, "0009_record_outcomes")
    assert not is_at_head(engine)
    migrate(engine)
    assert is_at_head(engine)


def test_a_store_behind_is_migrated_when_a_task_opens_it(store_url):
    from cherry_sync.store.engine import dispose_engine, store_from_engine
    from cherry_sync.store.migrate import is_at_head

    engine = engine_from_url(store_url)
    migrate(engine, "0008_oauth_tokens")
    dispose_engine(store_url)  # a new process: nothing checked yet

    store_from_engine(engine_from_url(store_url))

    assert is_at_head(engine_from_url(store_url))
