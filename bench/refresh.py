"""Refresh: N Cherry events per practice over M practices through the real refresh engine into the CRM sandbox.

    python -m bench refresh [--practices 3] [--events 150] [--store sqlite|postgres] [--window 1] [--latency-ms 0]

Both sandboxes run as subprocesses on loopback, the store is SQLite (default) or a throwaway PostgreSQL database,
and every practice has an opportunity pipeline ("Patient Journey", stage "Financing"). First, not measured, each
practice of `--patients` Cherry patients is backfilled (time-scaled, without added latency). Then Cherry's clock
moves on `--minutes` and the practices live through a realistic mix of about `--events` events each (sandbox
`POST /_sandbox/advance`): new patients (a share of them leads the CRM already holds: `--duplicates` of the new
patients get a CRM contact with their e-mail, or their phone, before the refresh, as a web-form lead would;
relatives sharing a phone or e-mail come from the sandbox itself), account refreshes (some delivered out of
order), payments completed, refunded (in full or in part) and cancelled, accounts closed, pings, and 5% of the
events delivered twice. Then every practice's refresh (`refresh_practice`, the engine `cherry_refresh` runs)
starts at once, one worker process per practice like mapped Airflow tasks, at the limits asked for: the CRM
sandbox allows `--burst` (100) requests per `--window` seconds per location and the hook paces itself at `--pace`
(95) per window; `--window 10` is HighLevel's real limit, `--window 1` time-scales it. `--latency-ms` is added to
every CRM request during the refresh (HighLevel answers in roughly 100-300 ms). Cherry keeps its real limit.

Measured per location, from the CRM sandbox's own counters:
- CRM calls per record written, where records written = contacts created or updated (the engine's counts) +
  payment states written to an opportunity (created, valued or marked won / lost / abandoned). Excluded from the
  calls: exactly one `GET /locations/{id}/customFields` per run (the custom-field check every run starts with).
  Everything else counts, the run's other fixed reads included (`GET /locations/{id}` for the time-zone check and
  `GET /opportunities/pipelines`);
- share of the burst limit used while work remains: sampled every 50 ms as in the backfill benchmark, requests
  per window / limit averaged over the full windows between the first and the last CRM write (target >= 90%);
- 429 answers received (target 0), and the wall time of the refresh of all practices (worker start-up included);
- the CRM writes of an immediate re-run with nothing new (target 0).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

import requests

from bench.backfill import (
    CrmMonitor,
    _context,
    _get,
    _is_write,
    _practice_config,
    _quiet,
    backfill_worker,
    bench_store,
    sandboxes,
)
from bench.results import add_run_arguments, limits_label, machine, publish, verdict

SECTION = "Refresh"
FIELD_CHECK = "GET /locations/{locationId}/customFields"
OPPORTUNITY = {"pipeline": "Patient Journey", "stage": "Financing"}
CRM_API_VERSION = "2021-07-28"
BACKFILL_WINDOW = 1.0  # the backfill before the measurement runs time-scaled

# A practice's day, per 100 actions (new patients, refreshes, ...). Each action makes about EVENTS_PER_ACTION
# events (a payment: payment.completed and the patient's patient.refreshed; a refund or cancellation: its payment
# event and, when Cherry restores the balance, patient.refreshed; an out-of-order refresh: two versions).
MIX = {
    "new_patients": 15,
    "refreshed": 34,
    "payments": 14,
    "refunds": 3,
    "cancellations": 2,
    "deactivations": 3,
    "pings": 1,
}
EVENTS_PER_ACTION = {"refreshed": 1.1, "payments": 2.0, "refunds": 2.0, "cancellations": 2.0}
ACTIVITY_LABELS = {  # the sandbox's counts, as the report names them
    "duplicates": "events delivered twice",
    "out_of_order": "refreshes delivered out of order",
    "expired": "approvals expired",
    "deactivations": "accounts closed",
}
DUPLICATE_SHARE = 0.05  # events delivered a second time (same id)
OUT_OF_ORDER_SHARE = 0.1  # refreshed patients whose two versions arrive newest first


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--practices", type=int, default=3, help="practices (= CRM locations), default 3")
    parser.add_argument("--events", type=int, default=150, help="Cherry events per practice (about), default 150")
    parser.add_argument("--patients", type=int, default=500, help="Cherry patients per practice, default 500")
    parser.add_argument(
        "--duplicates", type=float, default=0.25, help="share of new patients the CRM already holds, default 0.25"
    )
    parser.add_argument("--minutes", type=float, default=60, help="simulated minutes of activity, default 60")
    parser.add_argument("--seed", type=int, default=7, help="Cherry sandbox seed, default 7")
    parser.add_argument("--page-size", type=int, default=500, help="events per Cherry page, default 500")
    add_run_arguments(parser, latency_help="added to every CRM request of the refresh (HighLevel: ~100-300 ms)")


# -- Cherry activity and CRM leads ---------------------------------------------------------------------------


def activity_plan(events: int) -> dict[str, int]:
    """Action counts per practice for about `events` events (before the sandbox's own expiries)."""
    per_100 = sum(n * EVENTS_PER_ACTION.get(action, 1.0) for action, n in MIX.items()) * (1 + DUPLICATE_SHARE)
    scale = events / per_100
    return {action: max(1, round(n * scale)) for action, n in MIX.items()}


def advance(cherry_url: str, plan: dict[str, int], minutes: float) -> dict:
    body = {
        "minutes": minutes,
        **plan,
        "duplicate_share": DUPLICATE_SHARE,
        "out_of_order_share": OUT_OF_ORDER_SHARE,
    }
    response = requests.post(f"{cherry_url}/_sandbox/advance", json=body, timeout=120)
    response.raise_for_status()
    return response.json()["practices"]


def _patients(cherry_url: str, practice_id: str) -> list[dict]:
    return _get(f"{cherry_url}/_sandbox/practices/{practice_id}/patients")


def add_leads(crm_url: str, location: dict, patients: list[dict], share: float, seed: int) -> Counter:
    """Give `share` of `patients` a CRM contact holding their e-mail (every other one: their phone), as a web-form
    lead would have been before they applied with Cherry. Returns how many were made, by contact point.

    The sandbox's synthetic contact details go from one sandbox to the other only; nothing is printed."""
    from cherry_sync.domain import normalise_phone

    rng = random.Random(seed)
    chosen = rng.sample(patients, min(len(patients), round(share * len(patients))))
    headers = {"Authorization": f"Bearer {location['token']}", "Version": CRM_API_VERSION}
    made: Counter = Counter()
    with requests.Session() as session:
        for i, row in enumerate(chosen):
            email = (row.get("email") or "").strip().lower() or None
            phone = normalise_phone(row["phone"]) if row.get("phone") else None
            point = "phone" if (i % 2 and phone) or not email else "email"
            value = phone if point == "phone" else email
            if not value:
                continue
            body = {"locationId": location["id"], "firstName": row["first_name"], point: value, "source": "web form"}
            response = session.post(f"{crm_url}/contacts/", json=body, headers=headers, timeout=10)
            made[point if response.ok else f"{point} refused"] += 1
    return made


# -- the refresh (runs in a worker process) -------------------------------------------------------------------


def refresh_worker(spec: dict) -> dict:
    """Run one practice's refresh; returns its summary, wall and CPU seconds."""
    _quiet()
    from cherry_sync.store import SyncStore, engine_from_url
    from cherry_sync.sync.practice_runs import refresh_practice

    ctx = _context(spec, SyncStore(engine_from_url(spec["store_url"])))
    wall, cpu = time.perf_counter(), time.process_time()
    summary = refresh_practice(ctx, page_size=spec["page_size"])
    return {"summary": summary.as_dict(), "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def run_pool(worker, specs: list[dict], workers: int) -> tuple[list[dict], float]:
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_quiet) as pool:
        results = list(pool.map(worker, specs))
    return results, time.perf_counter() - started


def _writes(endpoints: dict[str, int]) -> int:
    return sum(n for ep, n in endpoints.items() if _is_write(ep))


def _set_crm_limits(crm_url: str, burst: int, window: float) -> None:
    """Change the CRM sandbox's limits (the counts start over)."""
    body = {"burst_limit": burst, "burst_window_seconds": window}
    requests.put(f"{crm_url}/_sandbox/rate-limits", json=body, timeout=10).raise_for_status()


def _set_latency(crm_url: str, latency_ms: int) -> None:
    requests.put(f"{crm_url}/_sandbox/faults", json={"latency_ms": latency_ms}, timeout=10).raise_for_status()


# -- the run ----------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    _quiet()
    from cherry_sync.store import SyncStore, engine_from_url

    workers = args.workers or args.practices
    load_before = os.getloadavg()[0]
    plan = activity_plan(args.events)
    with (
        tempfile.TemporaryDirectory(prefix="cherry-bench-") as tmp,
        sandboxes(args) as sb,
        bench_store(args, Path(tmp)) as (store_url, store_label),
    ):
        store = SyncStore(engine_from_url(store_url))
        specs = []
        for index in range(args.practices):
            store.sync_practices([_practice_config(index, sb.practices[index], options={"opportunity": OPPORTUNITY})])
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
                    "options": {"opportunity": OPPORTUNITY},
                }
            )
        print(f"backfilling {args.practices} practices x {args.patients} patients (not measured)...", flush=True)
        _set_crm_limits(sb.crm_url, args.burst, min(args.window, BACKFILL_WINDOW))
        backfill_specs = [{**spec, "window": min(args.window, BACKFILL_WINDOW)} for spec in specs]
        backfilled, backfill_wall = run_pool(backfill_worker, backfill_specs, workers)

        before = {p["id"]: {row["id"] for row in _patients(sb.cherry_url, p["id"])} for p in sb.practices}
        activity = advance(sb.cherry_url, plan, args.minutes)
        leads = []
        for index, practice in enumerate(sb.practices):
            new = [row for row in _patients(sb.cherry_url, practice["id"]) if row["id"] not in before[practice["id"]]]
            leads.append(add_leads(sb.crm_url, sb.locations[index], new, args.duplicates, args.seed + index))
        print(
            f"  backfill {backfill_wall:.1f}s; Cherry activity: "
            f"{sum(a['events'] for a in activity.values())} events; refreshing...",
            flush=True,
        )

        _set_crm_limits(sb.crm_url, args.burst, args.window)  # also forgets the counts of the steps above
        _set_latency(sb.crm_url, args.latency_ms)
        sb.reset_crm_stats(args.window)
        with CrmMonitor(sb.crm_url, work=_writes) as monitor:
            first, first_wall = run_pool(refresh_worker, specs, workers)
        first_stats = sb.crm_stats()
        print(f"  refresh: {first_wall:.1f}s; re-running...", flush=True)
        sb.reset_crm_stats(args.window)
        second, second_wall = run_pool(refresh_worker, specs, workers)
        second_stats = sb.crm_stats()

    rows = []
    for spec, run1, run2, lead in zip(specs, first, second, leads, strict=True):
        loc = spec["location"]["id"]
        s1 = first_stats["by_key"].get(loc, {})
        s2 = second_stats["by_key"].get(loc, {})
        endpoints = Counter(s1.get("endpoints", {}))
        summary = run1["summary"]
        patients, events = summary["patients"], summary["events"]
        contacts = patients["created"] + patients["updated"]
        opportunity_writes = events["opportunities_updated"]
        excluded = min(1, endpoints[FIELD_CHECK])
        counted = s1.get("requests", 0) - excluded
        rows.append(
            {
                "practice": spec["index"],
                "activity": activity[spec["practice"]["id"]],
                "leads": lead,
                "events": events,
                "patients": patients,
                "contacts": contacts,
                "opportunity_writes": opportunity_writes,
                "written": contacts + opportunity_writes,
                "crm_requests": s1.get("requests", 0),
                "field_checks": endpoints[FIELD_CHECK],
                "excluded": excluded,
                "per_write": counted / max(1, contacts + opportunity_writes),
                "crm_writes": _writes(endpoints),
                "endpoints": endpoints,
                "429": s1.get("status_codes", {}).get("429", 0),
                "max_in_window": s1.get("max_in_window", 0),
                "max_concurrent": s1.get("max_concurrent", 0),
                "utilisation": monitor.utilisation(loc, args.window, args.burst),
                "wall": run1["wall"],
                "cpu": run1["cpu"],
                "rerun_requests": s2.get("requests", 0),
                "rerun_writes": _writes(s2.get("endpoints", {})),
                "rerun_events": run2["summary"]["events"]["events"],
            }
        )
    load = (load_before, os.getloadavg()[0])
    backfill_contacts = sum(r["summary"]["patients"]["created"] for r in backfilled)
    report = render(args, store_label, rows, plan, first_wall, second_wall, workers, load, backfill_contacts)
    return publish(args, SECTION, _SECTION_INTRO, report)


# -- reporting -----------------------------------------------------------------------------------------------------


def _subsection_title(args: argparse.Namespace, store_label: str) -> str:
    practices = f"{args.practices} practice{'s' if args.practices != 1 else ''}"
    return f"{practices} x {args.events} events, {store_label} store, {limits_label(args)}"


def _command(args: argparse.Namespace) -> str:
    line = (
        f"python -m bench refresh --practices {args.practices} --events {args.events} --patients {args.patients}"
        f" --duplicates {args.duplicates:g} --minutes {args.minutes:g} --store {args.store} --window {args.window:g}"
        f" --burst {args.burst} --pace {args.pace}"
    )
    return line + (f" --latency-ms {args.latency_ms}" if args.latency_ms else "")


def render(args, store_label, rows, plan, first_wall, second_wall, workers, load, backfill_contacts) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    written = sum(r["written"] for r in rows)
    per_write = max(r["per_write"] for r in rows)
    overall_per_write = sum(r["crm_requests"] - r["excluded"] for r in rows) / max(1, written)
    # A write phase shorter than one window has no full window to average over: left out (and shown as such).
    util = [r["utilisation"]["mean_window"] for r in rows if _full_windows(r, args.window)]
    util_cell = (
        f"{min(util):.1%} (worst practice, mean over windows) | {verdict(min(util) >= 0.9)}"
        if util
        else "no write phase longer than one window | not measured"
    )
    too_many = sum(r["429"] for r in rows)
    rerun_writes = sum(r["rerun_writes"] for r in rows)
    events = sum(r["events"]["events"] for r in rows)
    asked = ", ".join(f"{action.replace('_', ' ')} {n}" for action, n in plan.items())
    lines = [
        f"### {_subsection_title(args, store_label)}",
        "",
        f"Run {now} on {machine()}; 1-minute load average {load[0]:.2f} before, {load[1]:.2f} after "
        "(other jobs shared the machine when above ~0.5).",
        f"`{_command(args)}`: {workers} worker processes (one per practice), sandboxes as subprocesses; CRM limit "
        f"{args.burst} per {args.window:g} s per location (HighLevel: 100 per 10 s), hook paced at {args.pace} per "
        f"{args.window:g} s. Backfilled first (not measured): {backfill_contacts} contacts over the "
        f"{args.practices} locations. Asked of Cherry per practice: {asked}, {DUPLICATE_SHARE:.0%} of events "
        f"delivered twice, {OUT_OF_ORDER_SHARE:.0%} of refreshes out of order, over {args.minutes:g} minutes.",
        "",
        "| target | result | |",
        "|---|---|---|",
        f"| CRM calls per contact or opportunity written <= 1.15 (one custom-field check per run excluded) | "
        f"{per_write:.2f} (worst practice; {overall_per_write:.2f} over all) | {verdict(per_write <= 1.15)} |",
        f"| burst limit used while work remains >= 90% | {util_cell} |",
        f"| 429s received = 0 | {too_many} | {verdict(too_many == 0)} |",
        f"| writes on an immediate unchanged re-run = 0 | {rerun_writes} | {verdict(rerun_writes == 0)} |",
        f"| wall time of the refresh, all practices at once | {first_wall:.1f} s ({events} events, {written} "
        "records written) | reported |",
        "",
        f"Unchanged re-run {second_wall:.1f} s wall (both including the worker processes' start-up).",
        "",
        "| practice | events (twice delivered) | contacts created / updated / unchanged | rejected (reasons) | "
        "warnings | leads in the CRM before | opportunity writes | records written | CRM requests | of which "
        "excluded | calls/record written | CRM writes | 429s | max requests in a window | max in flight | burst "
        "used: mean (min-max) per window | overall | write phase | worker wall / CPU | re-run: requests, writes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        u = r["utilisation"]
        used = (
            f"{u['mean_window']:.1%} ({u['min_window']:.0%}-{u['max_window']:.0%}) | {u['overall']:.1%}"
            if _full_windows(r, args.window)
            else "- (write phase < 1 window) | -"
        )
        p, e = r["patients"], r["events"]
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(p["rejects_by_reason"].items())) or "-"
        warnings = ", ".join(f"{k} {v}" for k, v in sorted(p["warnings_by_reason"].items())) or "-"
        leads = ", ".join(f"{n} by {point}" for point, n in sorted(r["leads"].items())) or "-"
        lines.append(
            f"| {r['practice']} | {e['events']} ({e['duplicates']}) | {p['created']} / {p['updated']} / "
            f"{p['unchanged']} | {p['rejected']} ({reasons}) | {warnings} | {leads} | {r['opportunity_writes']} "
            f"({e['payments_applied']} payment states applied) | {r['written']} | {r['crm_requests']} | "
            f"{r['excluded']} | {r['per_write']:.2f} | {r['crm_writes']} | {r['429']} | {r['max_in_window']} | "
            f"{r['max_concurrent']} | {used} | {u.get('seconds', 0):.1f} s | "
            f"{r['wall']:.1f} s / {r['cpu']:.1f} s | {r['rerun_requests']}, {r['rerun_writes']} |"
        )
    totals: Counter = Counter()
    for r in rows:
        totals.update(r["endpoints"])
    lines += [
        "",
        f"CRM requests by endpoint, all practices ({written} records written):",
        "",
        "| endpoint | requests | per record written |",
        "|---|---|---|",
    ]
    for endpoint, n in sorted(totals.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"| `{endpoint}` | {n} | {n / max(1, written):.2f} |")
    activity: Counter = Counter()
    for r in rows:
        activity.update({k: v for k, v in r["activity"].items() if isinstance(v, int)})
    done = ", ".join(
        f"{ACTIVITY_LABELS.get(k, k.replace('_', ' '))} {v}" for k, v in sorted(activity.items()) if v and k != "events"
    )
    lines += ["", f"What Cherry did, all practices: {done}."]
    return "\n".join(lines)


def _full_windows(row: dict, window: float) -> bool:
    return row["utilisation"].get("seconds", 0.0) >= window


_SECTION_INTRO = (__doc__ or "").split("\n\n", 2)[2].strip()
