"""Backfill: K practices x N patients through the real sync engine into the CRM sandbox.

    python -m bench backfill [--practices 3] [--patients 2000] [--store sqlite|postgres] [--window 1]

Both sandboxes run as subprocesses on loopback (so the client's CPU time is its own). Each practice's
backfill runs in its own worker process, all at once, like mapped Airflow tasks on enough worker slots,
with the store on SQLite (default) or a throwaway PostgreSQL database. Time is scaled by default: the CRM
sandbox allows `--burst` (100) requests per `--window` (1 s) per location instead of HighLevel's 100 per
10 s, and the hook paces itself at `--pace` (95) per window, the production ratio. `--window 10` runs at the
real limits (ten times slower). Cherry keeps its real limit (20/s per key; the hook paces at 18/s).

Measured, per location, from the CRM sandbox's own counters:
- CRM calls per patient beyond the one-time field setup (target <= 1.05);
- writes during an unchanged re-run (target 0);
- share of the burst limit used while contact writes remain: the counters are sampled every 50 ms and
  requests per window / limit is averaged over the full windows between the first and the last contact
  write (target >= 90%);
- 429 answers received (target 0);
- the most requests of one location the sandbox was answering at once (the write window at work), and each
  worker process's peak resident memory (flat in the number of patients: pages are streamed);
and, in this process, the CPU time of the engine's own work (parse + store + map + hash + match + diff)
per 10,000 patients: the same Cherry pages, fetched beforehand, are re-synced by `PatientSyncer` in dry-run
mode (no HTTP at all: the CRM's contacts are prefetched into the directory before the clock starts),
timed with `time.process_time()`, against a cold store (first run) and the warm store of the benchmark
(re-run). With SQLite the store's CPU is in-process and counted; with PostgreSQL the server's is not.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import requests

from bench import REPO
from bench.results import add_run_arguments, limits_label, machine, publish, verdict

SECTION = "Backfill"
FIELD_SETUP = ("GET /locations/{locationId}/customFields", "POST /locations/{locationId}/customFields")
UPSERT = "POST /contacts/upsert"
READS_BY_POST = frozenset({"POST /contacts/search"})
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
SAMPLE_SECONDS = 0.05
PG_ADMIN_URL = os.environ.get("CHERRY_SYNC_BENCH_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--practices", type=int, default=3, help="practices (= CRM locations), default 3")
    parser.add_argument("--patients", type=int, default=2000, help="Cherry patients per practice, default 2000")
    parser.add_argument("--seed", type=int, default=7, help="Cherry sandbox seed, default 7")
    parser.add_argument("--page-size", type=int, default=500, help="Cherry page size, default 500")
    parser.add_argument("--cpu-practices", type=int, default=None, help="practices re-synced for the CPU figure")
    add_run_arguments(parser, latency_help="added to every CRM request (HighLevel answers in ~100-300 ms)")


# -- sandboxes ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Sandboxes:
    """Both sandboxes as subprocesses, with what the workers need to reach them."""

    cherry_url: str
    crm_url: str
    practices: list[dict]  # {id, timezone, name, api_key}
    locations: list[dict]  # {id, token}
    processes: list[subprocess.Popen] = field(default_factory=list)

    def crm_stats(self) -> dict:
        return _get(f"{self.crm_url}/_sandbox/stats")

    def reset_crm_stats(self, window_seconds: float) -> None:
        """Zero the counters; `max_in_window` is then counted over the rate limit's own window."""
        params = {"window_seconds": window_seconds}
        requests.post(f"{self.crm_url}/_sandbox/stats/reset", params=params, timeout=10).raise_for_status()

    def cherry_stats(self) -> dict:
        return _get(f"{self.cherry_url}/_sandbox/stats")


def _get(url: str) -> Any:
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    return response.json()


def _wait_ready(url: str, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the {what} sandbox exited with status {proc.returncode}")
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the {what} sandbox did not start within {timeout:.0f}s")


@contextmanager
def sandboxes(args: argparse.Namespace):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    cherry_port, crm_port = _free_port(), _free_port()
    cherry_cmd = [
        sys.executable,
        "-m",
        "sandbox.cherry",
        "--seed",
        str(args.seed),
        "--practices",
        str(args.practices),
        "--patients",
        str(args.patients),
        "--port",
        str(cherry_port),
    ]
    crm_cmd = [
        sys.executable,
        "-m",
        "sandbox.crm",
        "--port",
        str(crm_port),
        "--locations",
        str(args.practices),
        "--burst-limit",
        str(args.burst),
        "--burst-window",
        str(args.window),
    ]
    procs = []
    try:
        for cmd in (cherry_cmd, crm_cmd):
            # The banners list sandbox keys and tokens (not secrets, but not worth printing either).
            procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL))
        cherry_url, crm_url = f"http://127.0.0.1:{cherry_port}", f"http://127.0.0.1:{crm_port}"
        _wait_ready(cherry_url, procs[0], "Cherry")
        _wait_ready(crm_url, procs[1], "CRM")
        practices = [
            {
                "id": row["id"],
                "name": row["name"],
                "timezone": row["timezone"],
                "api_key": next(k["api_key"] for k in row["api_keys"] if k["activated"]),
            }
            for row in _get(f"{cherry_url}/_sandbox/practices")
        ]
        locations = [
            {"id": loc["id"], "token": loc["token"]} for loc in _get(f"{crm_url}/_sandbox/locations")["locations"]
        ]
        yield Sandboxes(cherry_url, crm_url, practices, locations, procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- the store -----------------------------------------------------------------------------------------


@contextmanager
def bench_store(args: argparse.Namespace, workdir: Path):
    """(url, label): a migrated, empty store; a throwaway PostgreSQL database is dropped afterwards."""
    from cherry_sync.store import engine_from_url, migrate
    from cherry_sync.store.engine import dispose_engine

    if args.store_url:
        migrate(engine_from_url(args.store_url))
        yield args.store_url, "given URL"
        return
    if args.store == "sqlite":
        url = f"sqlite:///{workdir / 'bench-store.db'}"
        migrate(engine_from_url(url))
        yield url, "SQLite"
        dispose_engine(url)
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"cherry_sync_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(engine_from_url(url))
        yield url, "PostgreSQL"
    finally:
        dispose_engine(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- one practice's backfill (runs in a worker process) ------------------------------------------------


def _practice_config(index: int, practice: dict, slug: str | None = None, options: dict | None = None):
    from cherry_sync.registry import PracticeConfig

    return PracticeConfig.model_validate(
        {
            "slug": slug or f"bench-{index}",
            "display_name": practice["name"][:200],
            "timezone": practice["timezone"],
            "cherry_conn_id": f"cherry_bench_{index}",
            "crm_conn_id": f"crm_bench_{index}",
            "options": options or {},
        }
    )


def _context(spec: dict, store, slug: str | None = None):
    from airflow.sdk import Connection

    from cherry_sync.context import PracticeContext
    from cherry_sync.hooks.cherry import CherryHook
    from cherry_sync.hooks.crm import AesthetixCrmHook
    from cherry_sync.hooks.pacing import MemoryPacer

    practice = _practice_config(spec["index"], spec["practice"], slug, spec.get("options"))
    pacer = MemoryPacer()
    cherry = CherryHook(
        practice.cherry_conn_id,
        connection=Connection(
            conn_id=practice.cherry_conn_id,
            conn_type="http",
            host=spec["cherry_url"],
            password=spec["practice"]["api_key"],
        ),
        pacer=pacer,
    )
    crm_extra = {
        "location_id": spec["location"]["id"],
        "burst_limit": spec["pace"],
        "burst_window_seconds": spec["window"],
    }
    crm = AesthetixCrmHook(
        practice.crm_conn_id,
        connection=Connection(
            conn_id=practice.crm_conn_id,
            conn_type="http",
            host=spec["crm_url"],
            password=spec["location"]["token"],
            extra=json.dumps(crm_extra),
        ),
        pacer=pacer,
    )
    return PracticeContext(practice=practice, store=store, cherry=cherry, crm=crm)


def _quiet() -> None:
    logging.disable(logging.WARNING)


def backfill_worker(spec: dict) -> dict:
    """Run one practice's backfill; returns its summary, wall and CPU seconds."""
    _quiet()
    from cherry_sync.store import SyncStore, engine_from_url
    from cherry_sync.sync.practice_runs import backfill_practice

    ctx = _context(spec, SyncStore(engine_from_url(spec["store_url"])))
    wall, cpu = time.perf_counter(), time.process_time()
    summary = backfill_practice(ctx, page_size=spec["page_size"])
    return {
        "summary": summary.as_dict(),
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        # Peak resident set of this worker process (Linux reports KiB), start-up and imports included.
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_all(specs: list[dict], workers: int) -> tuple[list[dict], float]:
    ctx = get_context("spawn")
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_quiet) as pool:
        results = list(pool.map(backfill_worker, specs))
    return results, time.perf_counter() - started


# -- sampling the CRM's counters --------------------------------------------------------------------------


def _upserts(endpoints: dict[str, int]) -> int:
    return endpoints.get(UPSERT, 0)


class CrmMonitor:
    """Samples the CRM sandbox's per-location counters (requests, and the work done: by default contact upserts)
    every 50 ms."""

    def __init__(self, crm_url: str, work=_upserts) -> None:
        self.url = f"{crm_url}/_sandbox/stats"
        self.work = work
        self.samples: list[tuple[float, dict[str, tuple[int, int]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="crm-monitor")
        self._session = requests.Session()

    def __enter__(self) -> CrmMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._session.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                body = self._session.get(self.url, timeout=5).json()
            except requests.RequestException:
                continue
            # Stamp at the midpoint of the poll.
            self.samples.append(
                (
                    (t + time.monotonic()) / 2,
                    {
                        key: (row["requests"], self.work(row["endpoints"]))
                        for key, row in body.get("by_key", {}).items()
                    },
                )
            )
            self._stop.wait(max(0.0, SAMPLE_SECONDS - (time.monotonic() - t)))

    def utilisation(self, location: str, window: float, limit: int) -> dict[str, float]:
        """Requests per window / limit over the full windows between the first and the last write counted as
        work (contact upserts unless told otherwise)."""
        series = [(t, row.get(location, (0, 0))) for t, row in self.samples]
        final_upserts = series[-1][1][1] if series else 0
        if final_upserts == 0:
            return {}
        start = next(t for t, (_, u) in series if u > 0)
        end = next(t for t, (_, u) in series if u == final_upserts)
        times = [t for t, _ in series]
        counts = [r for _, (r, _) in series]

        def requests_at(moment: float) -> float:
            # Linear interpolation between samples.
            i = max(0, min(len(times) - 2, next((k for k, t in enumerate(times) if t >= moment), len(times) - 1) - 1))
            t0, t1 = times[i], times[i + 1]
            share = 0.0 if t1 == t0 else min(1.0, max(0.0, (moment - t0) / (t1 - t0)))
            return counts[i] + share * (counts[i + 1] - counts[i])

        shares = []
        moment = start + window
        while moment <= end:
            shares.append((requests_at(moment) - requests_at(moment - window)) / limit)
            moment += SAMPLE_SECONDS
        overall = (requests_at(end) - requests_at(start)) / (limit * (end - start) / window) if end > start else 0.0
        return {
            "seconds": end - start,
            "overall": overall,
            "mean_window": statistics.fmean(shares) if shares else overall,
            "min_window": min(shares) if shares else overall,
            "max_window": max(shares) if shares else overall,
        }


# -- CPU of the engine's own work -------------------------------------------------------------------------


def measure_cpu(spec: dict, store_url: str, warm_slug: str) -> dict[str, dict]:
    """Re-sync the practice's pages in dry-run mode, timing only `PatientSyncer.sync_raw` (no HTTP inside)."""
    from cherry_sync.domain import RecordRejected, parse_payment
    from cherry_sync.store import SyncStore, engine_from_url
    from cherry_sync.sync.contacts import PrefetchedDirectory
    from cherry_sync.sync.estimates import practice_estimates
    from cherry_sync.sync.events import payment_snapshot
    from cherry_sync.sync.fields import provision_fields
    from cherry_sync.sync.patients import PatientSyncer, SyncCounts

    store = SyncStore(engine_from_url(store_url))
    ctx = _context(spec, store)
    pages = [page.items for page in ctx.cherry.iter_patient_pages(status="ACTIVE", limit=spec["page_size"])]
    payments = []
    for page in ctx.cherry.iter_payment_pages(limit=500):
        for raw in page.items:
            with suppress(RecordRejected):
                payments.append(payment_snapshot(parse_payment(raw)))
    estimates = practice_estimates(ctx.cherry, ctx.practice.options.estimate_amounts)
    field_ids = provision_fields(ctx.crm, dry_run=True).field_ids
    populated = PrefetchedDirectory(ctx.crm)
    populated.get("")  # loads every contact of the location now, outside the timed part
    empty = PrefetchedDirectory(ctx.crm)
    empty._loaded = True  # an empty CRM location: nothing to load

    scenarios = {
        "first run, empty CRM (parse, store, map, hash, plan create)": ("cold-a", empty),
        "first run, CRM already holds the contacts (+ match, diff)": ("cold-b", populated),
        "re-run, warm store (parse, store, map, hash: unchanged)": (None, populated),
    }
    out: dict[str, dict] = {}
    for label, (suffix, directory) in scenarios.items():
        slug = f"{warm_slug}-{suffix}" if suffix else warm_slug
        if suffix:
            store.sync_practices([_practice_config(spec["index"], spec["practice"], slug)])
            store.upsert_payments(slug, payments)
        syncer = PatientSyncer(
            store=store,
            crm=ctx.crm,
            slug=slug,
            timezone=ctx.practice.timezone,
            field_ids=field_ids,
            directory=directory,
            practice_estimates=estimates,
            dry_run=True,
            index_owners=True,  # as the backfill does
        )
        counts = SyncCounts()
        started = time.process_time()
        for items in pages:
            counts.add(syncer.sync_raw(items))
        cpu = time.process_time() - started
        out[label] = {
            "patients": counts.read,
            "cpu": cpu,
            "per_10k": cpu / max(1, counts.read) * 10_000,
            "counts": counts.as_dict(),
        }
    return out


# -- the run ------------------------------------------------------------------------------------------------


def _is_write(endpoint: str) -> bool:
    return endpoint.split(" ", 1)[0] in WRITE_METHODS and endpoint not in READS_BY_POST


def run(args: argparse.Namespace) -> int:
    _quiet()
    from cherry_sync.store import SyncStore, engine_from_url

    workers = args.workers or args.practices
    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="cherry-bench-") as tmp,
        sandboxes(args) as sb,
        bench_store(args, Path(tmp)) as (store_url, store_label),
    ):
        store = SyncStore(engine_from_url(store_url))
        specs = []
        for index in range(args.practices):
            store.sync_practices([_practice_config(index, sb.practices[index])])
            specs.append(
                {
                    "index": index,
                    "practice": sb.practices[index],
                    "location": sb.locations[index],
                    "cherry_url": sb.cherry_url,
                    "crm_url": sb.crm_url,
                    "store_url": store_url,
                    "page_size": args.page_size,
                    "pace": args.pace,
                    "window": args.window,
                }
            )
        if args.latency_ms:
            requests.put(f"{sb.crm_url}/_sandbox/faults", json={"latency_ms": args.latency_ms}, timeout=10)
        print(f"backfilling {args.practices} practices x {args.patients} patients ({store_label} store)...", flush=True)
        sb.reset_crm_stats(args.window)
        with CrmMonitor(sb.crm_url) as monitor:
            first, first_wall = run_all(specs, workers)
        first_stats = sb.crm_stats()
        print(f"  first run: {first_wall:.1f}s; re-running...", flush=True)
        sb.reset_crm_stats(args.window)
        second, second_wall = run_all(specs, workers)
        second_stats = sb.crm_stats()
        print(f"  re-run: {second_wall:.1f}s; measuring CPU...", flush=True)
        cpu_specs = specs[: args.cpu_practices or args.practices]
        cpu = [measure_cpu(spec, store_url, f"bench-{spec['index']}") for spec in cpu_specs]

    rows = []
    for spec, run1, run2 in zip(specs, first, second, strict=True):
        loc = spec["location"]["id"]
        s1 = first_stats["by_key"].get(loc, {})
        s2 = second_stats["by_key"].get(loc, {})
        endpoints = Counter(s1.get("endpoints", {}))
        setup = sum(endpoints[ep] for ep in FIELD_SETUP)
        patients = run1["summary"]["patients"]
        rows.append(
            {
                "practice": spec["index"],
                "read": patients["read"],
                "created": patients["created"],
                "rejected": patients["rejected"],
                "rejects": patients["rejects_by_reason"],
                "crm_requests": s1.get("requests", 0),
                "field_setup": setup,
                "per_patient": (s1.get("requests", 0) - setup) / max(1, patients["read"]),
                "per_contact": (s1.get("requests", 0) - setup) / max(1, patients["created"] + patients["updated"]),
                "429": s1.get("status_codes", {}).get("429", 0),
                "max_in_window": s1.get("max_in_window", 0),
                "max_concurrent": s1.get("max_concurrent", 0),
                "peak_rss_mib": run1.get("peak_rss_mib", 0.0),
                "utilisation": monitor.utilisation(loc, args.window, args.burst),
                "wall": run1["wall"],
                "cpu": run1["cpu"],
                "rerun_writes": sum(n for ep, n in s2.get("endpoints", {}).items() if _is_write(ep)),
                "rerun_requests": s2.get("requests", 0),
                "rerun_unchanged": run2["summary"]["patients"]["unchanged"],
                "rerun_wall": run2["wall"],
            }
        )
    load = (load_before, os.getloadavg()[0])
    report = render(args, store_label, rows, cpu, first_wall, second_wall, workers, load)
    return publish(args, SECTION, _SECTION_INTRO, report)


# -- reporting --------------------------------------------------------------------------------------------


def _subsection_title(args: argparse.Namespace, store_label: str) -> str:
    practices = f"{args.practices} practice{'s' if args.practices != 1 else ''}"
    return f"{practices} x {args.patients} patients, {store_label} store, {limits_label(args)}"


def render(args, store_label, rows, cpu, first_wall, second_wall, workers, load=(0.0, 0.0)) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    per_patient = max(r["per_patient"] for r in rows)
    rerun_writes = sum(r["rerun_writes"] for r in rows)
    util = [r["utilisation"].get("mean_window", 0.0) for r in rows]
    too_many = sum(r["429"] for r in rows)
    cpu_cold = [c["first run, CRM already holds the contacts (+ match, diff)"]["per_10k"] for c in cpu]
    lines = [
        f"### {_subsection_title(args, store_label)}",
        "",
        f"Run {now} on {machine()}; 1-minute load average {load[0]:.2f} before, {load[1]:.2f} after "
        "(other jobs shared the machine when above ~0.5).",
        f"`python -m bench backfill --practices {args.practices} --patients {args.patients} --store {args.store}"
        f" --window {args.window:g} --burst {args.burst} --pace {args.pace} --page-size {args.page_size}"
        f"{f' --latency-ms {args.latency_ms}' if args.latency_ms else ''}`: "
        f"{workers} worker processes (one per practice), sandboxes as subprocesses; CRM limit {args.burst} per "
        f"{args.window:g} s per location (HighLevel: 100 per 10 s), hook paced at {args.pace} per {args.window:g} s.",
        "",
        "| target | result | |",
        "|---|---|---|",
        f"| CRM calls per patient beyond field setup <= 1.05 | {per_patient:.3f} (worst practice) | "
        f"{verdict(per_patient <= 1.05)} |",
        f"| writes on an unchanged re-run = 0 | {rerun_writes} | {verdict(rerun_writes == 0)} |",
        f"| burst limit used while work remains >= 90% | {min(util):.1%} (worst practice, mean over windows) | "
        f"{verdict(min(util) >= 0.9)} |",
        f"| 429s received = 0 | {too_many} | {verdict(too_many == 0)} |",
        f"| CPU per 10,000 patients (map + diff + store) | {statistics.fmean(cpu_cold):.2f} s "
        "(first run against existing contacts) | reported |",
        "",
        f"First run {first_wall:.1f} s wall for {sum(r['read'] for r in rows)} active patients; "
        f"unchanged re-run {second_wall:.1f} s (both including the worker processes' start-up).",
        "",
        "| practice | active patients read | contacts created | rejected (reasons) | CRM requests | of which field "
        "setup | calls/patient | calls/contact written | 429s | max requests in a window | max in flight | burst "
        "used: mean (min-max) per window | overall | write phase | worker wall / CPU | worker peak RSS | re-run: "
        "requests, writes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        u = r["utilisation"]
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["rejects"].items())) or "-"
        lines.append(
            f"| {r['practice']} | {r['read']} | {r['created']} | {r['rejected']} ({reasons}) | {r['crm_requests']} | "
            f"{r['field_setup']} | {r['per_patient']:.3f} | {r['per_contact']:.3f} | {r['429']} | "
            f"{r['max_in_window']} | {r['max_concurrent']} | {u.get('mean_window', 0):.1%} "
            f"({u.get('min_window', 0):.0%}-{u.get('max_window', 0):.0%}) | {u.get('overall', 0):.1%} | "
            f"{u.get('seconds', 0):.1f} s | {r['wall']:.1f} s / {r['cpu']:.1f} s | {r['peak_rss_mib']:.0f} MiB | "
            f"{r['rerun_requests']}, {r['rerun_writes']} |"
        )
    lines += [
        "",
        "CPU of the engine's own work, per 10,000 patients (dry-run re-sync of the same pages, no HTTP, "
        "`time.process_time()`):",
        "",
        "| scenario | " + " | ".join(f"practice {i}" for i in range(len(cpu))) + " |",
        "|---|" + "---|" * len(cpu),
    ]
    for label in cpu[0] if cpu else []:
        cells = " | ".join(f"{c[label]['per_10k']:.2f} s ({c[label]['patients']} patients)" for c in cpu)
        lines.append(f"| {label} | {cells} |")
    if store_label == "PostgreSQL":
        lines += ["", "With PostgreSQL the database server's own CPU is not in these figures (another process)."]
    return "\n".join(lines)


_SECTION_INTRO = (__doc__ or "").split("\n\n", 2)[2].strip()
