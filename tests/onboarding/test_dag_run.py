"""One real run of `cherry_onboard` with Airflow (`airflow dags test`) against the sandboxes: the code from the
form is exchanged and the report returned, and the code shows nowhere Airflow writes task output (console and
task logs, XCom, rendered template fields). The run's own configuration keeps it, as Airflow keeps every param:
documented, and harmless once the single-use code is spent."""

from __future__ import annotations

import json
import re

from sqlalchemy import create_engine, text

from scripts.local_env import airflow, airflow_env, migrate_metadata
from tests.onboarding.conftest import OnboardWorld


def test_a_run_exchanges_the_code_and_reports_without_echoing_it(
    cherry_sandbox_factory, crm_sandbox_factory, tmp_path, monkeypatch
):
    world = OnboardWorld(
        cherry=cherry_sandbox_factory(practices=2, patients_per_practice=1),
        crm=crm_sandbox_factory(locations=2),
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        tmp_path=tmp_path,
        monkeypatch=monkeypatch,
    )
    world.app_connections()
    world.practice("glow", 0, auth="oauth")
    world.practice("lumen", 1, auth="pit")
    world.registry_path()
    code = world.install(0)
    home = tmp_path / "home"
    env = airflow_env(home, store_url=world.store_url)
    migrate_metadata(env)

    result = airflow(env, "dags", "test", "cherry_onboard", "-c", json.dumps({"authorization_code": code}), check=False)

    out = result.stdout or ""
    assert result.returncode == 0 and re.search(r"DagRun Finished: .*state=success", out), out[-6000:]
    assert "agency token pair stored" in out and "ready: 2; not ready: 0" in out
    assert code not in out
    for path in (home / "logs").rglob("*"):
        if path.is_file():
            assert code not in path.read_text(errors="replace"), path
    engine = create_engine(f"sqlite:///{home / 'airflow.db'}")
    try:
        with engine.connect() as conn:
            xcoms = {r.task_id: r.value for r in conn.execute(text("SELECT task_id, value FROM xcom"))}
            rendered = [r[0] for r in conn.execute(text("SELECT rendered_fields FROM rendered_task_instance_fields"))]
    finally:
        engine.dispose()
    assert code not in json.dumps([str(v) for v in xcoms.values()]) and code not in json.dumps(
        [str(r) for r in rendered]
    )
    report = json.loads(xcoms["onboarding_report"])
    assert report["ok"] is True and [p["state"] for p in report["practices"]] == ["ready", "ready"]
    assert json.loads(xcoms["exchange_authorization_code"])["exchanged"] is True
