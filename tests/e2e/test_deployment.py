"""The five DAGs under the real scheduler: CeleryExecutor (Redis broker), PostgreSQL metadata DB, scheduler,
dag-processor, api-server and two Celery workers, every run triggered through Airflow's REST API.

The tests run in file order on one deployment (tests/e2e/conftest.py), each phase on the state the last one left.
Both CRM auth modes run: lumen-medspa reaches its location through the marketplace app (OAuth), the others with a PIT.
0. the agency installs the app; `cherry_onboard` exchanges the authorization code and finds every practice ready;
1. backfill two practices, Cherry time advances, refresh, smart list, media import, monthly email: the CRM sandbox
   and the SMTP inbox hold what each step promises, and pools kept the CRM tasks one at a time;
2. a worker is SIGKILLed in the middle of a backfill: the scheduler notices, the task is retried on the other
   worker, and the CRM ends with exactly the contacts the dry run planned, none twice, and a re-run writes nothing;
3. a practice whose Cherry key was deactivated fails alone, and the operators get one email about it;
4. patient-data canaries seeded at the start appear in the CRM but in no task log, component log, XCom value or
   failure notification; neither do the authorization code, the app's client secret or any OAuth token.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from cherry_sync.dag_support import POOLS
from cherry_sync.notify import NOTIFICATION_HEADER
from cherry_sync.reports.send import REPORT_HEADER
from sandbox.common.stats import crm_writes
from tests.e2e.conftest import OPS_EMAIL, Deployment

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.airflow, pytest.mark.timeout(1500)]

SYNCED = ["glow-aesthetics", "lumen-medspa"]  # phase 1
KILLED = "harbor-dermatology"  # phase 2 and 3
OAUTH = "lumen-medspa"  # through the marketplace app; the other two with a PIT
DEPLOYMENT_OPTIONS = {"oauth": [OAUTH]}
DAG_IDS = {
    "cherry_backfill",
    "cherry_refresh",
    "cherry_smart_list",
    "cherry_media_import",
    "cherry_metrics_email",
    "cherry_onboard",
}
# OAuth secrets this deployment handled, for the leak scan of the last phase.
OAUTH_SECRETS: list[str] = []

# Patient-data canaries: values no real data, id, timestamp or log format would contain by chance.
CANARIES = [
    {
        "first_name": f"Zyqcanary{n}",
        "last_name": f"Vexcanary{n}",
        "date_of_birth": f"1931-07-1{n}",
        "phone": f"+1 415 867 53{n:02d}",
        "email": f"zyq.canary{n}@canary-mail.example",
    }
    for n in range(1, 5)
]


def _canary_patterns() -> list[re.Pattern]:
    patterns = []
    for canary in CANARIES:
        year, month, day = canary["date_of_birth"].split("-")
        digits = re.sub(r"\D", "", canary["phone"])[-10:]
        patterns += [
            re.compile(re.escape(canary["first_name"]), re.I),
            re.compile(re.escape(canary["last_name"]), re.I),
            re.compile(re.escape(canary["email"].split("@")[0]), re.I),
            re.compile(rf"{year}\W?{month}\W?{day}|{month}/{day}/{year}"),
            # the number in any format: E.164, (415) 867-5301, 415.867.5301, 4158675301
            re.compile(r"\D?".join([digits[:3], digits[3:6], digits[6:]]).replace(r"\D?", r"\D{0,2}")),
        ]
    return patterns


def _run(deployment: Deployment, dag_id: str, conf: dict, *, expect: str = "success", timeout: float = 600) -> str:
    client = deployment.stack.client()
    client.unpause(dag_id)
    run_id = client.trigger(dag_id, conf)
    run = client.wait_for_run(dag_id, run_id, timeout=timeout)
    if run["state"] != expect:
        states = {(t["task_id"], t.get("map_index")): t["state"] for t in client.task_instances(dag_id, run_id)}
        raise AssertionError(f"{dag_id} {run_id} ended {run['state']} (expected {expect}): {states}")
    return run_id


def _ledger(deployment: Deployment, dag_id: str, run_id: str, task_suffix: str) -> dict:
    rows = deployment.store.list_runs(run_id=run_id, dag_id=dag_id)
    return {r.practice_slug: r for r in rows if (r.task_id or "").endswith(task_suffix)}


def _contacts(deployment: Deployment, slug: str) -> list[dict]:
    return deployment.crm.location_state(deployment.location_id(slug))["contacts"]


def _identity(contact: dict) -> tuple:
    return (
        (contact.get("firstName") or "").lower(),
        (contact.get("lastName") or "").lower(),
        contact.get("dateOfBirth"),
        (contact.get("email") or "").lower(),
        contact.get("phone"),
    )


def _crm_writes(deployment: Deployment, slug: str) -> int:
    stats = deployment.crm.stats()["by_key"].get(deployment.location_id(slug), {})
    return crm_writes(stats.get("endpoints", {}))


def test_deployment_is_up_and_parses_every_dag(deployment: Deployment):
    client = deployment.stack.client()
    deployment.stack.wait_for_dags(client, DAG_IDS)
    assert client.call("GET", "/importErrors")["total_entries"] == 0
    health = client.call("GET", "/monitor/health")
    assert health["metadatabase"]["status"] == "healthy"
    assert health["scheduler"]["status"] == "healthy"
    assert set(POOLS) <= set(client.pools())
    # One slot for the run-through: the two practices' CRM tasks must then run one after the other.
    _set_slots(client, "cherry_sync_backfill", 1)
    workers = [c for c in deployment.stack.components.values() if c.name.startswith("worker")]
    assert len(workers) == 2 and all(w.alive() for w in workers)


def test_onboarding_exchanges_the_code_and_finds_every_practice_ready(deployment: Deployment):
    code = deployment.crm.oauth_install([deployment.location_id(OAUTH)])
    OAUTH_SECRETS.extend([code, deployment.crm.oauth_app()["client_secret"]])
    run_id = _run(deployment, "cherry_onboard", {"authorization_code": code})
    client = deployment.stack.client()
    report = client.xcom_value("cherry_onboard", run_id, "onboarding_report")
    states = {p["slug"]: (p["auth"].lower(), p["state"]) for p in report["practices"]}
    assert states == {
        "glow-aesthetics": ("pit", "ready"),
        OAUTH: ("oauth", "ready"),
        KILLED: ("pit", "ready"),
    }, states
    assert deployment.crm.oauth_stats()["token_grants"]["authorization_code"] == 1


def test_pipeline_end_to_end_through_the_rest_api(deployment: Deployment):
    # Canaries go into two patients of each synced practice before anything is pulled.
    canaries = iter(CANARIES)
    for slug in SYNCED:
        practice = deployment.cherry_practice(slug)
        active = deployment.cherry.fetch_all("/v1/patients", practice, status="ACTIVE")
        for patient in active[:2]:
            deployment.cherry.edit_patient(patient["id"], **next(canaries))

    # Backfill, two practices.
    backfill = _run(deployment, "cherry_backfill", {"practices": SYNCED, "page_size": 25})
    rows = _ledger(deployment, "cherry_backfill", backfill, "sync_patients")
    assert set(rows) == set(SYNCED)
    for slug in SYNCED:
        assert rows[slug].status == "success" and rows[slug].counts.created > 0
        contacts = _contacts(deployment, slug)
        assert len(contacts) == rows[slug].counts.created
        assert max(Counter(map(_identity, contacts)).values()) == 1, f"{slug}: a contact was created twice"
    assert _crm_writes(deployment, KILLED) == 0, "a practice that was not chosen was touched"
    _assert_pool_serialised(deployment, "cherry_backfill", backfill)
    names = {c["firstName"] for slug in SYNCED for c in _contacts(deployment, slug)}
    assert {c["first_name"] for c in CANARIES} <= names, "the canary patients must flow to the CRM"

    # Cherry time moves on; the refresh applies the new events.
    before = {slug: len(_contacts(deployment, slug)) for slug in SYNCED}
    deployment.cherry.advance(
        minutes=90, new_patients=4, refreshed=6, payments=4, refunds=1, cancellations=1, duplicate_share=0.3
    )
    refresh = _run(deployment, "cherry_refresh", {"practices": SYNCED})
    rows = _ledger(deployment, "cherry_refresh", refresh, "apply_events")
    assert set(rows) == set(SYNCED) and all(r.status == "success" for r in rows.values())
    assert sum(r.counts.created + r.counts.updated for r in rows.values()) > 0
    assert sum(len(_contacts(deployment, slug)) for slug in SYNCED) > sum(before.values())

    # Smart list: every synced contact carries the practice's "all" tag, and only synced contacts do.
    smart = _run(deployment, "cherry_smart_list", {"practices": SYNCED})
    rows = _ledger(deployment, "cherry_smart_list", smart, "update_smart_list")
    assert all(r.status == "success" for r in rows.values()) and set(rows) == set(SYNCED)
    for entry in deployment.practices:
        if entry["slug"] in SYNCED:
            tag = (entry.get("options", {}).get("segments", {}).get("tags") or {}).get("all", "cherry-patient")
            contacts = _contacts(deployment, entry["slug"])
            tagged = [c for c in contacts if tag in (c.get("tags") or [])]
            # A fresh location holds only Cherry patients: every contact is a member of the list.
            assert len(tagged) == len(contacts) > 0, entry["slug"]

    # Media import: Cherry's assets in Media > Cherry/<category>, each once.
    media = _run(deployment, "cherry_media_import", {"practices": SYNCED})
    rows = _ledger(deployment, "cherry_media_import", media, "import_media")
    for slug in SYNCED:
        files = [
            m for m in deployment.crm.location_state(deployment.location_id(slug))["media"] if m.get("type") == "file"
        ]
        assert files and rows[slug].counts.created == len(files)
        assert max(Counter(m["name"] for m in files).values()) == 1

    # Monthly email: one report per practice, to the registry's recipients, through the SMTP connection.
    _run(deployment, "cherry_metrics_email", {"practices": SYNCED})
    reports = [m for m in deployment.smtp.messages if m.message[REPORT_HEADER]]
    expected = {tuple(sorted(e["options"]["report_recipients"])) for e in deployment.practices if e["slug"] in SYNCED}
    assert {tuple(sorted(m.rcpt_tos)) for m in reports} == expected
    assert all(m.message.get_body(("html",)) is not None for m in reports)


def _set_slots(client, pool: str, slots: int) -> None:
    client.call(
        "PATCH",
        f"/pools/{pool}",
        params={"update_mask": "slots"},
        json={"name": pool, "slots": slots, "include_deferred": False},
    )


def _assert_pool_serialised(deployment: Deployment, dag_id: str, run_id: str) -> None:
    """With one pool slot, no two of the run's CRM tasks overlapped in time."""
    tis = [
        t
        for t in deployment.stack.client().task_instances(dag_id, run_id)
        if t.get("pool") == "cherry_sync_backfill" and t.get("start_date") and t.get("end_date")
    ]
    assert len(tis) >= 4, tis  # provision + sync for each of the two practices
    spans = sorted((t["start_date"], t["end_date"]) for t in tis)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, f"CRM tasks overlapped despite a one-slot pool: {spans}"


def test_worker_killed_mid_backfill_recovers_with_identical_crm_state(deployment: Deployment):
    client = deployment.stack.client()
    _set_slots(client, "cherry_sync_backfill", 3)
    # The dry run says what the backfill must end with.
    dry = _run(deployment, "cherry_backfill", {"practices": [KILLED], "dry_run": True})
    planned = _ledger(deployment, "cherry_backfill", dry, "sync_patients")[KILLED].counts
    assert planned.created > 10 and _crm_writes(deployment, KILLED) == 0

    # Slow CRM writes so the backfill is surely mid-way when the worker dies.
    deployment.crm.set_faults(latency_ms=300, methods=["POST", "PUT"])
    run_id = client.trigger("cherry_backfill", {"practices": [KILLED], "page_size": 5})
    deadline = time.monotonic() + 300
    while len(_contacts(deployment, KILLED)) < 6:
        assert time.monotonic() < deadline, "the backfill never started writing"
        time.sleep(0.5)
    # The worker that runs the task: the one whose process tree holds the task instance's pid.
    sync = next(t for t in client.task_instances("cherry_backfill", run_id) if t["task_id"].endswith("sync_patients"))
    workers = [c for c in deployment.stack.components.values() if c.name.startswith("worker") and c.alive()]
    [busy] = [c for c in workers if sync["pid"] and c.runs_process(sync["pid"])]
    written_at_kill = len(_contacts(deployment, KILLED))
    busy.kill_hard()
    assert written_at_kill < planned.created, "the backfill finished before the kill: nothing was proven"
    deployment.stack.start_worker("worker3")  # the replacement a supervisor (or compose) would start

    run = client.wait_for_run("cherry_backfill", run_id, timeout=600)
    deployment.crm.clear_faults()
    assert run["state"] == "success"
    sync = [t for t in client.task_instances("cherry_backfill", run_id) if t["task_id"].endswith("sync_patients")]
    assert sync and sync[0]["try_number"] >= 2, f"the killed task must have been retried: {sync}"

    contacts = _contacts(deployment, KILLED)
    assert len(contacts) == planned.created, "contacts in the CRM differ from what the dry run planned"
    assert max(Counter(map(_identity, contacts)).values()) == 1, "a contact was duplicated by the retry"
    writes = _crm_writes(deployment, KILLED)
    _run(deployment, "cherry_backfill", {"practices": [KILLED]})
    assert _crm_writes(deployment, KILLED) == writes, "after recovery a re-run must make zero CRM writes"


def test_practice_with_a_revoked_key_fails_alone_and_operators_are_emailed(deployment: Deployment):
    practice = deployment.cherry_practice(KILLED)
    deployment.cherry.set_key(practice.api_key, activated=False)
    try:
        run_id = _run(deployment, "cherry_refresh", {"practices": [*SYNCED, KILLED]}, expect="failed")
    finally:
        deployment.cherry.set_key(practice.api_key, activated=True)
    client = deployment.stack.client()
    tis = client.task_instances("cherry_refresh", run_id)
    states = {t["rendered_map_index"]: t["state"] for t in tis if t["task_id"] == "apply_events"}
    assert states == {SYNCED[0]: "success", SYNCED[1]: "success", KILLED: "failed"}, states
    # summarize still reports; the run is failed by its watcher leaf, which sends no second email.
    leaves = {t["task_id"]: t["state"] for t in tis if t["task_id"] in ("summarize", "fail_run_if_a_practice_failed")}
    assert leaves == {"summarize": "success", "fail_run_if_a_practice_failed": "failed"}, leaves
    rows = _ledger(deployment, "cherry_refresh", run_id, "apply_events")
    assert rows[KILLED].status == "failed" and rows[KILLED].details.get("reason")
    assert all(rows[slug].status == "success" for slug in SYNCED)
    # The OAuth practice wrote with location tokens minted from the agency token, never with a PIT.
    assert deployment.crm.oauth_stats()["location_tokens"] >= 1

    notices = [m for m in deployment.smtp.messages if m.message[NOTIFICATION_HEADER]]
    assert len(notices) == 1, [m.message["Subject"] for m in notices]
    notice = notices[0]
    assert notice.rcpt_tos == (OPS_EMAIL,)
    assert KILLED in notice.message["Subject"] and "apply_events" in notice.message["Subject"]
    body = notice.message.get_body(("plain",)).get_content()
    assert "AirflowFailException" in body or "key" in body.lower()


def test_no_patient_data_in_logs_xcom_or_notifications(deployment: Deployment):
    patterns = _canary_patterns()
    places: dict[str, str] = {}
    for path in Path(deployment.stack.home, "logs").rglob("*"):
        if path.is_file():
            places[f"task log {path.relative_to(deployment.stack.home)}"] = path.read_text(errors="replace")
    for path in deployment.stack.component_logs.glob("*.log"):
        places[f"component log {path.name}"] = path.read_text(errors="replace")
    engine = create_engine(deployment.metadata_url)
    with engine.connect() as conn:
        for dag_id, task_id, map_index, value in conn.execute(
            text("SELECT dag_id, task_id, map_index, value::text FROM xcom")
        ):
            places[f"xcom {dag_id}.{task_id}[{map_index}]"] = value or ""
    engine.dispose()
    for index, message in enumerate(deployment.smtp.messages):
        if message.message[NOTIFICATION_HEADER]:
            places[f"failure notification {index}"] = message.raw.decode("utf-8", "replace")

    # The patterns do find the canaries where they belong: in the CRM, as the pipeline wrote them.
    crm_text = json.dumps([_contacts(deployment, slug) for slug in SYNCED])
    missed = [p.pattern for p in patterns if not p.search(crm_text)]
    assert missed == [], f"canary patterns that match nothing in the CRM (the scan would be blind): {missed}"
    assert sum(1 for name in places if name.startswith("task log")) >= 10, "no task logs found to scan"
    assert any(name.startswith("xcom") for name in places), "no XCom values found to scan"
    assert any(name.startswith("failure notification") for name in places)
    hits = [
        f"{name}: /{pattern.pattern}/"
        for name, content in places.items()
        for pattern in patterns
        if pattern.search(content)
    ]
    assert hits == [], "patient data leaked:\n" + "\n".join(hits[:50])
    # Nor any OAuth secret: the authorization code, the client secret, and every token the CRM issued.
    secrets = [*OAUTH_SECRETS, *deployment.crm.oauth_issued_tokens()]
    assert len(secrets) >= 4, "the OAuth phase did not run: nothing to look for"
    leaked = [name for name, content in places.items() for secret in secrets if secret in content]
    assert leaked == [], f"an OAuth secret appears in: {sorted(set(leaked))}"
