"""Alert notices carry no patient data and no secret; a store without `alert_states` yet works once migrated;
`options.alerts` is validated like the other options and leaves older entries' fingerprints alone."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect

from cherry_sync.alerts import RunMeasure, crm_write_failures, measure_run
from cherry_sync.registry import AlertOptions, parse_entries
from cherry_sync.store import LedgerEntry, PatientSnapshot, Rejection, RunCounts, SyncStore, engine_from_url, migrate
from cherry_sync.store.engine import dispose_engine
from cherry_sync.tasks import summarize_run
from tests.alerts.conftest import GLOW, LUMEN, OPS, REFRESH, practice_entry, store_connection
from tests.store.conftest import make_practice

PATIENT_NAME = "Zelda Canarywood"
PATIENT_EMAIL = "zelda.canary@example.com"
PATIENT_PHONE = "+1 415 555 0199"
CHERRY_KEY = "ck_live_CANARY_7f3a9e2b"
CRM_TOKEN = "pit-CANARY-0b1d2c3e"
SMTP_SECRET = "smtp-CANARY-pass"


def test_notices_hold_no_patient_data_and_no_secret(alert_env, monkeypatch, caplog):
    env = alert_env
    caplog.set_level(logging.DEBUG)
    # Secrets where a careless notice could find them: the practices' connections.
    monkeypatch.setenv("AIRFLOW_CONN_CHERRY_GLOW_AESTHETICS", json.dumps({"conn_type": "http", "password": CHERRY_KEY}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRM_GLOW_AESTHETICS",
        json.dumps({"conn_type": "http", "password": CRM_TOKEN, "extra": {"location_id": "loc1"}}),
    )
    # Patient data in the store beside the run: a snapshot and rejections whose messages name the patient.
    env.store.sync_practices([make_practice(GLOW)])
    env.store.upsert_patient_snapshots(
        GLOW,
        [
            PatientSnapshot(
                patient_id="p-canary",
                snapshot={"id": "p-canary", "first_name": PATIENT_NAME, "email": PATIENT_EMAIL, "phone": PATIENT_PHONE},
                source_updated_at=datetime(2027, 1, 1, tzinfo=UTC),
            )
        ],
    )
    env.store.record_rejections(
        GLOW, [Rejection("patient", "p-canary", "crm_write", "crm_rejected", f"{PATIENT_EMAIL} {PATIENT_PHONE}")]
    )
    details = {"patients": {"rejects_by_reason": {"crm_rejected": 30}}, "api_calls": {"crm PUT /contacts/{id}": 70}}

    summaries = [
        env.run(practices={GLOW: {"read": 100, "updated": 40, "rejected": 60, "details": details}}),  # raised
        env.run(practices={GLOW: {"read": 100, "updated": 100}}),  # recovered
    ]

    assert len(env.smtp.messages) == 4  # rejection rate and CRM failure rate, raised then recovered
    canaries = (PATIENT_NAME, "Canarywood", PATIENT_EMAIL, "555 0199", "5550199", CHERRY_KEY, CRM_TOKEN, SMTP_SECRET)
    for received in env.smtp.messages:
        raw = received.raw.decode("utf-8", "replace")
        texts = [raw] + [received.message.get_body((kind,)).get_content() for kind in ("plain", "html")]
        for text in texts:
            assert not [c for c in canaries if c in text], text
        assert "p-canary" not in raw  # not even opaque patient ids: the notice is about the run
    logged = caplog.text + json.dumps(summaries)
    assert not [c for c in canaries if c in logged]
    assert OPS not in caplog.text  # recipients never reach a log line


def test_the_smtp_password_stays_out_of_notices_and_logs(alert_env, monkeypatch, caplog):
    # A connection with a login the loopback server does not ask for: the send fails, the secret stays hidden.
    conn = alert_env.smtp.connection(ops_email=OPS)
    conn.update(login="alerts", password=SMTP_SECRET)
    monkeypatch.setenv("AIRFLOW_CONN_CHERRY_SYNC_SMTP", json.dumps(conn))
    alert_env.run(practices={GLOW: {"read": 10, "updated": 2, "rejected": 8}})
    assert SMTP_SECRET not in caplog.text
    assert all(SMTP_SECRET.encode() not in m.raw for m in alert_env.smtp.messages)


def test_a_store_without_the_table_works_after_migration(store_url, smtp_server, tmp_path, monkeypatch):
    # A store as the previous release left it: migrated up to the revision before alert_states, runs in the ledger.
    engine = engine_from_url(store_url)
    migrate(engine, "0008_oauth_tokens")
    assert "alert_states" not in inspect(engine).get_table_names()
    old = SyncStore(engine)
    for run_id, rejected in (("old__1", 1), ("old__2", 40)):
        ledger_id = old.start_run(run_id, REFRESH, GLOW, "practice.apply_events")
        old.finish_run(ledger_id, "success", RunCounts(read=100, updated=100 - rejected, rejected=rejected))

    registry = tmp_path / "practices.yml"
    registry.write_text(json.dumps([practice_entry(GLOW)]))
    monkeypatch.setenv("CHERRY_SYNC_REGISTRY", str(registry))
    monkeypatch.setenv("AIRFLOW_CONN_CHERRY_SYNC_STORE", json.dumps(store_connection(old)))
    for name, value in smtp_server.conn_env(ops_email=OPS).items():
        monkeypatch.setenv(name, value)
    dispose_engine(engine.url)  # the task's process: a fresh engine, migrated by get_store on first use
    try:
        summary = summarize_run("old__2", REFRESH)

        assert {"practice": GLOW, "kind": "rejection_rate", "state": "raised"} in summary["alerts"]
        assert [m.message["Subject"].strip() for m in smtp_server.messages] == [
            f"[Cherry Sync] alert: rejection rate for {GLOW} in {REFRESH}"
        ]
        assert "alert_states" in inspect(engine_from_url(store_url)).get_table_names()
    finally:
        dispose_engine(engine.url)


def test_set_alert_state_transitions(store):
    first = store.set_alert_state(GLOW, REFRESH, "silent", raised=False, value=3.0, threshold=5.0, run_id="r1")
    assert first.previous is None and not first.changed and not first.current.notice_due
    raised = store.set_alert_state(GLOW, REFRESH, "silent", raised=True, value=0.0, threshold=5.0, run_id="r2")
    assert raised.changed and raised.current.notice_due and raised.current.since > first.current.since
    held = store.set_alert_state(GLOW, REFRESH, "silent", raised=True, value=0.0, threshold=5.0, run_id="r3")
    assert not held.changed and held.current.since == raised.current.since and held.current.last_run_id == "r3"
    assert store.mark_alert_notified(GLOW, REFRESH, "silent", raised.current.since)
    assert not store.mark_alert_notified(GLOW, REFRESH, "silent", raised.current.since)  # settled once
    recovered = store.set_alert_state(GLOW, REFRESH, "silent", raised=False, value=4.0, threshold=5.0, run_id="r4")
    assert recovered.changed and recovered.previous == "raised" and recovered.current.notice_due
    # A late settlement of the older state does not settle the newer one.
    assert not store.mark_alert_notified(GLOW, REFRESH, "silent", raised.current.since)
    assert store.alert_states(GLOW)[0].notice_due
    first_raise = store.set_alert_state(
        LUMEN, REFRESH, "rejection_rate", raised=True, value=50, threshold=10, run_id="r1"
    )
    assert first_raise.changed and first_raise.current.notice_due
    assert [s.practice_slug for s in store.alert_states()] == [GLOW, LUMEN]
    with pytest.raises(ValueError):
        store.set_alert_state(GLOW, REFRESH, "loud", raised=True, value=1, threshold=1, run_id="r5")


def _entry(status="success", details=None, **counts) -> LedgerEntry:
    now = datetime(2027, 1, 1, tzinfo=UTC)
    return LedgerEntry(1, "r", REFRESH, "t", GLOW, status, 1, now, now, RunCounts(**counts), details or {})


def test_measure_sums_a_practices_rows_and_counts_failed_crm_writes_only():
    details = {
        "patients": {
            "rejects_by_reason": {"crm_rejected": 3, "contact_conflict": 4, "missing_id": 5},
            "warnings_by_reason": {"invalid_phone": 7, "crm_rejected": 100},  # synced: never a failed write
        }
    }
    run = measure_run(
        [
            _entry(read=100, created=10, updated=20, rejected=12, details=details),
            _entry(read=0, created=2, details={"failed_by_reason": {"timeout": 1, "cancelled": 9}}),
        ]
    )
    assert run == RunMeasure(read=100, written=32, rejected=12, crm_attempted=36, crm_failed=4)
    assert run.rejection_rate == 12.0 and run.crm_failure_rate == pytest.approx(100 * 4 / 36)
    assert crm_write_failures({"failed_by_reason": {"server_error": "x"}}) == 0
    assert measure_run([_entry(status="failed"), _entry(details={"dry_run": True})]) == RunMeasure(
        succeeded=False, dry_run=True
    )
    assert RunMeasure().rejection_rate is None and RunMeasure().crm_failure_rate is None


def _fingerprint(**entry) -> str:
    base = {"slug": GLOW, "display_name": "Glow", "timezone": "UTC", "cherry_conn_id": "c", "crm_conn_id": "k"}
    return parse_entries([base | entry]).fingerprint(GLOW)


def test_registry_alert_options_defaults_validation_and_fingerprint():
    assert AlertOptions() == AlertOptions(
        enabled=True, rejection_rate_percent=10, crm_failure_rate_percent=5, silent_after_runs=5
    )
    plain = _fingerprint()
    assert _fingerprint(options={"alerts": {}}) == plain
    assert _fingerprint(options={"alerts": {"rejection_rate_percent": 10, "enabled": True}}) == plain
    assert _fingerprint(options={"alerts": {"rejection_rate_percent": 12}}) != plain
    assert _fingerprint(options={"alerts": {"silent_after_runs": 3}}) != plain

    base = {"slug": GLOW, "display_name": "Glow", "timezone": "UTC", "cherry_conn_id": "c", "crm_conn_id": "k"}
    bad = {
        "rejection_rate_percent": 101,
        "crm_failure_rate_percent": "5",
        "silent_after_runs": 0,
        "enabled": "yes",
        "treshold": 1,
    }
    registry = parse_entries([base | {"options": {"alerts": bad}}, practice_entry(LUMEN)])
    assert [p.slug for p in registry.practices] == [LUMEN]  # the other practice keeps its entry
    assert {e.field for e in registry.errors} == {f"options.alerts.{name}" for name in bad}
    assert registry.errors[-1].message == "unknown setting (misspelt?)"
