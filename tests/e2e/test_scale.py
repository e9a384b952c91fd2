"""300 practices on one deployment (tests/e2e/deployment.py, `practices=300`), each its own Cherry practice and CRM
location with three patients, their 600 connections in a connections file read through the product's secrets backend
(as docker-compose.yml deploys it; tests/e2e/deployment.py).

A backfill of every practice runs; after it started, 50 practices each get one Cherry event and a refresh of those
50 is triggered. The refresh must end while the backfill is still going (a long backfill must not hold up the
events), every task instance of both runs must be finished as expected (none left behind), the ledger must have
exactly one success row per practice and task in each run, every event must be applied, and every active Cherry
patient of every practice must be in its CRM location (or rejected with a reason): no row lost.

The 50 practices are backfilled once first, so that the refresh starts from their feed's tail (a never-backfilled
practice would have its whole event history replayed), and they are the registry's last 50, which the big backfill
reaches last.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

import pytest

from cherry_sync.batches import DEFAULT_PRACTICES_PER_TASK, batch_sizes
from cherry_sync.sync.practice_runs import EVENTS_STREAM
from tests.e2e.conftest import Deployment
from tests.e2e.stack import TERMINAL, assert_every_task_instance

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.airflow, pytest.mark.timeout(1800)]

PRACTICES = 300
WITH_EVENTS = 50
DEPLOYMENT_OPTIONS = {"practices": PRACTICES, "patients": 3}
# Every task instance of a run that went well succeeds, but the leaf that fails the run when a practice failed,
# which is skipped. Whatever the per-practice tasks are called (or however many practices one of them takes).
WENT_WELL = {"summarize": "success", "fail_run_if_a_practice_failed": "skipped"}


def _wait_for_run(client, dag_id: str, run_id: str) -> dict:
    run = client.wait_for_run(dag_id, run_id, timeout=1500)
    assert run["state"] == "success", f"{dag_id} {run_id} ended {run['state']}"
    return run


def _assert_ledger(deployment: Deployment, dag_id: str, run_id: str, slugs: list[str]) -> dict[str, list]:
    """Exactly one success row per practice for each per-practice task of the run; returns slug -> rows."""
    rows = deployment.store.list_runs(run_id=run_id, dag_id=dag_id)
    per_task: dict[str, Counter] = {}
    for row in rows:
        per_task.setdefault((row.task_id or "").rsplit(".", 1)[-1], Counter())[row.practice_slug] += 1
    assert per_task, f"{dag_id} {run_id}: no ledger row at all"
    for task, counts in per_task.items():
        assert set(counts) == set(slugs), f"{dag_id} {task}: practices missing {sorted(set(slugs) - set(counts))[:10]}"
        assert set(counts.values()) == {1}, f"{dag_id} {task}: practices with several rows {counts.most_common(5)}"
    failed = [(r.practice_slug, r.task_id, r.status) for r in rows if r.status != "success"]
    assert not failed, f"{dag_id} {run_id}: {failed[:10]}"
    by_slug: dict[str, list] = {}
    for row in rows:
        by_slug.setdefault(row.practice_slug, []).append(row)
    return by_slug


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_a_refresh_is_not_held_up_by_a_backfill_of_every_practice(deployment: Deployment):
    stack, cherry, store = deployment.stack, deployment.cherry, deployment.store
    client = stack.client()
    stack.wait_for_dags(client, {"cherry_backfill", "cherry_refresh"})
    slugs = [p["slug"] for p in deployment.practices]
    assert len(slugs) == PRACTICES and slugs[0] == "practice-0001"
    evented = slugs[-WITH_EVENTS:]
    client.unpause("cherry_backfill")
    client.unpause("cherry_refresh")

    first = client.trigger("cherry_backfill", {"practices": evented})
    _wait_for_run(client, "cherry_backfill", first)
    cursors = {slug: store.get_cursor(slug, EVENTS_STREAM) for slug in evented}
    assert all(cursors.values()), "the backfill remembers where each practice's feed ends"

    backfill = client.trigger("cherry_backfill", {})
    deadline = time.monotonic() + 300
    while not any(t.get("start_date") for t in client.task_instances("cherry_backfill", backfill)):
        assert client.run("cherry_backfill", backfill)["state"] not in TERMINAL, "the backfill ended at once"
        assert time.monotonic() < deadline, "the backfill started no task within 5 minutes"
        time.sleep(1)
    made = [cherry.advance(minutes=0, refreshed=1, practice_id=deployment.cherry_practice(s).id) for s in evented]
    assert all(sum(p["events"] for p in answer["practices"].values()) == 1 for answer in made)
    events = {
        slug: {e["id"] for e in cherry.fetch_all("/v1/events", deployment.cherry_practice(slug), cursor=cursors[slug])}
        for slug in evented
    }
    assert all(len(ids) == 1 for ids in events.values()), events
    refresh = client.trigger("cherry_refresh", {"practices": evented})

    refreshed = _wait_for_run(client, "cherry_refresh", refresh)
    backfill_then = client.run("cherry_backfill", backfill)["state"]
    backfilled = _wait_for_run(client, "cherry_backfill", backfill)

    # Every task instance of both runs, page by page: done, as expected, none left behind. The practices come in
    # batches (docs/scale.md): 30 of 10 for the backfill (two tasks each), 8 for the 50 refreshed practices.
    backfill_tis = assert_every_task_instance(client, "cherry_backfill", backfill, WENT_WELL, others={"success"})
    batches = len(batch_sizes(PRACTICES, DEFAULT_PRACTICES_PER_TASK))
    assert len(backfill_tis) == 2 * batches + 4  # select, summarize, announce, the failure leaf
    labels = {t["rendered_map_index"] for t in backfill_tis if t["task_id"] == "practice.sync_patients"}
    assert len(labels) == batches == 30 and "practice-0001 .. practice-0010 (10)" in labels
    refresh_tis = assert_every_task_instance(client, "cherry_refresh", refresh, WENT_WELL, others={"success"})
    assert len(refresh_tis) == len(batch_sizes(WITH_EVENTS, DEFAULT_PRACTICES_PER_TASK)) + 4

    # The ledger: one success row per practice and task, in each run; every event applied.
    _assert_ledger(deployment, "cherry_backfill", backfill, slugs)
    _assert_ledger(deployment, "cherry_refresh", refresh, evented)
    unapplied = {slug: store.filter_new_events(slug, ids) for slug, ids in events.items()}
    assert not any(unapplied.values()), {slug: ids for slug, ids in unapplied.items() if ids}
    assert all(store.get_cursor(slug, EVENTS_STREAM) != cursors[slug] for slug in evented), "the cursors moved on"

    # No row lost: every active Cherry patient of every practice is a contact of its location, or was rejected.
    lost, duplicated, synced = {}, {}, 0
    for slug in slugs:
        practice = deployment.cherry_practice(slug)
        active = {p["id"] for p in cherry.fetch_all("/v1/patients", practice, status="ACTIVE")}
        contacts = deployment.crm.location_state(deployment.location_id(slug))["contacts"]
        states = store.get_patient_states(slug, list(active))
        ids = {c["id"] for c in contacts}
        linked = {pid for pid, state in states.items() if state.crm_contact_id in ids}
        synced += len(linked)
        rejected = {r.source_id for r in store.open_rejections(slug, kind="rejection") if r.entity == "patient"}
        if active - linked - rejected:
            lost[slug] = sorted(active - linked - rejected)
        identities = Counter(_identity(c) for c in contacts)
        if identities and max(identities.values()) > 1:
            duplicated[slug] = identities.most_common(1)[0][1]
    assert synced >= PRACTICES, f"only {synced} patients synced: the check would prove nothing"
    assert not lost, f"active patients in no CRM contact and not rejected: {dict(list(lost.items())[:10])}"
    assert not duplicated, f"contacts created twice (practice: copies): {duplicated}"

    # Last, so that a refresh held up by the backfill still has everything else checked: it was not held up.
    assert _at(backfilled["start_date"]) < _at(refreshed["start_date"])
    assert backfill_then == "running" and _at(refreshed["end_date"]) < _at(backfilled["end_date"]), (
        f"the refresh ({refreshed['start_date']} - {refreshed['end_date']}) ended after the backfill "
        f"({backfilled['start_date']} - {backfilled['end_date']}): it waited for the backfill's task instances"
    )


def _identity(contact: dict) -> tuple:
    return tuple((contact.get(k) or "").lower() for k in ("firstName", "lastName", "dateOfBirth", "email", "phone"))
