"""The whole pipeline under every fault at once ends exactly where a fault-free run does.

Two identical sandbox pairs (same seed, same clock, same admin calls in the same order) run the same pipeline
through Airflow (`airflow dags test`): `cherry_backfill`, then Cherry's clock moves on (new patients, payments,
refunds, cancellations, a ping, duplicate and out-of-order deliveries, plus two records corrupted through the
feed), then `cherry_refresh`, `cherry_smart_list` and `cherry_media_import`. The first pair behaves; the second has
all its faults switched on together for the whole pipeline: 429s with and without Retry-After (a storm of six in
a row first, then scattered), 500/502/503, hangs past the hooks' read timeout (the connections' `read_timeout` is
short, so a hang costs about a second), writes applied and then answered 500. Malformed Cherry records are
injected into both pairs the same way. Each sandbox counts the faults it injected (`GET /_sandbox/faults`,
`fired`).

Note: the sandboxes' hang does not emulate a write landing late. A hung write is dropped when the client gives up
(the request body is never read), so the "answer lost, write lands later" case is covered by `write_then_500` only.

Proved:
- every fault type actually fired, counted at each sandbox's fault injector;
- every task instance of every run succeeded. Airflow's own retries are allowed, because the scheduler would use
  them (`airflow dags test` retries a failed task as the DAGs declare: 3 retries; the delays are time-scaled to a
  second by a test-only cluster policy, `failures_helpers.scaled_retries`). At most one Airflow retry per task
  instance is accepted (today none is needed: the hooks' own retries absorb every fault); the fault-free run
  needs none;
- the final CRM state equals the fault-free run's: each contact keyed by the Cherry patient it was synced from
  (standard fields, the 14 custom fields by key, tags), the opportunities (per patient: name, status, value,
  stage), and the media library (files by folder and name);
- nothing is duplicated: one contact per Cherry patient (and no CRM contact that no patient owns), one
  opportunity per payment name and per contact in the pipeline, each media file once;
- the rejected records are the same in both runs, and each malformed record is among them with its reason code;
- nothing was left half-done: with the faults off, a second refresh makes no CRM write.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from cherry_sync.store import SyncStore, engine_from_url, store_from_engine
from sandbox.common.faults import Fault
from scripts.local_env import REPO
from tests.dags.conftest import CRM_WINDOW, DagEnv
from tests.dags.failures_helpers import DagRunResult, run_dag, scaled_retries
from tests.sync.conftest import canonical_state, duplicates_by_contact_point, state_diff

pytestmark = pytest.mark.airflow

CHERRY = {
    "seed": 23,
    "practices": 2,
    "patients_per_practice": 25,
    "now": "2026-06-01T00:00:00Z",
    "rate_limits": {"burst_limit": 200},
}
ASSETS_KEPT = 10  # of Cherry's 120 marketing assets, per practice (the same library for both)
# Short timeouts so a hang costs about a second; more attempts, since every fault is on at once.
HOOK_EXTRAS = {
    "read_timeout": 1.0,
    "connect_timeout": 1.0,
    "max_attempts": 12,
    "max_elapsed_seconds": 90,
    "backoff_initial": 0.02,
    "backoff_max": 0.25,
}
HANG_SECONDS = 1.5  # past the read timeout, inside the media upload's settle window (2 x read timeout)
CRM_FAULTS = {
    "rate_limited_share": 0.03,
    "rate_limited_no_retry_after_share": 0.04,
    "server_error_share": 0.05,
    "hang_share": 0.02,
    "hang_seconds": HANG_SECONDS,
    "write_then_500_share": 0.08,
    "retry_after_seconds": 1,
    "script": [Fault.RATE_LIMITED.value] * 3 + [Fault.RATE_LIMITED_NO_RETRY_AFTER.value] * 3,  # a storm first
    "seed": 5,
}
# Cherry gets fewer requests (reads only; about 60 in this pipeline), so higher shares make each fault fire.
CHERRY_FAULTS = {
    "rate_limited_share": 0.1,
    "rate_limited_no_retry_after_share": 0.1,
    "server_error_share": 0.1,
    "hang_share": 0.06,
    "hang_seconds": HANG_SECONDS,
    "retry_after_seconds": 1,
    "script": [Fault.RATE_LIMITED_NO_RETRY_AFTER.value] * 3 + [Fault.RATE_LIMITED.value] * 3,
    "seed": 6,
}
ADVANCE = {
    "minutes": 90,
    "new_patients": 3,
    "refreshed": 6,
    "payments": 4,
    "refunds": 1,
    "cancellations": 1,
    "pings": 1,
    "duplicate_share": 0.3,
    "out_of_order_share": 0.34,
}
# Malformed kind -> reason code of its rejection (None: the record syncs without the bad detail, a warning).
MALFORMED = {
    "missing_id": "missing_id",
    "non_numeric_money": "invalid_money",
    "unknown_status": "unknown_status",
    "oversize_text": "oversize_text",
    "bad_email": None,
    "bad_phone": None,
    "impossible_date": None,
}
SERVER_ERRORS = {Fault.SERVER_ERROR.value, Fault.BAD_GATEWAY.value, Fault.UNAVAILABLE.value}


def _env(root: Path, airflow_home: Path, cherry_factory, crm_factory) -> DagEnv:
    root.mkdir()
    cherry = cherry_factory(**CHERRY)
    crm = crm_factory(locations=2, rate_limits={"burst_limit": 100, "burst_window_seconds": CRM_WINDOW})
    registry = root / "practices.yml"
    entries = yaml.safe_load((REPO / "include" / "practices.yml").read_text())[:2]  # with and without a pipeline
    registry.write_text(yaml.safe_dump(entries, sort_keys=False))
    env = DagEnv(airflow_home, cherry, crm, f"sqlite:///{root / 'store.db'}", registry)
    for name, value in env.env.items():
        if name.startswith(("AIRFLOW_CONN_CHERRY_", "AIRFLOW_CONN_CRM_")) and name != "AIRFLOW_CONN_CHERRY_SYNC_STORE":
            conn = json.loads(value)
            pace = {"burst_limit": 190, "burst_window_seconds": 1.0} if "_CHERRY_" in name else {}
            env.extra[name] = json.dumps({**conn, "extra": {**conn.get("extra", {}), **pace, **HOOK_EXTRAS}})
    env.extra["CHERRY_SYNC_EXPORT_DIR"] = str(root / "exports")
    scaled_retries(env, root / "policy")
    # A smaller marketing kit: the same ASSETS_KEPT assets in both runs.
    for asset in env.cherry.fetch_all("/v1/marketing-assets", 0)[ASSETS_KEPT:]:
        env.cherry.remove_asset(asset["id"])
    return env


def _unique_patients(env: DagEnv) -> list[dict]:
    """Active patients whose e-mail and phone are theirs alone (corrupting a family member muddles matching)."""
    rows = [row for p in env.cherry.practices for row in env.cherry.fetch_all("/v1/patients", p)]
    seen = Counter(v.lower() for r in rows for v in (r.get("email"), r.get("phone")) if v)
    return [
        r
        for r in rows
        if r["account_status"] == "ACTIVE"
        and r.get("email")
        and r.get("phone")
        and seen[r["email"].lower()] == seen[r["phone"].lower()] == 1
    ]


def _store(env: DagEnv) -> SyncStore:
    return store_from_engine(engine_from_url(env.store_url))


def _pipeline(env: DagEnv, targets: dict[str, str], late_patient: str) -> tuple[list[DagRunResult], str]:
    """The whole pipeline on one sandbox pair. `targets` (kind -> patient id) are corrupted before the backfill;
    after the clock moved, `late_patient` gets an unknown status and the newest payment non-numeric money, so they
    arrive through the event feed. Returns the runs and that payment's id."""
    for kind, patient_id in targets.items():
        env.cherry.corrupt(patient_id, kind)
    runs = [run_dag(env, "cherry_backfill", scope="all")]
    env.cherry.advance(**ADVANCE)
    env.cherry.corrupt(late_patient, "unknown_status")
    payments = env.cherry.admin("GET", f"/practices/{env.cherry.practices[0].id}/payments")
    late_payment = max(payments, key=lambda p: (p["created_at"], p["_id"]))["_id"]
    env.cherry.corrupt(late_payment, "non_numeric_money", "payment")
    runs.append(run_dag(env, "cherry_refresh"))
    runs.append(run_dag(env, "cherry_smart_list"))
    runs.append(run_dag(env, "cherry_media_import"))
    return runs, late_payment


def _by_patient(env: DagEnv, store: SyncStore, slug: str, location_id: str) -> dict:
    """The location's contacts and opportunities keyed by the Cherry patient each contact was synced from."""
    state = env.crm.location_state(location_id, lists=True)
    keys = {f["id"]: f["fieldKey"] for f in state["customFields"]}
    owner = {s.crm_contact_id: s.patient_id for s in store.iter_patient_states(slug) if s.crm_contact_id}
    contacts, orphans = {}, []
    for c in state["contacts"]:
        if c["id"] not in owner:
            orphans.append(c["id"])
            continue
        contacts[owner[c["id"]]] = {
            **{k: c.get(k) for k in ("firstName", "lastName", "phone", "dateOfBirth")},
            "email": (c.get("email") or "").lower() or None,
            "tags": sorted(c.get("tags") or ()),
            "custom": {keys[i["id"]]: i.get("value") for i in c.get("customFields") or ()},
        }
    stages = {st["id"]: (p["name"], st["name"]) for p in state["pipelines"] for st in p["stages"]}
    opportunities = sorted(
        (
            owner.get(o["contactId"], "?"),
            o["name"],
            o["status"],
            o.get("monetaryValue"),
            stages.get(o["pipelineStageId"]),
        )
        for o in state["opportunities"]
    )
    return {"contacts": contacts, "orphans": orphans, "opportunities": opportunities, "raw": state}


def _media(state: dict) -> Counter:
    names = {m["id"]: m["name"] for m in state["media"] if m["type"] == "folder"}
    return Counter((names.get(m.get("parentId"), "-"), m["name"]) for m in state["media"] if m["type"] == "file")


def _rejections(store: SyncStore) -> set[tuple[str, str, str, str, str]]:
    return {(r.practice_slug, r.entity, r.source_id, r.stage, r.reason_code) for r in store.open_rejections()}


def test_pipeline_under_every_fault_at_once_ends_where_the_fault_free_run_does(
    airflow_home, tmp_path, cherry_sandbox_factory, crm_sandbox_factory
) -> None:
    started = time.monotonic()
    clean = _env(tmp_path / "clean", airflow_home, cherry_sandbox_factory, crm_sandbox_factory)
    faulty = _env(tmp_path / "faulty", airflow_home, cherry_sandbox_factory, crm_sandbox_factory)
    assert clean.cherry.fetch_all("/v1/patients", 0) == faulty.cherry.fetch_all("/v1/patients", 0)

    candidates = _unique_patients(clean)
    targets = {kind: candidates[i]["id"] for i, kind in enumerate(MALFORMED)}
    late_patient = candidates[len(MALFORMED)]["id"]
    baseline, late_payment = _pipeline(clean, targets, late_patient)

    faulty.crm.set_faults(**CRM_FAULTS)
    faulty.cherry.set_faults(**CHERRY_FAULTS)
    try:
        runs, faulty_late_payment = _pipeline(faulty, targets, late_patient)
    finally:
        faulty.crm.clear_faults()
        faulty.cherry.set_faults()
    assert faulty_late_payment == late_payment
    faulted_seconds = sum(r.seconds for r in runs)
    crm_fired, cherry_fired = faulty.crm.fired_faults(), faulty.cherry.fired_faults()

    print(f"faults fired: CRM {dict(crm_fired)}, Cherry {dict(cherry_fired)}")  # noqa: T201
    # Every fault type fired.
    assert crm_fired.keys() & SERVER_ERRORS, crm_fired
    for fault in (Fault.RATE_LIMITED, Fault.RATE_LIMITED_NO_RETRY_AFTER, Fault.HANG, Fault.WRITE_THEN_500):
        assert crm_fired.get(fault.value, 0) >= 1, (fault, crm_fired)
    assert cherry_fired.keys() & SERVER_ERRORS, cherry_fired
    for fault in (Fault.RATE_LIMITED, Fault.RATE_LIMITED_NO_RETRY_AFTER, Fault.HANG):
        assert cherry_fired.get(fault.value, 0) >= 1, (fault, cherry_fired)

    # Every task succeeded; Airflow retries (the scheduler's behaviour) are reported.
    for result in (*baseline, *runs):
        assert result.state == "success", (result.dag_id, result.output[-3000:])
        # Every practice task and summarize succeeded (the run's failure watcher is skipped when nothing failed).
        failed = [
            (t.task_id, t.rendered_map_index or t.map_index, t.state)
            for t in result.tasks
            if t.state != "success" and not (t.task_id.startswith("fail_run") and t.state == "skipped")
        ]
        assert not failed, (result.dag_id, failed, result.output[-3000:])
    retried = [(r.dag_id, t.task_id, t.map_index, t.try_number) for r in runs for t in r.tasks if t.try_number > 1]
    assert not [(r.dag_id, t.task_id) for r in baseline for t in r.tasks if t.try_number > 1]
    assert all(tries <= 2 for *_, tries in retried), retried

    # The same CRM state, keyed by Cherry patient; nothing duplicated.
    clean_store, faulty_store = _store(clean), _store(faulty)
    for index, entry in enumerate(clean.registry()):
        slug = entry["slug"]
        want = _by_patient(clean, clean_store, slug, clean.crm.locations[index].id)
        got = _by_patient(faulty, faulty_store, slug, faulty.crm.locations[index].id)
        assert want["orphans"] == got["orphans"] == [], (slug, want["orphans"], got["orphans"])
        assert got["contacts"] == want["contacts"], slug
        assert got["opportunities"] == want["opportunities"], slug
        assert not state_diff(canonical_state(got["raw"]), canonical_state(want["raw"])), slug
        assert not duplicates_by_contact_point(got["raw"]["contacts"]), slug
        opportunity_names = Counter(o[1] for o in got["opportunities"])
        assert max(opportunity_names.values(), default=1) == 1, slug
        per_contact = Counter(o[0] for o in got["opportunities"])
        assert max(per_contact.values(), default=1) == 1, slug
        assert _media(got["raw"]) == _media(want["raw"]), slug
        assert sum(_media(want["raw"]).values()) == ASSETS_KEPT and max(_media(got["raw"]).values()) == 1, slug
    assert (
        sum(
            len(_by_patient(clean, clean_store, e["slug"], loc.id)["opportunities"])
            for e, loc in zip(clean.registry(), clean.crm.locations, strict=True)
        )
        > 0
    )

    # The same rejections, each malformed record among them with its reason code.
    rejected = _rejections(faulty_store)
    assert rejected == _rejections(clean_store)
    by_id = {source_id: reason for _, _, source_id, _, reason in rejected}
    for kind, reason in MALFORMED.items():
        if kind == "missing_id":
            assert any(s.startswith("no-id-") and r == reason for s, r in by_id.items())
        elif reason is None:
            assert targets[kind] not in by_id, kind
        else:
            assert by_id.get(targets[kind]) == reason, kind
    assert by_id.get(late_patient) == "unknown_status" and by_id.get(late_payment) == "invalid_money"

    # Nothing half-done: with the faults off, another refresh writes nothing.
    writes = faulty.crm_writes()
    assert run_dag(faulty, "cherry_refresh").state == "success"
    assert faulty.crm_writes() == writes

    print(  # noqa: T201 - the numbers a reader of the test report wants
        f"fault run: CRM faults {dict(crm_fired)}, Cherry faults {dict(cherry_fired)}, "
        f"Airflow retries {retried}, faulted pipeline {faulted_seconds:.0f}s, test {time.monotonic() - started:.0f}s"
    )
