"""Idle cost per practice: what an idle practice costs Airflow's long-running components (parsing and watchers).

    python -m bench idle_cost [--practices 30,300,1000] [--seconds 60] [--parses 3] [--store sqlite|postgres]
                              [--skip-parse] [--skip-watchers] [--label TEXT]

For each practice count N a registry of N generated practices (half with webhooks) is written to a temp file and
`CHERRY_SYNC_REGISTRY` points at it. Two figures, each in its own subprocess so nothing is warm that the real
component would not have warm:

- **Parsing** (dag-processor): a process pre-imports the `airflow.*` modules each DAG file names (as the
  dag-processor does before it forks), then forks once per parse and, in the fork, times Airflow's own
  `_parse_file` (the DagBag of that one file and the serialization of its DAGs): CPU seconds of the fork
  (user + system). The dag-processor re-parses every file every `min_file_process_interval` (30 s by default):
  a 5-minute cycle is 10 parses of each file. Also reported: `cherry_refresh`'s serialized size.
- **Watchers** (triggerer): N `FeedWatcher`s (feeds of a Cherry sandbox hosting the N practices, each cursor at
  the feed's tail, so every read finds nothing: idle) or N `InboxWatcher`s (an empty inbox) run in one asyncio
  loop of one process through Airflow's own `SharedStreamManager`, as the triggerer runs them (shared streams for
  triggers with a `shared_stream_key`, `run()` for the others). After a warm-up (connections looked up, first
  reads done), CPU of the whole process (every thread) over `--seconds`, scaled to one practice and 5 minutes.
  The Cherry sandbox runs in the parent process: its CPU is Cherry's side and is not counted.

Target: under 0.05 CPU-seconds per idle practice per 5-minute cycle in Airflow's components.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import REPO
from bench.results import machine, publish

SECTION = "Idle cost per practice (watchers and parsing)"
INTRO = (
    "CPU that an idle practice costs Airflow's long-running components, by `python -m bench idle_cost`: the\n"
    "dag-processor parsing every DAG file (each file re-parsed every 30 s) and the triggerer running the\n"
    "practice's event watcher. Target: < 0.05 CPU-seconds per idle practice per 5-minute cycle, so that 1,000\n"
    "practices use at most half of a 2-core machine."
)
TARGET_CPU_PER_PRACTICE = 0.05  # CPU-seconds per practice per 5 minutes
CYCLE_SECONDS = 300.0
PARSE_INTERVAL_SECONDS = 30.0  # [dag_processor] min_file_process_interval default
SANDBOX_PRACTICES = 100  # the Cherry sandbox's most


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench import RESULTS

    parser.add_argument("--practices", default="30,300,1000", help="practice counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0, help="watcher measurement window (60)")
    parser.add_argument("--warmup", type=float, default=20.0, help="watcher warm-up before measuring (20)")
    parser.add_argument("--poll-seconds", type=int, default=15, help="feed poll interval (15, the default)")
    parser.add_argument("--parses", type=int, default=3, help="parses timed per DAG file (3; the median is kept)")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="postgres", help="sync store backend")
    parser.add_argument("--store-url", default=None, help="use this (migrated) store database instead")
    parser.add_argument("--skip-parse", action="store_true", help="measure the watchers only")
    parser.add_argument("--skip-watchers", action="store_true", help="measure parsing only")
    parser.add_argument(
        "--db", action="store_true", help="also write cherry_refresh to a throwaway PostgreSQL metadata database"
    )
    parser.add_argument("--label", default="", help="sub-section label, e.g. 'before' or 'after'")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file (bench/RESULTS.md)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results file alone")


# -- the registry ---------------------------------------------------------------------------------------------


def slug_of(index: int) -> str:
    return f"idle-{index:04d}"


def registry_entries(count: int, *, webhooks: bool | None = None, poll_seconds: int = 15) -> list[dict]:
    """`count` valid practices; `webhooks` None: every other one has webhooks."""
    return [
        {
            "slug": slug_of(i),
            "display_name": f"Idle Practice {i}",
            "timezone": "America/New_York",
            "timezone_pinned": True,
            "cherry_conn_id": f"cherry_idle_{i}",
            "crm_conn_id": f"crm_idle_{i}",
            "events": {"webhooks": (i % 2 == 0) if webhooks is None else webhooks, "poll_seconds": poll_seconds},
        }
        for i in range(count)
    ]


def write_registry(path: Path, entries: list[dict]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    return path


def _env(registry: Path, workdir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")]),
            "CHERRY_SYNC_REGISTRY": str(registry),
            "AIRFLOW_HOME": str(workdir / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        }
    )
    env.update(extra or {})
    return env


def _child(mode: str, payload: dict, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.idle_cost", mode, json.dumps(payload)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{mode} child failed ({out.returncode}): {out.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


# -- parsing (a dag-processor's parse, forked) ----------------------------------------------------------------


def _parse_child(payload: dict) -> dict:
    import logging

    import structlog
    from airflow.dag_processing.processor import DagFileParseRequest, _parse_file
    from airflow.utils.file import iter_airflow_imports

    logging.disable(logging.WARNING)
    log = structlog.get_logger("bench")
    files = [Path(f) for f in payload["files"]]
    for file in files:  # what the dag-processor imports before forking a parse
        for module in iter_airflow_imports(str(file)):
            __import__(module)
    results: dict[str, list[dict]] = {}
    for file in files:
        for _ in range(payload["parses"]):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the parse, as the dag-processor's forked child runs it
                os.close(read)
                before = resource.getrusage(resource.RUSAGE_SELF)
                result = _parse_file(
                    DagFileParseRequest(file=str(file), bundle_path=file.parent, bundle_name="dags-folder"), log
                )
                after = resource.getrusage(resource.RUSAGE_SELF)
                sizes = {d.dag_id: len(json.dumps(d.data, default=str)) for d in result.serialized_dags}
                report = {
                    "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                    "dags": len(result.serialized_dags),
                    "errors": sorted(result.import_errors),
                    "sizes": sizes,
                }
                os.write(write, json.dumps(report).encode())
                os._exit(0)
            os.close(write)
            chunks = []
            while chunk := os.read(read, 65536):
                chunks.append(chunk)
            os.close(read)
            os.waitpid(pid, 0)
            results.setdefault(file.name, []).append(json.loads(b"".join(chunks)))
    return results


def measure_parsing(count: int, parses: int, workdir: Path) -> dict[str, dict]:
    registry = write_registry(workdir / f"practices-{count}.yml", registry_entries(count))
    files = sorted(str(p) for p in (REPO / "dags").glob("*.py"))
    raw = _child("--parse-child", {"files": files, "parses": parses}, _env(registry, workdir))
    out = {}
    for name, runs in raw.items():
        cpus = sorted(run["cpu"] for run in runs)
        out[name] = {
            "cpu": cpus[len(cpus) // 2],
            "dags": runs[0]["dags"],
            "errors": runs[0]["errors"],
            "sizes": runs[0]["sizes"],
        }
    return out


# -- the metadata database (parse-to-DB of cherry_refresh) ---------------------------------------------------


def _db_child(payload: dict) -> dict:
    import logging

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session
    from sqlalchemy import text

    logging.disable(logging.WARNING)
    DagBundlesManager().sync_bundles_to_db()
    file = Path(payload["file"])
    out: dict[str, Any] = {}
    for step in ("first", "second", "steady"):
        cpu0 = _cpu()
        bag = BundleDagBag(dag_folder=str(file), bundle_path=file.parent, bundle_name="dags-folder")
        cpu1, wall1 = _cpu(), time.monotonic()
        sync_bag_to_db(bag, "dags-folder", None)
        out[step] = {
            "parse_cpu": cpu1 - cpu0,
            "sync_cpu": _cpu() - cpu1,
            "sync_wall": time.monotonic() - wall1,
            "errors": sorted(bag.import_errors),
        }
    with create_session() as session:
        row = session.execute(
            text(
                "select coalesce(length(data::text), 0), coalesce(length(data_compressed), 0) "
                "from serialized_dag where dag_id = 'cherry_refresh'"
            )
        ).one()
        out["stored_bytes"] = {"json": row[0], "compressed": row[1]}
        out["rows"] = {
            table: session.execute(text(f"select count(*) from {table}")).scalar()  # noqa: S608 - fixed names
            for table in ("asset", "asset_watcher", "trigger", "dag_schedule_asset_reference")
        }
    return out


def measure_db(count: int, workdir: Path) -> dict:
    """Parse `cherry_refresh` with `count` practices and write it to a throwaway PostgreSQL metadata database."""
    import secrets as _secrets

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from bench.backfill import PG_ADMIN_URL

    name = f"idle_cost_meta_{_secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    registry = write_registry(workdir / f"practices-{count}.yml", registry_entries(count))
    # Unpaused, as a deployment runs it: the watchers (asset_watcher, trigger rows) are written for active DAGs.
    env = _env(
        registry,
        workdir,
        {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url, "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False"},
    )
    try:
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], cwd=REPO, env=env, capture_output=True, check=True
        )
        return _child("--db-child", {"file": str(REPO / "dags" / "cherry_refresh.py")}, env)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- watchers (a triggerer's loop) ----------------------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run_watchers(triggers: list, warmup: float, seconds: float) -> dict:
    from airflow.triggers.shared_stream import SharedStreamManager

    manager = SharedStreamManager()
    fired: list[Any] = []

    async def run_trigger(trigger_id: int, trigger) -> None:  # the triggerer's run_trigger, minus persistence
        key = trigger.shared_stream_key()
        try:
            if key is not None:
                stream = trigger.filter_shared_stream(
                    manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
                )
            else:
                stream = trigger.run()
            async for event in stream:
                fired.append(event.payload)
        finally:
            if key is not None:
                await manager.unsubscribe(trigger_id, key)

    tasks = [asyncio.create_task(run_trigger(i, t)) for i, t in enumerate(triggers)]
    await asyncio.sleep(warmup)
    fired_warmup = len(fired)
    cpu0, wall0 = _cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, wall1 = _cpu(), time.monotonic()
    threads = threading.active_count()  # before the watchers stop (a stopped reader's pool is shut down)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await manager.stop_all()
    return {
        "cpu": cpu1 - cpu0,
        "wall": wall1 - wall0,
        "fired_warmup": fired_warmup,
        "fired_measured": len(fired) - fired_warmup,
        "threads": threads,
    }


def _watch_child(payload: dict) -> dict:
    import logging

    logging.disable(logging.WARNING)
    from cherry_sync.triggers.watchers import FeedWatcher, InboxWatcher

    if payload["kind"] == "feed":
        triggers = [
            FeedWatcher(slug_of(i), f"cherry_idle_{i}", float(payload["poll_seconds"])) for i in range(payload["n"])
        ]
    else:
        triggers = [InboxWatcher(slug_of(i)) for i in range(payload["n"])]
    return asyncio.run(_run_watchers(triggers, payload["warmup"], payload["seconds"]))


def _store_conn(url: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return json.dumps({"conn_type": "sqlite", "host": u.database})
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": u.host,
            "port": u.port or 5432,
            "login": u.username,
            "password": u.password,
            "schema": u.database,
        }
    )


def measure_watchers(count: int, args: argparse.Namespace, workdir: Path, store_url: str, cherry) -> dict:
    from bench.backfill import _practice_config
    from cherry_sync.store import engine_from_url, store_from_engine
    from cherry_sync.sync.practice_runs import EVENTS_STREAM

    store = store_from_engine(engine_from_url(store_url))
    tails = {}
    for practice in cherry.practices:  # the feed's tail: every read after it finds nothing (idle)
        page = cherry.get("/v1/events", practice, limit=500).json()
        while page["has_more"]:
            page = cherry.get("/v1/events", practice, limit=500, cursor=page["next_cursor"]).json()
        tails[practice.id] = page["next_cursor"]
    conns, configs = {}, []
    for i in range(count):
        # The sandbox hosts at most 100 practices: watchers beyond share their API keys (one read per key per
        # few seconds, far inside Cherry's limit; what the triggerer does per read is the same).
        practice = cherry.practices[i % len(cherry.practices)]
        conns[f"AIRFLOW_CONN_CHERRY_IDLE_{i}"] = json.dumps(
            {"conn_type": "http", "host": cherry.base_url, "password": practice.api_key}
        )
        configs.append(_practice_config(i, {"name": practice.name, "timezone": practice.timezone}, slug=slug_of(i)))
    store.sync_practices(configs)
    for i in range(count):
        store.set_cursor(slug_of(i), EVENTS_STREAM, tails[cherry.practices[i % len(cherry.practices)].id])
    registry = write_registry(workdir / f"practices-{count}.yml", registry_entries(count))
    env = _env(registry, workdir, {**conns, "AIRFLOW_CONN_CHERRY_SYNC_STORE": _store_conn(store_url)})
    out = {}
    for kind in ("feed", "inbox"):
        payload = {
            "kind": kind,
            "n": count,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "poll_seconds": args.poll_seconds,
        }
        reads0 = cherry.stats()["endpoints"].get("GET /v1/events", 0)
        result = _child("--watch-child", payload, env)
        result["reads"] = cherry.stats()["endpoints"].get("GET /v1/events", 0) - reads0
        out[kind] = result
    return out


# -- the run -------------------------------------------------------------------------------------------------


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (its options, defaults included)."""
    parts = ["python -m bench idle_cost", f"--practices {args.practices}"]
    if args.skip_parse:
        parts.append("--skip-parse")
    else:
        parts.append(f"--parses {args.parses}")
    if args.skip_watchers:
        parts.append("--skip-watchers")
    if args.db:
        parts.append("--db")
    else:
        parts += [f"--seconds {args.seconds:g} --warmup {args.warmup:g}", f"--poll-seconds {args.poll_seconds}"]
        parts.append(f"--store {args.store}")
    if args.label:
        parts.append(f"--label '{args.label}'")
    return " ".join(parts)


def per_practice(cpu: float, seconds: float, count: int) -> float:
    """CPU-seconds per practice per 5-minute cycle."""
    return cpu / max(seconds, 1e-9) * CYCLE_SECONDS / count


def run(args: argparse.Namespace) -> int:
    from bench.backfill import bench_store
    from sandbox.cherry.testing import CherrySandbox

    counts = [int(c) for c in args.practices.split(",") if c.strip()]
    started = datetime.now(UTC)
    parse_rows: list[str] = []
    watch_rows: list[str] = []
    sizes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="idle-cost-") as tmp:
        workdir = Path(tmp)
        if not args.skip_parse:
            for count in counts:
                results = measure_parsing(count, args.parses, workdir)
                total = sum(r["cpu"] for r in results.values())
                cycle = total * CYCLE_SECONDS / PARSE_INTERVAL_SECONDS
                each = " / ".join(f"{name.removesuffix('.py')} {r['cpu']:.2f}" for name, r in results.items())
                errors = sum(len(r["errors"]) for r in results.values())
                parse_rows.append(
                    f"| {count:,} | {total:.2f} s | {each} | {cycle:.1f} s | {cycle / count:.4f} s |"
                    + (f" {errors} import error(s)" if errors else "")
                )
                refresh = results.get("cherry_refresh.py", {}).get("sizes", {}).get("cherry_refresh")
                if refresh:
                    sizes.append(f"{count:,} practices: {refresh / 1024:.0f} KiB")
                print(f"parse N={count}: {total:.2f} s per round of every file ({each})", flush=True)
        if not args.skip_watchers:
            with bench_store(args, workdir) as (store_url, store_label):
                biggest = max(counts)
                with CherrySandbox.start(practices=min(biggest, SANDBOX_PRACTICES), patients_per_practice=2) as cherry:
                    for count in counts:
                        result = measure_watchers(count, args, workdir, store_url, cherry)
                        for kind, r in result.items():
                            each = per_practice(r["cpu"], r["wall"], count)
                            watch_rows.append(
                                f"| {count:,} | {kind} | {r['cpu']:.2f} s in {r['wall']:.0f} s "
                                f"({100 * r['cpu'] / r['wall']:.1f}% of a core) | {each:.4f} s | "
                                f"{r['reads'] if kind == 'feed' else '-'} | {r['fired_measured']} | {r['threads']} |"
                            )
                            print(f"watch N={count} {kind}: {r}", flush=True)
            watch_store = store_label
    db_rows = []
    if args.db:
        with tempfile.TemporaryDirectory(prefix="idle-cost-db-") as tmp:
            for count in counts:
                r = measure_db(count, Path(tmp))
                first, second, steady = r["first"], r["second"], r["steady"]
                db_rows.append(
                    f"| {count:,} | {r['stored_bytes']['json'] / 1024:.0f} KiB | {first['parse_cpu']:.2f} s | "
                    f"{first['sync_wall']:.2f} s ({first['sync_cpu']:.2f} s CPU) | "
                    f"{second['sync_wall']:.2f} s ({second['sync_cpu']:.2f} s CPU) | "
                    f"{steady['sync_wall']:.2f} s ({steady['sync_cpu']:.2f} s CPU) | "
                    f"{r['rows']['asset']:,} / {r['rows']['asset_watcher']:,} / {r['rows']['trigger']:,} |"
                )
                print(f"db N={count}: {r}", flush=True)
    label = f" ({args.label})" if args.label else ""
    lines = [
        f"### {', '.join(f'{c:,}' for c in counts)} practices{label}",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC on {machine()}.",
        f"`{command_line(args)}`",
    ]
    if parse_rows:
        lines += [
            "",
            "Parsing: CPU of one parse of each DAG file (median of "
            f"{args.parses}, forked like the dag-processor), every file re-parsed every 30 s.",
            "",
            "| practices | one round of every file | per file (s) | per 5 min | per practice per 5 min |",
            "|---|---|---|---|---|",
            *parse_rows,
        ]
        if sizes:
            lines += ["", "Serialized `cherry_refresh`: " + "; ".join(sizes) + "."]
    if watch_rows:
        lines += [
            "",
            f"Watchers: one triggerer loop, every practice idle, feed poll every {args.poll_seconds} s, store "
            f"{watch_store}, {args.warmup:g} s warm-up then {args.seconds:g} s measured.",
            "",
            "| practices | watchers | CPU | per practice per 5 min | feed reads (warm-up + measured) | events fired | threads |",
            "|---|---|---|---|---|---|---|",
            *watch_rows,
        ]
    if db_rows:
        lines += [
            "",
            "Metadata database (PostgreSQL): `cherry_refresh` parsed in-process and written with Airflow's "
            "`sync_bag_to_db`, unpaused; then the same twice more, unchanged (what each later parse writes): "
            "wall time, and CPU of the writing process (the database server's is not counted).",
            "",
            "| practices | serialized DAG stored | parse (in-process) | first write | second | third | "
            "assets / watchers / triggers |",
            "|---|---|---|---|---|---|---|",
            *db_rows,
        ]
    lines += ["", f"Target < {TARGET_CPU_PER_PRACTICE} CPU-s per idle practice per 5 min in all components."]
    return publish(args, SECTION, INTRO, "\n".join(lines))


if __name__ == "__main__":
    mode, payload = sys.argv[1], json.loads(sys.argv[2])
    import bench  # noqa: F401,E402 - sys.path

    children = {"--parse-child": _parse_child, "--watch-child": _watch_child, "--db-child": _db_child}
    result = children[mode](payload)
    print("RESULT " + json.dumps(result), flush=True)
