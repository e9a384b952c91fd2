"""cherry_smart_list: scheduled on the contacts Asset, and run by Airflow (`airflow dags test`) on the sandboxes.

The practices are backfilled in-process first (the engine, as the backfill DAG's tasks run it; a DAG run of the
backfill would double this test's time), then the smart-list DAG runs twice through Airflow: the first tags the
enabled practices' members and leaves the disabled practice alone, the second (nothing changed) makes no CRM
call at all.
"""

from __future__ import annotations

import csv
import os

import pytest

from cherry_sync.dag_support import CHERRY_CONTACTS
from cherry_sync.hooks.base import RetrySettings
from cherry_sync.registry import load_registry
from cherry_sync.smart_list.segments import SegmentPlan
from cherry_sync.store import engine_from_url, store_from_engine
from cherry_sync.sync.practice_runs import backfill_practice
from scripts.local_env import REPO
from tests.fixtures.sandbox_env import SandboxEnv
from tests.smart_list.conftest import expected_tags

DAG_ID = "cherry_smart_list"


def test_scheduled_on_the_asset_the_backfill_and_refresh_update(tmp_path):
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path / "home"))
    from airflow.dag_processing.dagbag import DagBag

    dags = DagBag(dag_folder=str(REPO / "dags")).dags
    assert dags[DAG_ID].timetable.asset_condition.objects == (CHERRY_CONTACTS,)
    for producer in ("cherry_backfill", "cherry_refresh"):
        assert any(CHERRY_CONTACTS in task.outlets for task in dags[producer].tasks), producer
    assert dags[DAG_ID].max_active_runs == 1
    assert dags[DAG_ID].params.get_param("verify").schema["enum"] == ["auto", "always", "never"]


def _backfill_in_process(env, store) -> None:
    """Each registry practice backfilled on its sandbox practice and location, as the backfill DAG's task runs it."""
    world = SandboxEnv(env.cherry, store, env.crm, retry=RetrySettings(backoff_initial=0.01, backoff_max=0.1))
    for index, practice in enumerate(load_registry(env.registry_path).practices):
        world.use_practice(index, practice)
        backfill_practice(world.context(index), scope="all")
    world.pacer.close()


@pytest.mark.airflow
def test_dag_tags_enabled_practices_leaves_a_disabled_one_alone_and_reruns_without_calls(dag_env, tmp_path):
    store = store_from_engine(engine_from_url(dag_env.store_url))
    _backfill_in_process(dag_env, store)
    entries = dag_env.registry()
    entries[1]["enabled"] = False
    dag_env.write_registry(entries)
    registry = load_registry(dag_env.registry_path)
    exports = tmp_path / "exports"
    dag_env.extra["CHERRY_SYNC_EXPORT_DIR"] = str(exports)
    before = {loc.id: dag_env.crm_requests(loc.id) for loc in dag_env.crm.locations}

    dag_env.run(DAG_ID)

    disabled = dag_env.crm.locations[1].id
    assert dag_env.crm_requests(disabled) == before[disabled], "a disabled practice must not be touched"
    assert {p.name for p in exports.iterdir()} == {
        f"smart_list_{entries[0]['slug']}.csv",
        f"smart_list_{entries[2]['slug']}.csv",
    }
    for index in (0, 2):
        practice = registry.practices[index]
        managed = SegmentPlan.from_practice(practice).managed_tags
        contacts = dag_env.crm.location_state(dag_env.crm.locations[index].id, lists=True)["contacts"]
        actual = {c["id"]: frozenset(t for t in c.get("tags") or () if t in managed) for c in contacts}
        expected = expected_tags(store, practice)
        assert {cid: tags for cid, tags in actual.items() if tags} == expected, practice.slug
        with (exports / f"smart_list_{practice.slug}.csv").open(newline="") as handle:
            assert len(list(csv.DictReader(handle))) == sum(
                1 for s in store.iter_patient_states(practice.slug) if s.crm_contact_id
            )
    assert dag_env.crm.location_state(disabled, lists=True)["contacts"]
    assert not any(
        {"cherry-patient"} & set(c.get("tags") or ())
        for c in dag_env.crm.location_state(disabled, lists=True)["contacts"]
    )
    runs = [r for r in store.list_runs(dag_id=DAG_ID) if r.task_id]
    assert {r.practice_slug for r in runs} == {entries[0]["slug"], entries[2]["slug"]}
    for row in runs:
        assert row.status == "success"
        snapshot = row.details
        assert snapshot["members"] == row.counts.read > 0
        assert snapshot["segments"]["all"]["members"] == snapshot["members"]
        assert snapshot["added"] == row.counts.created > 0 and snapshot["removed"] == 0

    after_first = {loc.id: dag_env.crm_requests(loc.id) for loc in dag_env.crm.locations}
    dag_env.run(DAG_ID)
    assert {loc.id: dag_env.crm_requests(loc.id) for loc in dag_env.crm.locations} == after_first
