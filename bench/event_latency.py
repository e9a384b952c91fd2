"""Event latency: from a Cherry event to its CRM write, on the real scheduler stack, by webhook and by feed polling.

    python -m bench event_latency [--minutes 5] [--every 10] [--poll-seconds 15] [--webhook-practices 2]

The deployment is the e2e one (tests/e2e/deployment.py): scheduler, triggerer, dag-processor, api-server (serving
the webhook receiver as a plugin) and two Celery workers on Redis, PostgreSQL for Airflow's metadata DB and the
sync store, the Cherry and CRM sandboxes on loopback. Three practices: the first `--webhook-practices` get Cherry
webhooks, the others are polled every `--poll-seconds`. Not measured: each practice is backfilled, then
`cherry_refresh` is unpaused (its catch-up hourly run is let finish) and Cherry is pointed at the receiver.

Measured: for `--minutes`, every practice has one new patient every `--every` seconds (staggered across practices,
so events arrive at a steady rate); each makes one `patient.created` event and, once applied, one CRM write. The
event's time is taken just before the sandbox call that creates it (so the figure includes that call). The
write's time is the CRM's own `dateAdded` of the contact the sync store links to the patient when the write
created it; when the patient was written onto a contact that was already there (a relative sharing an e-mail or
phone), the sync store's `written_at`, recorded as the CRM answered. Patients the sync rejects (no contact point,
a contact conflict) have no CRM write: counted by reason, not timed. Latency = write - event, per path (webhook,
polling): p50 / p95 / max (nearest rank). Also counted: the DAG runs started (by the watchers, or by the hourly
schedule), and the feed reads Cherry saw.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.results import machine, publish, verdict

SECTION = "Event latency"
INTRO = (
    "From a Cherry event to its CRM write, through the real scheduler stack (webhooks into the receiver and the\n"
    "inbox watcher, or the feed-polling watcher), by `python -m bench event_latency`. Targets: webhook p95 < 30 s\n"
    "and p50 < 15 s; polling p95 < 45 s at a 15 s interval."
)
SECRET = "whsec_" + "b3" * 16
DRAIN_SECONDS = 300  # after the last event: how long every write may still take before the run is called failed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench import RESULTS

    parser.add_argument("--minutes", type=float, default=5.0, help="how long events are emitted (5)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between one practice's events (10)")
    parser.add_argument("--poll-seconds", type=int, default=15, help="feed-polling interval (15)")
    parser.add_argument("--webhook-practices", type=int, default=2, choices=(0, 1, 2, 3), help="of 3 (2)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file (bench/RESULTS.md)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results file alone")


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (the value at or below which `share` of the samples lie)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _registry(args) -> tuple[list[dict], dict[str, str]]:
    from scripts.local_env import registry_practices

    entries, paths = [], {}
    for index, entry in enumerate(registry_practices()):
        entry = {**entry, "enabled": True}
        if index < args.webhook_practices:
            entry["events"] = {"webhooks": True}
            paths[entry["slug"]] = "webhook"
        else:
            entry["events"] = {"poll_seconds": args.poll_seconds}
            paths[entry["slug"]] = "polling"
        entries.append(entry)
    return entries, paths


def _wait(what: str, check, timeout: float, every: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout:.0f} s: {what}")
        time.sleep(every)


def _runs(client) -> list[dict]:
    return client.dag_runs("cherry_refresh")


def _prepare(deployment, paths: dict[str, str]) -> None:
    """Backfill every practice, unpause the refresh, let its catch-up run finish, subscribe the webhook practices."""
    client = deployment.stack.client()
    deployment.stack.wait_for_dags(client, {"cherry_backfill", "cherry_refresh"})
    client.unpause("cherry_backfill")
    run_id = client.trigger("cherry_backfill", {"practices": list(paths), "page_size": 50})
    assert client.wait_for_run("cherry_backfill", run_id, timeout=900)["state"] == "success", "backfill failed"
    client.unpause("cherry_refresh")
    _wait(
        "the unpause's catch-up run",
        lambda: (
            any(r["run_type"] == "scheduled" for r in _runs(client))
            and all(r["state"] in ("success", "failed") for r in _runs(client))
        ),
        timeout=600,
    )
    time.sleep(30)  # the triggerer picks the watchers up
    for slug, path in paths.items():
        if path == "webhook":
            url = f"{deployment.stack.api_url}/cherry-webhooks/{slug}"
            deployment.cherry.subscribe_webhooks(deployment.cherry_practice(slug), url, SECRET)


def _emit(deployment, paths: dict[str, str], minutes: float, every: float) -> tuple[dict[str, list[float]], list]:
    """One new patient per practice every `every` seconds, practices staggered; returns slug -> event times and
    the sandbox call durations."""
    cherry, slugs = deployment.cherry, list(paths)
    times: dict[str, list[float]] = {slug: [] for slug in slugs}
    calls = []
    start = time.monotonic()
    step = every / len(slugs)
    tick = 0
    while True:
        due = start + tick * step
        if due - start >= minutes * 60:
            break
        time.sleep(max(0.0, due - time.monotonic()))
        slug = slugs[tick % len(slugs)]
        before = time.time()
        cherry.advance(minutes=1, new_patients=1, practice_id=deployment.cherry_practice(slug).id)
        calls.append(time.time() - before)
        times[slug].append(before)
        tick += 1
    return times, calls


def _created_patients(deployment, slug: str, cursor: str) -> dict[str, str]:
    """The practice's `patient.created` events after `cursor`, in feed order: patient id -> event id."""
    events = deployment.cherry.fetch_all("/v1/events", deployment.cherry_practice(slug), cursor=cursor)
    return {e["patient_id"]: e["id"] for e in events if e["type"] == "patient.created"}


def _inbox_times(deployment) -> dict[str, float]:
    """Event id -> when the receiver stored the webhook (the sync store's inbox)."""
    from sqlalchemy import select

    from cherry_sync.store.schema_webhooks import webhook_inbox

    with deployment.store.engine.begin() as conn:
        rows = conn.execute(select(webhook_inbox.c.event_id, webhook_inbox.c.received_at)).all()
    return {event_id: at.timestamp() for event_id, at in rows}


def _stages(client, runs: list[dict]) -> dict[str, list[float]]:
    """Per watcher-started run: run start -> plan done -> first apply task started -> applies done -> run end."""

    def at(value: str | None) -> float | None:
        return datetime.fromisoformat(value).timestamp() if value else None

    stages: dict[str, list[float]] = {"plan": [], "to apply": [], "apply": [], "after apply": []}
    for run in runs:
        if run["run_type"] != "asset_triggered" or run["state"] != "success":
            continue
        tis = client.task_instances("cherry_refresh", run["dag_run_id"])
        plan = next(t for t in tis if t["task_id"] == "plan_refresh_work")
        applies = [t for t in tis if t["task_id"] == "apply_events" and t.get("start_date")]
        if not applies:
            continue
        start, plan_end = at(run["start_date"]), at(plan["end_date"])
        first = min(at(t["start_date"]) for t in applies)
        last = max(at(t["end_date"]) for t in applies)
        stages["plan"].append(plan_end - start)
        stages["to apply"].append(first - plan_end)
        stages["apply"].append(last - first)
        stages["after apply"].append(at(run["end_date"]) - last)
    return stages


def _write_times(deployment, slug: str, patient_ids: list[str], emitted: dict[str, float]) -> dict[str, tuple]:
    """Patient id -> (when its CRM write happened, how it is known), for the patients written so far; rejected
    patients (no CRM write) -> (None, reason code)."""
    store = deployment.store
    states = store.get_patient_states(slug, patient_ids)
    index = next(i for i, p in enumerate(deployment.practices) if p["slug"] == slug)
    client = deployment.crm.client(index)
    found: dict[str, tuple] = {}
    for pid, state in states.items():
        if state.written_at is None or not state.crm_contact_id:
            continue
        # The CRM's own stamp when the write created the contact; when the patient was written onto a contact
        # that was there before (a relative's shared e-mail or phone), the sync store's record of that write,
        # taken as the CRM answered.
        response = client.get(f"/contacts/{state.crm_contact_id}")
        added = None
        if response.status_code == 200:
            added = datetime.fromisoformat(response.json()["contact"]["dateAdded"].replace("Z", "+00:00")).timestamp()
        if added is not None and added >= emitted[pid]:
            found[pid] = (added, "crm")
        else:
            found[pid] = (state.written_at.timestamp(), "store")
    wanted = set(patient_ids) - set(found)
    for record in store.open_rejections(slug, kind="rejection"):
        if record.entity == "patient" and record.source_id in wanted:
            found[record.source_id] = (None, record.reason_code)
    return found


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": percentile(values, 0.50),
        "p95": percentile(values, 0.95),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def run(args) -> int:
    from tests.e2e.deployment import deployed

    registry, paths = _registry(args)
    options = {
        "registry": registry,
        "cherry_extras": {slug: {"webhook_secret": SECRET} for slug, path in paths.items() if path == "webhook"},
        "triggerer": True,
        "env": {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True"},
        "patients": 20,
    }
    started_at = datetime.now(UTC)
    home = Path(tempfile.mkdtemp(prefix="bench-event-latency-"))
    print(f"Airflow home and component logs: {home} (removed after a successful run)", flush=True)
    with deployed(home, options) as deployment:
        _prepare(deployment, paths)
        from cherry_sync.sync.practice_runs import EVENTS_STREAM

        cursors = {slug: deployment.store.get_cursor(slug, EVENTS_STREAM) for slug in paths}
        client = deployment.stack.client()
        runs_before = {r["dag_run_id"] for r in _runs(client)}
        deployment.cherry.reset_stats()
        emitted, calls = _emit(deployment, paths, args.minutes, args.every)
        emitted_done = time.monotonic()
        patients = {}
        for slug in paths:
            patients[slug] = _created_patients(deployment, slug, cursors[slug])
            assert len(patients[slug]) == len(emitted[slug]), (slug, len(patients[slug]), len(emitted[slug]))
        when = {slug: dict(zip(patients[slug], emitted[slug], strict=True)) for slug in paths}
        event_of = {pid: event_id for slug in paths for pid, event_id in patients[slug].items()}
        written: dict[str, dict[str, tuple]] = {slug: {} for slug in paths}

        def all_written() -> bool:
            for slug in paths:
                missing = [p for p in patients[slug] if p not in written[slug]]
                if missing:
                    written[slug].update(_write_times(deployment, slug, missing, when[slug]))
            return all(len(written[slug]) == len(patients[slug]) for slug in paths)

        _wait("every event written to the CRM (or rejected)", all_written, timeout=DRAIN_SECONDS, every=3)
        drain = time.monotonic() - emitted_done
        feed_reads = deployment.cherry.stats()["endpoints"].get("GET /v1/events", 0)
        _wait("the last runs finished", lambda: all(r["state"] in ("success", "failed") for r in _runs(client)), 300)
        new_runs = [r for r in _runs(client) if r["dag_run_id"] not in runs_before]
        stages = _stages(client, new_runs)
        stored = _inbox_times(deployment)

    to_inbox = [
        stored[event_of[pid]] - when[slug][pid]
        for slug, path in paths.items()
        if path == "webhook"
        for pid in patients[slug]
        if event_of[pid] in stored
    ]
    latencies: dict[str, list[float]] = {"webhook": [], "polling": []}
    sources: dict[str, int] = {}
    for slug, path in paths.items():
        for pid, (at, how) in written[slug].items():
            sources[how] = sources.get(how, 0) + 1
            if at is not None:
                latencies[path].append(at - when[slug][pid])
    report = _report(args, started_at, paths, latencies, new_runs, feed_reads, calls, drain, sources, stages, to_inbox)
    shutil.rmtree(home, ignore_errors=True)
    return publish(args, SECTION, INTRO, report)


def _report(args, started_at, paths, latencies, runs, feed_reads, calls, drain, sources, stages, to_inbox) -> str:
    targets = {"webhook": (15.0, 30.0), "polling": (None, 45.0)}
    polled = [s for s, p in paths.items() if p == "polling"]
    hooked = [s for s, p in paths.items() if p == "webhook"]
    rate = len(paths) * 60 / args.every
    lines = [
        f"### {args.webhook_practices} webhook + {3 - args.webhook_practices} polled practices, "
        f"{rate:g} events/min for {args.minutes:g} min, polling every {args.poll_seconds} s",
        "",
        f"Run {started_at:%Y-%m-%d %H:%M} UTC on {machine()}, shared with other work (load average "
        f"{_load()}). `python -m bench event_latency --minutes {args.minutes:g} --every {args.every:g} "
        f"--poll-seconds {args.poll_seconds} --webhook-practices {args.webhook_practices}`. Stack: scheduler, "
        "triggerer, dag-processor, api-server (1 worker, serving the receiver), 2 Celery workers "
        "(concurrency 4) on Redis, PostgreSQL; `cherry_refresh` with `max_active_runs=1`. Webhook practices: "
        f"{', '.join(hooked) or '-'}; polled: {', '.join(polled) or '-'}.",
        "",
        "| path | events | p50 | p95 | max | mean | target | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path, values in latencies.items():
        if not values:
            continue
        s = _summary(values)
        p50_target, p95_target = targets[path]
        ok = s["p95"] < p95_target and (p50_target is None or s["p50"] < p50_target)
        target = f"p95 < {p95_target:g} s" + (f", p50 < {p50_target:g} s" if p50_target else "")
        lines.append(
            f"| {path} | {s['n']} | {s['p50']:.1f} s | {s['p95']:.1f} s | {s['max']:.1f} s | {s['mean']:.1f} s "
            f"| {target} | {verdict(ok)} |"
        )
    by_type: dict[str, int] = {}
    for r in runs:
        by_type[r["run_type"]] = by_type.get(r["run_type"], 0) + 1
    events = sum(len(v) for v in latencies.values())
    durations = [
        (datetime.fromisoformat(r["end_date"]) - datetime.fromisoformat(r["start_date"])).total_seconds()
        for r in runs
        if r.get("end_date") and r.get("start_date")
    ]
    lines += [
        "",
        f"DAG runs started meanwhile: {', '.join(f'{n} {t}' for t, n in sorted(by_type.items())) or 'none'} "
        f"({events} events, {events / max(1, len(runs)):.1f} per run; run duration p50 "
        f"{percentile(durations, 0.5):.1f} s, max {max(durations):.1f} s)."
        if durations
        else "DAG runs started meanwhile: none.",
        f"Feed reads Cherry saw: {feed_reads} (the polling watchers, and feed wake-ups' runs). Sandbox call that "
        f"creates an event: median {statistics.median(calls) * 1000:.0f} ms (counted in the latency). Last write "
        f"{drain:.0f} s after the last event.",
        f"Write times: the CRM's `dateAdded` for {sources.pop('crm', 0)} contacts the event created, the sync "
        f"store's record of the write for {sources.pop('store', 0)} patients written onto a contact already there "
        "(a relative's shared e-mail or phone); not written, rejected with a reason code (not counted): "
        f"{', '.join(f'{reason} {n}' for reason, n in sorted(sources.items())) or 'none'}.",
    ]
    if to_inbox:
        lines.append(
            f"Webhook: event to stored in the inbox (Cherry's delivery and the receiver), p50 "
            f"{percentile(to_inbox, 0.5):.2f} s, max {max(to_inbox):.2f} s."
        )
    if stages["plan"]:
        parts = ", ".join(f"{name} {percentile(values, 0.5):.1f} s" for name, values in stages.items() if values)
        lines.append(
            f"Where a watcher-started run's time goes (median of {len(stages['plan'])} runs, from its start): {parts} "
            "(plan: the `plan_refresh_work` task; to apply: until the first `apply_events` task started; apply: "
            "until the last one ended, CRM writes included; after apply: `summarize` and the failure check, during "
            "which the next run cannot start, `max_active_runs=1`)."
        )
    return "\n".join(lines)


def _load() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
