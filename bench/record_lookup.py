"""Outcome history look-up latency: `record_history` by Cherry id and by CRM id on PostgreSQL at 10 million rows.

python -m bench record_lookup [--rows 10000000] [--practices 50] [--lookups 200]

A throwaway database is created and migrated, `record_outcomes` is filled server-side with `generate_series`
(indexes dropped for the load and built after it, as a bulk load would), analysed, then `--lookups` look-ups of
random records go through the store's own `record_history` (one practice, newest 200), by source id and by CRM id,
and by either id across all practices (`slug` None). The database is dropped afterwards. Target: p95 under 100 ms.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import time
from datetime import UTC, datetime

from bench.results import machine, publish, verdict

SECTION = "Outcome history look-up"
INTRO = (
    "`python -m bench record_lookup`: `record_outcomes` on PostgreSQL filled with `generate_series` (50 practices, "
    "400,000 patients each side, ~25 outcomes per record over 14 days), then 200 look-ups each through "
    "`SyncStore.record_history` (newest 200 rows of one record). Target: p95 under 100 ms at 10 million rows."
)
TARGET_MS = 100.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pathlib import Path

    from bench import RESULTS

    parser.add_argument("--rows", type=int, default=10_000_000, help="rows to load (10,000,000)")
    parser.add_argument("--practices", type=int, default=50, help="practices the rows spread over (50)")
    parser.add_argument("--lookups", type=int, default=200, help="look-ups per kind (200)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file (bench/RESULTS.md)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results file alone")


def _load(engine, rows: int, practices: int) -> tuple[float, float]:
    """Fill the table server-side; returns (load seconds, index build + analyse seconds)."""
    from sqlalchemy import text

    from cherry_sync.store.schema_outcomes import record_outcomes

    patients = max(1, rows // 25)
    with engine.begin() as conn:
        for index in record_outcomes.indexes:
            conn.execute(text(f'DROP INDEX "{index.name}"'))
    start = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO record_outcomes (recorded_at, dag_id, run_id, task_id, practice_slug, entity, source_id,
                    crm_id, operation, result, reason_code, trace_id, payload_hash)
                SELECT now() - (i % 1209600) * interval '1 second',
                       CASE WHEN i % 3 = 0 THEN 'cherry_backfill' ELSE 'cherry_refresh' END,
                       'scheduled__' || (i / 20000),
                       'practice.sync_patients',
                       'practice-' || (i % :practices),
                       'patient',
                       'pat_' || (i % :patients),
                       'c' || md5((i % :patients)::text),
                       CASE WHEN i % 10 = 0 THEN 'update' ELSE 'unchanged' END,
                       CASE WHEN i % 50 = 0 THEN 'rejected' ELSE 'ok' END,
                       CASE WHEN i % 50 = 0 THEN 'invalid_phone' END,
                       CASE WHEN i % 10 = 0 THEN md5(i::text) END,
                       md5((i % :patients)::text) || md5((i % :patients)::text)
                FROM generate_series(1, :rows) AS i
                """
            ),
            {"rows": rows, "practices": practices, "patients": patients},
        )
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    with engine.begin() as conn:
        for index in record_outcomes.indexes:
            index.create(conn)
        conn.execute(text("ANALYZE record_outcomes"))
    return loaded, time.perf_counter() - start


def _timed(call, keys) -> list[float]:
    times = []
    for key in keys:
        start = time.perf_counter()
        found = call(key)
        times.append((time.perf_counter() - start) * 1000)
        assert found, "a look-up found nothing"
    return times


def _p(times: list[float], q: int) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[q - 1]


def run(args: argparse.Namespace) -> int:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from bench.backfill import PG_ADMIN_URL
    from cherry_sync.store import SyncStore, engine_from_url, migrate
    from cherry_sync.store.engine import dispose_engine

    name = f"cherry_sync_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        engine = engine_from_url(url)
        migrate(engine)
        loaded, indexed = _load(engine, args.rows, args.practices)
        store = SyncStore(engine)
        patients = max(1, args.rows // 25)
        rng = random.Random(7)
        picks = [rng.randrange(patients) for _ in range(args.lookups)]
        # Patient k's rows are i = k (mod patients); its practice is i mod practices, the same for all its rows
        # only when practices divides patients (true for the defaults): look it up in the table to be sure.
        with engine.begin() as conn:
            slugs = {
                k: conn.execute(
                    text("SELECT practice_slug FROM record_outcomes WHERE source_id = :s LIMIT 1"), {"s": f"pat_{k}"}
                ).scalar_one()
                for k in picks
            }
            crm_ids = {k: conn.execute(text("SELECT 'c' || md5(:k)"), {"k": str(k)}).scalar_one() for k in picks}
            size = conn.execute(text("SELECT pg_size_pretty(pg_total_relation_size('record_outcomes'))")).scalar_one()
        store.record_history(slugs[picks[0]], source_id=f"pat_{picks[0]}")  # warm the connection
        by_source = _timed(lambda k: store.record_history(slugs[k], source_id=f"pat_{k}"), picks)
        by_crm = _timed(lambda k: store.record_history(slugs[k], crm_id=crm_ids[k]), picks)
        any_practice = _timed(lambda k: store.record_history(None, source_id=f"pat_{k}"), picks)
        any_practice_crm = _timed(lambda k: store.record_history(None, crm_id=crm_ids[k]), picks)
    finally:
        dispose_engine(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    rows = [("by Cherry id (one practice)", by_source), ("by CRM id (one practice)", by_crm)]
    rows.append(("by Cherry id, any practice (`slug` None)", any_practice))
    rows.append(("by CRM id, any practice (`slug` None)", any_practice_crm))
    ok = all(_p(times, 95) < TARGET_MS for _, times in rows)
    lines = [
        f"### {args.rows:,} rows, {args.practices} practices, PostgreSQL",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
        f"`python -m bench record_lookup --rows {args.rows} --practices {args.practices} --lookups {args.lookups}`: "
        f"loaded in {loaded:.1f} s (`INSERT ... SELECT generate_series`, no indexes), indexes built and analysed "
        f"in {indexed:.1f} s; table with indexes {size}. Database dropped afterwards.",
        "",
        "| look-up (newest 200 rows of one record) | p50 | **p95** | max |",
        "|---|---|---|---|",
    ]
    for label, times in rows:
        lines.append(f"| {label} | {_p(times, 50):.2f} ms | **{_p(times, 95):.2f} ms** | {max(times):.2f} ms |")
    lines += ["", f"Target p95 < {TARGET_MS:.0f} ms (either id, one practice or any): {verdict(ok)}."]
    return publish(args, SECTION, INTRO, "\n".join(lines))
