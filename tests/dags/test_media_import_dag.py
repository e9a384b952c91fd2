"""cherry_media_import, run by Airflow (`airflow dags test`) against the sandboxes: the import, then a re-run."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from cherry_sync.store import engine_from_url, store_from_engine

pytestmark = pytest.mark.airflow

DAG_ID = "cherry_media_import"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _latest_rows(env) -> dict:
    runs = store_from_engine(engine_from_url(env.store_url)).list_runs(dag_id=DAG_ID, limit=100)
    latest = max(runs, key=lambda r: r.started_at).run_id
    return {r.practice_slug: r for r in runs if r.run_id == latest and r.task_id == "import_media"}


def _tree(env, location_id: str) -> Counter:
    media = env.crm.location_state(location_id)["media"]
    names = {m["id"]: m["name"] for m in media if m["type"] == "folder"}
    return Counter((names.get(m.get("parentId"), "-"), m["name"]) for m in media if m["type"] == "file")


def _faster_cherry(env) -> None:
    """Time-scale Cherry as the CRM already is in `dag_env`: 200 per second per key (hook pace 190, not 18)."""
    env.cherry.set_rate_limits(burst_limit=200, burst_window_seconds=1.0)
    for name, value in env.env.items():
        if name.startswith("AIRFLOW_CONN_CHERRY_") and name != "AIRFLOW_CONN_CHERRY_SYNC_STORE":
            conn = json.loads(value)
            env.extra[name] = json.dumps({**conn, "extra": {"burst_limit": 190, "burst_window_seconds": 1.0}})


def test_media_import_dag_imports_each_practice_once_then_changes_nothing(dag_env, tmp_path: Path):
    _faster_cherry(dag_env)
    folder = tmp_path / "assets"
    (folder / "Practice Flyers").mkdir(parents=True)
    (folder / "Practice Flyers" / "Open House.pdf").write_bytes(PDF)
    (folder / "Practice Flyers" / "notes.txt").write_text("not a media type")

    dag_env.run(DAG_ID, asset_folder=folder.as_uri())

    rows = _latest_rows(dag_env)
    assert set(rows) == {"glow-aesthetics", "lumen-medspa", "harbor-dermatology"}
    for slug, row in rows.items():
        assert row.status == "success", slug
        assert (row.counts.read, row.counts.created, row.counts.rejected) == (122, 121, 1), slug
        assert row.details["assets"]["rejects_by_reason"] == {"unsupported_type": 1}
    for loc in dag_env.crm.locations:
        tree = _tree(dag_env, loc.id)
        assert sum(tree.values()) == 121 and max(tree.values()) == 1  # every file once
        folders = [m for m in dag_env.crm.location_state(loc.id)["media"] if m["type"] == "folder"]
        assert sorted(f["name"] for f in folders) == sorted(
            ["Cherry", "Seasonal", "Holiday", "Promotions", "Social", "Email", "Practice Flyers"]
        )
        assert any(parent == "Practice Flyers" and n.startswith("Open House-") for parent, n in tree)
    # The mapped task instances are labelled by practice in the UI (map_index_template).
    with sqlite3.connect(dag_env.home / "airflow.db") as db:
        labels = db.execute(
            "SELECT rendered_map_index FROM task_instance WHERE dag_id = ? AND task_id = 'import_media'", (DAG_ID,)
        ).fetchall()
    assert {label for (label,) in labels} == set(rows)

    writes = dag_env.crm_writes()
    dag_env.run(DAG_ID, asset_folder=folder.as_uri())
    assert dag_env.crm_writes() == writes, "a re-run with no source change must make zero CRM writes"
    for slug, row in _latest_rows(dag_env).items():
        assert (row.counts.created, row.counts.updated, row.counts.unchanged) == (0, 0, 121), slug


_RUN_OPERATOR = """
import json, sys
from airflow.sdk import DAG
from cherry_sync.batches import batch_of
from cherry_sync.operators.media import MediaImportOperator
with DAG("no_metadata_db_media_check", schedule=None):
    op = MediaImportOperator(task_id="import_media", batch=batch_of("glow-aesthetics"), asset_folder=sys.argv[1])
print(json.dumps(op.execute({"run_id": "metadata-db-check"})["practices"]["glow-aesthetics"]["assets"]))
"""


def test_media_operator_runs_without_airflow_metadata_db(tmp_path, cherry_sandbox_factory, crm_sandbox_factory):
    """As on a real Airflow 3 worker (no metadata DB access; `airflow dags test` would not notice)."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from scripts.local_env import airflow_env, connection_env

    cherry = cherry_sandbox_factory(practices=1, patients_per_practice=3, rate_limits={"burst_limit": 200})
    crm = crm_sandbox_factory(locations=1, rate_limits={"burst_limit": 100, "burst_window_seconds": 1.0})
    info = {
        "cherry": {"base_url": cherry.base_url, "practices": [{"api_key": p.api_key} for p in cherry.practices]},
        "crm": {"base_url": crm.base_url, "locations": [{"id": loc.id, "token": loc.token} for loc in crm.locations]},
    }
    conns = connection_env(SimpleNamespace(info=info, cherry_url=cherry.base_url, crm_url=crm.base_url), crm_window=1.0)
    cherry_conn = "AIRFLOW_CONN_CHERRY_GLOW_AESTHETICS"
    conns[cherry_conn] = json.dumps({**json.loads(conns[cherry_conn]), "extra": {"burst_limit": 190}})
    folder = tmp_path / "assets" / "Flyers"
    folder.mkdir(parents=True)
    (folder / "Open House.pdf").write_bytes(PDF)
    env = airflow_env(
        tmp_path / "home",
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        extra={**conns, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://nobody@127.0.0.1:9/airflow_metadata"},
    )
    result = subprocess.run(
        [sys.executable, "-c", _RUN_OPERATOR, (tmp_path / "assets").as_uri()],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    assets = json.loads(result.stdout.strip().splitlines()[-1])
    assert assets["uploaded"] == 121 and assets["listed_by_source"] == {"cherry": 120, "folder": 1}
