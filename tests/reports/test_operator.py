"""MetricsEmailOperator in-process (connections as AIRFLOW_CONN_* variables): task states and the run ledger."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import yaml
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from cherry_sync.batches import batch_of
from cherry_sync.operators.metrics_email import MetricsEmailOperator
from cherry_sync.registry import load_registry
from cherry_sync.reports.window import resolve_window
from cherry_sync.store import engine_from_url, store_from_engine
from tests.reports.helpers import load_store_from_cherry

SLUG = "glow-aesthetics"


@pytest.fixture
def operator_env(tmp_path, monkeypatch, cherry_sandbox_factory, crm_sandbox_factory, smtp_connection):
    cherry = cherry_sandbox_factory(practices=1, patients_per_practice=40)
    info = cherry.practices[0]
    # The CRM is only asked for the location's time zone (the three zones must agree before a report goes out).
    crm = crm_sandbox_factory(locations=1, location_timezones=[info.timezone])
    location = crm.locations[0]
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    registry = tmp_path / "practices.yml"

    def write_registry(recipients: list[str], **settings) -> None:
        entry = {
            "slug": SLUG,
            "display_name": "Glow Aesthetics",
            "timezone": settings.pop("timezone", info.timezone),
            **settings,
            "cherry_conn_id": "cherry_glow",
            "crm_conn_id": "crm_glow",
            "options": {"report_recipients": recipients},
        }
        registry.write_text(yaml.safe_dump([entry]))

    write_registry(["owner@glow.example"])
    monkeypatch.setenv("CHERRY_SYNC_REGISTRY", str(registry))
    monkeypatch.setenv("CHERRY_SYNC_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_CHERRY_SYNC_STORE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "store.db")})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_CHERRY_GLOW",
        json.dumps({"conn_type": "http", "host": cherry.base_url, "password": info.api_key}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRM_GLOW",
        json.dumps(
            {
                "conn_type": "http",
                "host": crm.base_url,
                "password": location.token,
                "extra": {"location_id": location.id},
            }
        ),
    )
    store = store_from_engine(engine_from_url(store_url))
    store.sync_practices(load_registry(registry).practices)
    load_store_from_cherry(store, cherry, 0, SLUG)
    return store, write_registry, smtp_connection, monkeypatch


END = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()  # one window for every run of a test


def _execute(run_id: str = "run-1", **kwargs):
    kwargs.setdefault("report_end_date", END)
    with DAG("metrics_email_operator_test", schedule=None):
        op = MetricsEmailOperator(task_id="send_report", batch=batch_of(SLUG), **kwargs)
    return op.execute({"run_id": run_id, "logical_date": datetime.now(UTC)})["practices"][SLUG]


def _ledger(store, run_id: str):
    return next(r for r in store.list_runs(run_id=run_id) if r.task_id == "send_report")


def test_sends_once_and_records_the_run(operator_env):
    store, _, smtp, _ = operator_env

    first = _execute("run-1")
    second = _execute("run-2")

    assert (first["outcome"], second["outcome"]) == ("sent", "already_sent")
    assert len(smtp.messages) == 1
    entry = _ledger(store, "run-1")
    assert entry.status == "success" and entry.details["outcome"] == "sent" and entry.counts.api_calls >= 2
    assert "owner@glow.example" not in json.dumps(first) + json.dumps(entry.details)


def test_no_recipients_is_a_skip_with_the_reason(operator_env):
    store, write_registry, smtp, _ = operator_env
    write_registry([])

    with pytest.raises(AirflowSkipException, match="no report recipients"):
        _execute("run-skip")

    assert _ledger(store, "run-skip").status == "skipped"
    assert smtp.messages == []


def test_an_interrupted_send_fails_without_retries_and_says_what_to_do(operator_env):
    store, _, smtp, _ = operator_env
    # A worker killed mid-send left its claim on this window.
    window = resolve_window(
        store.get_practice(SLUG).timezone, reference=datetime.now(UTC), end_date=date.fromisoformat(END)
    )
    store.claim_report_send(SLUG, window.start, window.end, run_id="killed", recipients_count=1)

    with pytest.raises(AirflowFailException, match="force=true"):
        _execute("run-2")

    entry = _ledger(store, "run-2")
    assert entry.status == "failed" and entry.details["reason"] == "send_interrupted"
    assert smtp.messages == []
    assert _execute("run-3", force=True)["outcome"] == "sent"


def test_configuration_problems_fail_at_once(operator_env):
    store, _, smtp, monkeypatch = operator_env

    with pytest.raises(AirflowFailException, match="has not ended yet"):
        _execute("run-future", report_end_date=(datetime.now(UTC) + timedelta(days=2)).date().isoformat())
    monkeypatch.delenv("AIRFLOW_CONN_CHERRY_SYNC_SMTP")
    with pytest.raises(AirflowFailException, match="cherry_sync_smtp"):
        _execute("run-no-smtp")

    assert _ledger(store, "run-no-smtp").details["reason"] == "smtp_not_configured"
    assert smtp.messages == []


def test_time_zones_that_disagree_fail_the_report_at_once_and_a_pinned_zone_is_used(operator_env):
    store, write_registry, smtp, _ = operator_env
    zone = store.get_practice(SLUG).timezone
    other = "Pacific/Honolulu" if zone != "Pacific/Honolulu" else "America/Denver"
    write_registry(["owner@glow.example"], timezone=other)

    with pytest.raises(AirflowFailException) as failed:
        _execute("run-mismatch")

    message = str(failed.value)
    assert f"practice {SLUG}: time zones disagree: the registry says {other}" in message
    assert f"set the registry's timezone to {zone}" in message and "owner@glow.example" not in message
    assert _ledger(store, "run-mismatch").details["reason"] == "timezone_mismatch"
    assert smtp.messages == []

    write_registry(["owner@glow.example"], timezone=other, timezone_pinned=True)
    result = _execute("run-pinned")
    assert result["outcome"] == "sent" and len(smtp.messages) == 1
    assert store.get_report_send(SLUG, date.fromisoformat(result["window_start"]), date.fromisoformat(END))
