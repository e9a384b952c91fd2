"""Scale: what N practices cost one deployment, on the real scheduler stack, for N = 30, 300, 1,000...

    python -m bench scale --practices 30 300 1000 [--patients 4] [--idle-seconds 120]

For each N a fresh deployment (tests/e2e/deployment.py `deployed`, `practices=N`): scheduler, dag-processor,
api-server and two Celery workers (concurrency 4) on Redis, PostgreSQL for Airflow's metadata DB and the sync store,
both sandboxes on loopback; N generated practices (`practice-0001`...), each its own Cherry practice and CRM
location with `--patients` patients; their connections in a connections file read through the product's secrets
backend (`--connections file`, the default, as docker-compose.yml deploys it), as AIRFLOW_CONN_* variables (`env`),
or through Airflow's LocalFilesystemBackend (`airflow-file`: quadratic in the file's size, see
tests/e2e/deployment.py; fine at 30 practices, not at 300). No triggerer: the refresh is triggered by hand (`--triggerer` starts one and
counts it, its watchers then run too).

Measured, one after the other, each a run of every practice (`practices` left empty):
1. backfill: `cherry_backfill`;
2. refresh with events: one Cherry event per practice (`patient.refreshed`, through the sandbox's admin API,
   before the measurement), then `cherry_refresh` triggered by hand;
3. refresh idle: `cherry_refresh` again, nothing new in Cherry;
4. smart list: `cherry_smart_list`;
5. idle: no run at all for `--idle-seconds`, scaled to 5 minutes.
For each: wall time (trigger to the run's end seen through the REST API, polled every 2 s) and the run's own
duration, task instances (REST API, paged), CRM writes and Cherry requests (the sandboxes' counters), CPU seconds
of each component with every process it started (live processes' own time plus what they collected from the
children they reaped, e.g. each task's process; tests/e2e/stack.py `Component.cpu_seconds`), and the metadata DB's
growth (`pg_database_size`, and the tables that grew most, `pg_total_relation_size`). Every practice's ledger row
is checked (one success per practice and task) so a figure never comes from a run that skipped work.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.results import machine, publish

SECTION = "Scale: practices per deployment"
INTRO = (
    "What N practices cost one deployment on the real scheduler stack (scheduler, dag-processor, api-server, two\n"
    "Celery workers x 4 slots, PostgreSQL, Redis), by `python -m bench scale`: wall time, task instances, CRM\n"
    "writes, CPU seconds per component and per practice, metadata DB growth, for a backfill, a refresh with one\n"
    "event per practice, an idle refresh, the smart list, and an idle deployment (5 minutes)."
)
PHASES = ("backfill", "refresh, 1 event/practice", "refresh, idle", "smart list")
RUN_TIMEOUT = 3 * 3600
POLL_SECONDS = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench import RESULTS

    parser.add_argument("--practices", type=int, nargs="+", default=[30], help="deployment sizes N (30)")
    parser.add_argument("--patients", type=int, default=4, help="Cherry patients per practice (4)")
    parser.add_argument("--idle-seconds", type=float, default=120.0, help="idle window, scaled to 5 min (120)")
    parser.add_argument(
        "--connections",
        choices=("file", "env", "airflow-file"),
        default="file",
        help="practice connections: the product's secrets backend (file, default), AIRFLOW_CONN_* (env) or Airflow's "
        "LocalFilesystemBackend (airflow-file)",
    )
    parser.add_argument("--triggerer", action="store_true", help="start a triggerer (its watchers run too)")
    parser.add_argument(
        "--min-file-process-interval",
        type=int,
        default=300,
        help="the dag-processor's re-parse interval of unchanged files, as docker-compose.yml sets it (300)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file (bench/RESULTS.md)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results file alone")


@dataclass
class Sample:
    """A moment of the deployment: time, CPU seconds per component, metadata DB size, sandbox counters."""

    at: float
    cpu: dict[str, float]
    db_bytes: int
    tables: dict[str, int]
    crm_writes: int
    cherry_calls: int


@dataclass
class Phase:
    """One measured phase: deltas between two samples, and what the run did."""

    name: str
    wall: float
    run_seconds: float | None
    task_instances: int
    states: Counter = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)
    db_growth: int = 0
    table_growth: list[tuple[str, int]] = field(default_factory=list)
    crm_writes: int = 0
    cherry_calls: int = 0
    scale: float = 1.0  # idle window: figures multiplied up to 5 minutes


def _group(name: str) -> str:
    return "workers" if name.startswith("worker") else name


def _sample(deployment, engine) -> Sample:
    from sqlalchemy import text

    from sandbox.common.stats import crm_writes

    cpu: dict[str, float] = {}
    for component in deployment.stack.components.values():
        cpu[_group(component.name)] = cpu.get(_group(component.name), 0.0) + component.cpu_seconds()
    with engine.connect() as conn:
        size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        tables = dict(
            conn.execute(
                text(
                    "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
                )
            ).all()
        )
    return Sample(
        at=time.monotonic(),
        cpu=cpu,
        db_bytes=size,
        tables=tables,
        crm_writes=crm_writes(deployment.crm.stats()["endpoints"]),
        cherry_calls=sum(deployment.cherry.stats()["endpoints"].values()),
    )


def _phase(name: str, before: Sample, after: Sample, **extra) -> Phase:
    growth = sorted(((t, after.tables.get(t, 0) - before.tables.get(t, 0)) for t in after.tables), key=lambda x: -x[1])
    return Phase(
        name=name,
        wall=after.at - before.at,
        cpu={k: after.cpu.get(k, 0.0) - before.cpu.get(k, 0.0) for k in after.cpu},
        db_growth=after.db_bytes - before.db_bytes,
        table_growth=[(t, g) for t, g in growth[:3] if g > 0],
        crm_writes=after.crm_writes - before.crm_writes,
        cherry_calls=after.cherry_calls - before.cherry_calls,
        **extra,
    )


def _run_dag(deployment, engine, name: str, dag_id: str) -> tuple[Phase, str]:
    client = deployment.stack.client()
    client.unpause(dag_id)
    before = _sample(deployment, engine)
    run_id = client.trigger(dag_id, {})
    run = client.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT)
    after = _sample(deployment, engine)
    tis = client.task_instances(dag_id, run_id)
    seconds = None
    if run.get("start_date") and run.get("end_date"):
        seconds = (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])).total_seconds()
    phase = _phase(name, before, after, run_seconds=seconds, task_instances=len(tis))
    phase.states = Counter(t["state"] for t in tis)
    if run["state"] != "success":
        raise RuntimeError(f"{dag_id} {run_id} ended {run['state']}: {dict(phase.states)}")
    return phase, run_id


def _check_ledger(deployment, dag_id: str, run_id: str, slugs: list[str]) -> None:
    """Every practice has a success row for each of the run's per-practice tasks, and only one."""
    rows = deployment.store.list_runs(run_id=run_id, dag_id=dag_id)
    per_task: dict[str, Counter] = {}
    for row in rows:
        per_task.setdefault((row.task_id or "").rsplit(".", 1)[-1], Counter())[(row.practice_slug, row.status)] += 1
    if not per_task:
        raise RuntimeError(f"{dag_id} {run_id}: no ledger rows")
    for task, counts in per_task.items():
        wrong = {k: n for k, n in counts.items() if k[1] != "success" or n != 1}
        missing = set(slugs) - {slug for slug, _ in counts}
        if wrong or missing:
            raise RuntimeError(f"{dag_id} {run_id} {task}: wrong rows {wrong}, practices missing {sorted(missing)}")


def _measure(args, count: int) -> tuple[list[Phase], dict]:
    from sqlalchemy import create_engine

    from tests.e2e.deployment import deployed

    home = Path(tempfile.mkdtemp(prefix=f"bench-scale-{count}-"))
    print(f"N={count}: Airflow home and component logs in {home} (removed after a successful run)", flush=True)
    options = {
        "practices": count,
        "patients": args.patients,
        "triggerer": args.triggerer,
        "connections": args.connections,
        "env": {"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(args.min_file_process_interval)},
    }
    phases: list[Phase] = []
    facts: dict = {}
    started = time.monotonic()
    with deployed(home, options) as deployment:
        facts["start_seconds"] = time.monotonic() - started
        client = deployment.stack.client()
        deployment.stack.wait_for_dags(client, {"cherry_backfill", "cherry_refresh", "cherry_smart_list"})
        facts["connections_file"] = (home / "connections.json").exists()
        slugs = [p["slug"] for p in deployment.practices]
        engine = create_engine(deployment.metadata_url)
        try:
            phase, run_id = _run_dag(deployment, engine, PHASES[0], "cherry_backfill")
            _check_ledger(deployment, "cherry_backfill", run_id, slugs)
            phases.append(phase)
            print(f"  {phase.name}: {phase.wall:.0f} s", flush=True)

            made = time.monotonic()
            for practice in deployment.cherry.practices:
                deployment.cherry.advance(minutes=0, refreshed=1, practice_id=practice.id)
            facts["events_seconds"] = time.monotonic() - made
            phase, run_id = _run_dag(deployment, engine, PHASES[1], "cherry_refresh")
            _check_ledger(deployment, "cherry_refresh", run_id, slugs)
            phases.append(phase)
            print(f"  {phase.name}: {phase.wall:.0f} s", flush=True)

            for name, dag_id in ((PHASES[2], "cherry_refresh"), (PHASES[3], "cherry_smart_list")):
                phase, run_id = _run_dag(deployment, engine, name, dag_id)
                phases.append(phase)
                print(f"  {phase.name}: {phase.wall:.0f} s", flush=True)

            before = _sample(deployment, engine)
            runs_before = sum(len(client.dag_runs(d)) for d in ("cherry_backfill", "cherry_refresh"))
            time.sleep(args.idle_seconds)
            after = _sample(deployment, engine)
            runs_after = sum(len(client.dag_runs(d)) for d in ("cherry_backfill", "cherry_refresh"))
            idle = _phase("idle, no runs (per 5 min)", before, after, run_seconds=None, task_instances=0)
            idle.scale = 300.0 / idle.wall
            facts["idle_runs"] = runs_after - runs_before
            phases.append(idle)
            facts["month_later"] = _month_later(deployment, engine)
        finally:
            engine.dispose()
    shutil.rmtree(home, ignore_errors=True)
    return phases, facts


# Tables `airflow db clean` reaches that the runs above fill (what the dry run's counts are compared with).
_CLEANED_TABLES = ("dag_run", "task_instance", "task_instance_history", "xcom", "log", "asset_event", "job")


def _month_later(deployment, engine) -> dict:
    """`cherry_maintenance`'s metadata clean, dry run (the same function its task runs, through the real `airflow db
    clean --dry-run`), as it would run 31 days from now with the default 30-day retention: what it would delete of
    the rows these runs left, i.e. that the metadata DB's growth is bounded by the retention."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from cherry_sync.maintenance import clean_metadata_db

    with engine.connect() as conn:
        present = {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608 - fixed names
            for table in _CLEANED_TABLES
        }
    started = time.monotonic()
    result = clean_metadata_db(
        deployment.metadata_url, 30, dry_run=True, now=datetime.now(UTC) + timedelta(days=31), timeout=600
    )
    return {"present": present, "would_delete": result["tables"], "seconds": time.monotonic() - started}


def _mb(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def _table(count: int, phases: list[Phase], components: list[str]) -> list[str]:
    head = ["phase", "wall", "run", "TIs", "CRM writes", "Cherry calls", *components, "CPU total", "CPU/practice"]
    lines = ["| " + " | ".join(head) + " | DB growth (largest tables) |", "|" + "---|" * (len(head) + 1)]
    for p in phases:
        cpu = [p.cpu.get(c, 0.0) * p.scale for c in components]
        total = sum(cpu)
        tables = ", ".join(f"{t} +{_mb(g * p.scale)}" for t, g in p.table_growth) or "-"
        lines.append(
            "| "
            + " | ".join(
                [
                    p.name,
                    f"{p.wall * p.scale:.0f} s",
                    f"{p.run_seconds:.0f} s" if p.run_seconds is not None else "-",
                    str(p.task_instances),
                    str(round(p.crm_writes * p.scale)),
                    str(round(p.cherry_calls * p.scale)),
                    *(f"{c:.1f}" for c in cpu),
                    f"{total:.1f} s",
                    f"{total / count:.2f} s",
                ]
            )
            + f" | {_mb(p.db_growth * p.scale)} ({tables}) |"
        )
    return lines


def run(args) -> int:
    started_at = datetime.now(UTC)
    for count in args.practices:
        phases, facts = _measure(args, count)
        components = ["scheduler", "dag-processor", "workers", "api-server"] + (["triggerer"] if args.triggerer else [])
        lines = [
            f"### {count} practices, {args.patients} patients each, refresh triggered by hand"
            + (" (triggerer running)" if args.triggerer else " (no triggerer)"),
            "",
            f"Run {started_at:%Y-%m-%d %H:%M} UTC on {machine()}, shared with other work (load average "
            f"{_load()}). `python -m bench scale --practices {count} --patients {args.patients} --idle-seconds "
            f"{args.idle_seconds:g} --connections {args.connections} --min-file-process-interval "
            f"{args.min_file_process_interval}{' --triggerer' if args.triggerer else ''}`. Deployment up in "
            f"{facts['start_seconds']:.0f} s; practice connections "
            + (
                {
                    "file": "in a connections file (ConnectionsFileBackend)",
                    "airflow-file": "in a connections file (LocalFilesystemBackend)",
                }[args.connections]
                if facts["connections_file"]
                else "as AIRFLOW_CONN_*"
            )
            + f"; {count} Cherry events made in {facts['events_seconds']:.0f} s before the event refresh. CPU in "
            "seconds (user + system, each component with all the processes it started; workers: both, with their "
            f"task processes). Idle window {args.idle_seconds:g} s, scaled to 5 minutes; runs started in it: "
            f"{facts['idle_runs']}.",
            "",
            *_table(count, phases, components),
            "",
            "Task instance states: "
            + "; ".join(f"{p.name}: {', '.join(f'{n} {s}' for s, n in sorted(p.states.items()))}" for p in phases[:4])
            + ".",
            "",
            _month_later_line(facts["month_later"]),
        ]
        publish(args, SECTION, INTRO, "\n".join(lines))  # one sub-section per N, each replaced on a re-run
    return 0


def _month_later_line(month: dict) -> str:
    present, gone = month["present"], month["would_delete"]
    cells = ", ".join(f"{table} {gone.get(table, 0)} of {present[table]}" for table in _CLEANED_TABLES)
    return (
        "A month later: `cherry_maintenance`'s metadata clean, dry run with the default 30-day retention, as it would "
        f"run 31 days after these runs (`airflow db clean --dry-run`, {month['seconds']:.0f} s), would delete "
        f"{sum(gone.values())} rows: {cells} (rows it would delete of the rows in the table now)."
    )


def _load() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
