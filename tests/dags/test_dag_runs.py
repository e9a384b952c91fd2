"""The backfill and refresh DAGs, run by Airflow against the sandboxes."""

from __future__ import annotations

import pytest

from cherry_sync.store import engine_from_url, store_from_engine

pytestmark = pytest.mark.airflow


def _store(env):
    return store_from_engine(engine_from_url(env.store_url))


def _sync_rows(env, dag_id):
    runs = _store(env).list_runs(dag_id=dag_id, limit=500)
    latest = max(r.started_at for r in runs)
    run_id = next(r.run_id for r in runs if r.started_at == latest)
    return {
        r.practice_slug: r for r in runs if r.run_id == run_id and r.task_id.endswith(("sync_patients", "apply_events"))
    }


def _contacts_events(env) -> list[tuple[str, list[str]]]:
    """The `cherry_contacts` Asset's events in Airflow's metadata DB: (producing DAG, practices its extra names)."""
    import json
    import sqlite3

    with sqlite3.connect(env.home / "airflow.db") as db:
        rows = db.execute(
            "SELECT e.source_dag_id, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.name = 'cherry_contacts' ORDER BY e.id"
        ).fetchall()
    return [
        (dag_id, sorted((json.loads(extra) if isinstance(extra, str) else extra or {}).get("practices", [])))
        for dag_id, extra in rows
    ]


def _shared_points(row) -> int:
    """Patients the run synced without an e-mail or phone a relative's contact holds (ledger details)."""
    return row.details.get("patients", {}).get("warnings_by_reason", {}).get("shared_contact_point", 0)


def test_backfill_then_rerun_makes_zero_crm_writes_and_dry_run_predicts_counts(dag_env_any_store):
    dag_env = dag_env_any_store
    dag_env.run("cherry_backfill", dry_run=True)
    assert dag_env.crm_writes() == 0
    planned = {slug: row.counts for slug, row in _sync_rows(dag_env, "cherry_backfill").items()}
    planned_shared = {slug: _shared_points(row) for slug, row in _sync_rows(dag_env, "cherry_backfill").items()}

    dag_env.run("cherry_backfill")
    done = {slug: row.counts for slug, row in _sync_rows(dag_env, "cherry_backfill").items()}
    # Family members sharing a point are warned, not rejected: counted in the ledger, kept open in the store.
    done_shared = {slug: _shared_points(row) for slug, row in _sync_rows(dag_env, "cherry_backfill").items()}
    assert done_shared == planned_shared
    assert sum(done_shared.values()) == _store(dag_env).warning_counts().get("shared_contact_point", 0) > 0
    assert set(done) == {"glow-aesthetics", "lumen-medspa", "harbor-dermatology"}
    for slug, counts in done.items():
        assert counts.created > 0
        assert (counts.created, counts.updated, counts.unchanged, counts.rejected) == (
            planned[slug].created,
            planned[slug].updated,
            planned[slug].unchanged,
            planned[slug].rejected,
        ), slug
        assert all(row.status == "success" for row in _sync_rows(dag_env, "cherry_backfill").values())
    for loc in dag_env.crm.locations:
        assert dag_env.crm.location_state(loc.id, lists=False)["counts"]["contacts"] > 0

    writes = dag_env.crm_writes()
    dag_env.run("cherry_backfill")
    assert dag_env.crm_writes() == writes, "a re-run with no source change must make zero CRM writes"
    again = _sync_rows(dag_env, "cherry_backfill")
    assert all(row.counts.created == row.counts.updated == 0 for row in again.values())


def test_disabled_practice_is_left_alone_and_others_sync(dag_env):
    entries = dag_env.registry()
    entries[1]["enabled"] = False
    dag_env.write_registry(entries)
    disabled_location = dag_env.crm.locations[1].id

    dag_env.run("cherry_backfill")
    assert dag_env.crm_requests(disabled_location) == 0
    rows = _sync_rows(dag_env, "cherry_backfill")
    assert set(rows) == {entries[0]["slug"], entries[2]["slug"]}
    dag_env.run("cherry_refresh", practices=[entries[1]["slug"]])
    assert dag_env.crm_requests(disabled_location) == 0


def test_refresh_applies_new_events_after_backfill(dag_env):
    slugs = sorted(entry["slug"] for entry in dag_env.registry())
    earlier = len(_contacts_events(dag_env))  # the Airflow home is shared with the worker's earlier tests
    dag_env.run("cherry_backfill", dry_run=True)
    assert _contacts_events(dag_env)[earlier:] == [], "a dry run writes no contact: the smart list is not scheduled"
    dag_env.run("cherry_backfill")
    # The backfill wrote contacts for every practice: one Asset event naming them (what schedules the smart list).
    assert _contacts_events(dag_env)[earlier:] == [("cherry_backfill", slugs)]
    dag_env.cherry.advance(
        minutes=60, new_patients=3, refreshed=5, payments=3, refunds=1, duplicate_share=0.3, out_of_order_share=0.2
    )
    before = {
        loc.id: dag_env.crm.location_state(loc.id, lists=False)["counts"]["contacts"] for loc in dag_env.crm.locations
    }
    dag_env.run("cherry_refresh")
    rows = _sync_rows(dag_env, "cherry_refresh")
    assert sum(r.counts.created + r.counts.updated for r in rows.values()) > 0
    after = {
        loc.id: dag_env.crm.location_state(loc.id, lists=False)["counts"]["contacts"] for loc in dag_env.crm.locations
    }
    assert sum(after.values()) > sum(before.values())
    changed = sorted(slug for slug, row in rows.items() if row.counts.created or row.counts.updated)
    assert _contacts_events(dag_env)[earlier + 1 :] == [("cherry_refresh", changed)]
    writes = dag_env.crm_writes()
    dag_env.run("cherry_refresh")
    assert dag_env.crm_writes() == writes, "no new events: the refresh must make zero CRM writes"
    assert len(_contacts_events(dag_env)) == earlier + 2, "a refresh that wrote nothing schedules no smart list"
