"""The `cherry_events/<slug>` Assets that `cherry_refresh` is scheduled on, their watchers, and what one run does.

`cherry_events_assets()` reads the registry when the DAG file is parsed (a local file, like the trigger form's
practice picker) and gives every enabled practice its own Asset with one watcher: an `InboxWatcher` when Cherry
sends it webhooks (`events.webhooks: true`), a `FeedWatcher` polling every `events.poll_seconds` otherwise. A
registry change is picked up at the next parse (the triggerer then starts and stops watchers to match). The
dag-processor parses the file every 30 s in a fresh process, so the read is cheap by design: libyaml, parsed once
per process (`cherry_sync.registry_file`), and only the fields an Asset needs are checked (`watched_practices`),
not the whole entry: pydantic's validation of 1,000 entries would cost more than the rest of the parse. An entry
whose other settings are wrong still gets its watcher; the run skips it (it is not a valid enabled practice then)
and `load_registry` reports what is wrong.

Why one Asset per practice and not one shared: the scheduler queues a DAG once per Asset (one queue row, stamped
when its first event came) and a run consumes the events up to the newest stamp. With one shared Asset, a second
practice's event arriving while the DAG waits (a run going, `max_active_runs=1`) is after that stamp: the next run
would not name that practice, and nothing would start another one for it. With an Asset per practice, each
practice's event queues its own row, the run's window reaches the newest of them, and every practice that asked is
in the run. An event of the same practice that arrives after its row was stamped is left for a later run, but the
run reads that practice's inbox or feed after it arrived, so it is applied anyway (the later run finds nothing).

`plan_refresh` turns a run's triggering Asset events into the practices to refresh and whether each must read
Cherry's feed (a feed watcher fired) or only its webhook inbox; a run with no Asset event (the hourly
reconciliation, or a manual run) refreshes the chosen practices from inbox and feed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk import Asset, AssetAny, AssetWatcher, task

from cherry_sync.context import default_registry_path
from cherry_sync.registry_file import CONN_ID_RE, MAX_SLUG, SLUG_RE, RegistryFileError, read_entries
from cherry_sync.triggers.watchers import FeedWatcher, InboxWatcher

log = logging.getLogger(__name__)

EVENTS_ASSET_NAME = "cherry_events/{slug}"
EVENTS_ASSET_URI = "cherry-sync://cherry/events/{slug}"
# `events.poll_seconds` as the registry defines it (`cherry_sync.registry.EventDelivery`).
DEFAULT_POLL_SECONDS, MIN_POLL_SECONDS, MAX_POLL_SECONDS = 15, 5, 3600


@dataclass(frozen=True, slots=True)
class WatchedPractice:
    """What a practice's events Asset and watcher need from its registry entry."""

    slug: str
    cherry_conn_id: str
    webhooks: bool = False
    poll_seconds: int = DEFAULT_POLL_SECONDS


def watched_practices(entries: Iterable[Any]) -> list[WatchedPractice]:
    """The enabled entries' slugs and event settings, in file order. The fields read are checked by the registry's
    rules (slug, connection id, `enabled`, `events`); an entry failing one of them is skipped, as is a slug's
    second entry, so one bad entry never breaks the DAG file."""
    found: dict[str, WatchedPractice] = {}
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        slug, conn_id = entry.get("slug"), entry.get("cherry_conn_id")
        if not isinstance(slug, str) or len(slug) > MAX_SLUG or not SLUG_RE.match(slug) or slug in seen:
            continue
        seen.add(slug)
        enabled = entry.get("enabled", True)
        if enabled is not True:  # false, or not a boolean (an invalid entry)
            continue
        if not isinstance(conn_id, str) or len(conn_id) > 250 or not CONN_ID_RE.match(conn_id):
            continue
        events = entry.get("events") or {}
        if not isinstance(events, dict) or not set(events) <= {"webhooks", "poll_seconds"}:
            continue
        webhooks = events.get("webhooks", False)
        poll = events.get("poll_seconds", DEFAULT_POLL_SECONDS)
        # As the registry reads it (pydantic's lax int): 15, 15.0 and "15" are 15; true, 15.5 and "x" are not.
        if (isinstance(poll, float) and poll.is_integer()) or (isinstance(poll, str) and poll.strip().isdigit()):
            poll = int(poll)
        if not isinstance(webhooks, bool) or isinstance(poll, bool) or not isinstance(poll, int):
            continue
        if not MIN_POLL_SECONDS <= poll <= MAX_POLL_SECONDS:
            continue
        found[slug] = WatchedPractice(slug, conn_id, webhooks, poll)
    return list(found.values())


def practice_events_asset(practice: WatchedPractice) -> Asset:
    """Cherry events waiting for one practice (webhooks stored, or new in its feed); updated only by its watcher."""
    if practice.webhooks:
        trigger = InboxWatcher(practice.slug)
    else:
        trigger = FeedWatcher(practice.slug, practice.cherry_conn_id, float(practice.poll_seconds))
    return Asset(
        name=EVENTS_ASSET_NAME.format(slug=practice.slug),
        uri=EVENTS_ASSET_URI.format(slug=practice.slug),
        group="cherry-sync",
        watchers=[AssetWatcher(name=f"cherry_events_{practice.slug}", trigger=trigger)],
    )


def cherry_events_assets() -> AssetAny:
    """Any enabled practice's events Asset (none when the registry cannot be read: only the hourly run is left)."""
    try:
        entries = read_entries(default_registry_path())
    except RegistryFileError as exc:
        log.error("no event watchers: %s", exc)
        entries = []
    return AssetAny(*(practice_events_asset(practice) for practice in watched_practices(entries)))


def plan_refresh(payloads: Iterable[Mapping[str, Any]], chosen: list[str]) -> list[dict[str, Any]]:
    """`[{"practice": slug, "read_feed": bool}]` for one run. `payloads` are the watchers' event payloads that
    triggered it; `chosen` the enabled practices (as picked in the trigger form). Without payloads: every chosen
    practice, feed included. With them: the practices they name that are chosen, reading the feed when a feed
    watcher fired for it (a webhook-only wake-up reads only the inbox)."""
    wanted: dict[str, bool] = {}
    for payload in payloads:
        slug = payload.get("practice") if isinstance(payload, Mapping) else None
        if isinstance(slug, str):
            wanted[slug] = wanted.get(slug, False) or payload.get("source") == "feed"
    if not wanted:
        return [{"practice": slug, "read_feed": True} for slug in chosen]
    skipped = sorted(set(wanted) - set(chosen))
    if skipped:
        log.warning("events for practice(s) no longer enabled ignored: %s", ", ".join(skipped))
    return [{"practice": slug, "read_feed": wanted[slug]} for slug in chosen if slug in wanted]


@task(show_return_value_in_logs=False)  # registry entries: XCom carries them, the log does not
def plan_refresh_work(params=None, triggering_asset_events=None) -> list[dict[str, Any]]:
    """Which practices this run refreshes, and from where (see `plan_refresh`), in batches (`cherry_sync.batches`):
    the registry is read once, here; slugs and counts only in the log."""
    from cherry_sync.runtime import registry
    from cherry_sync.tasks import plan_batches_for, select_practices

    payloads = [
        (event.extra or {}).get("payload") or {}
        for events in (triggering_asset_events or {}).values()
        for event in events
    ]
    reg = registry()
    plan = plan_refresh(payloads, select_practices(params["practices"], reg=reg))
    woken = "reconciliation (feed)" if not payloads else f"{len(payloads)} watcher event(s)"
    feed = sum(1 for item in plan if item["read_feed"])
    log.info("refresh of %d practice(s) (%d reading the feed) after %s", len(plan), feed, woken)
    return plan_batches_for(
        reg,
        [item["practice"] for item in plan],
        params.get("practices_per_task"),
        {item["practice"]: {"read_feed": item["read_feed"]} for item in plan},
    )
