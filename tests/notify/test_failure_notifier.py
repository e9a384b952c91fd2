"""The operators' failure email: sent through a real SMTP server, to the connection's ops_email, no patient data."""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace

import pytest

from cherry_sync.notify import NOTIFICATION_HEADER, OperatorsFailureNotifier, ops_recipients

PATIENT_EMAIL = "jane.canary@example.com"
PATIENT_PHONE = "+1 (415) 555-0142"


def _context(error: Exception) -> dict:
    ti = SimpleNamespace(
        dag_id="cherry_backfill",
        task_id="practice.sync_patients",
        run_id="manual__2026-12-01T10:00:00+00:00",
        map_index=1,
        try_number=4,
        log_url="http://airflow.example/dags/cherry_backfill/runs/x/tasks/practice.sync_patients?map_index=1",
    )
    task = SimpleNamespace(practice="lumen-medspa", retries=3, task_id="practice.sync_patients")
    return {"ti": ti, "task": task, "exception": error}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"ops_email": "ops@aesthetix.example"}, ["ops@aesthetix.example"]),
        ({"ops_email": "a@x.example, b@x.example"}, ["a@x.example", "b@x.example"]),
        ({"ops_email": ["a@x.example", "not-an-address"]}, ["a@x.example"]),
        ({"ops_email": '["a@x.example"]'}, ["a@x.example"]),
        ({"ops_email": "[broken"}, []),
        ({}, []),
    ],
)
def test_ops_recipients_forms(extra, expected):
    assert ops_recipients(extra) == expected


def test_failure_email_reaches_operators_without_patient_data(smtp_server, monkeypatch):
    for name, value in smtp_server.conn_env(ops_email="ops@aesthetix.example, oncall@aesthetix.example").items():
        monkeypatch.setenv(name, value)
    error = RuntimeError(f"practice lumen-medspa: CRM answered 400 for {PATIENT_EMAIL} / {PATIENT_PHONE}")

    OperatorsFailureNotifier()(_context(error))

    [received] = smtp_server.messages
    assert set(received.rcpt_tos) == {"ops@aesthetix.example", "oncall@aesthetix.example"}
    msg = received.message
    assert msg["Subject"].strip() == "[Cherry Sync] cherry_backfill: practice.sync_patients failed for lumen-medspa"
    assert (
        msg[NOTIFICATION_HEADER].strip() == "cherry_backfill/practice.sync_patients/manual__2026-12-01T10:00:00+00:00"
    )
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for body in (text, html):
        assert "lumen-medspa" in body and "RuntimeError" in body and "4 of 4" in body
        assert "map_index=1" in body  # the log link
    raw = received.raw.decode("utf-8", "replace")
    assert PATIENT_EMAIL not in raw and "555-0142" not in raw and "555" not in text


def test_no_ops_email_means_no_mail_and_no_error(smtp_server, monkeypatch, caplog):
    for name, value in smtp_server.conn_env().items():
        monkeypatch.setenv(name, value)
    OperatorsFailureNotifier()(_context(RuntimeError("boom")))
    assert smtp_server.messages == []
    assert "has no ops_email extra" in caplog.text


def test_unreachable_smtp_server_is_logged_not_raised(smtp_server, monkeypatch, caplog):
    conn = smtp_server.connection(ops_email="ops@aesthetix.example")
    with socket.socket() as closed:  # a port nothing listens on once the socket is closed
        closed.bind(("127.0.0.1", 0))
        conn["port"] = closed.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_CHERRY_SYNC_SMTP", json.dumps(conn))
    OperatorsFailureNotifier()(_context(RuntimeError("boom")))
    assert "not emailed: SMTP unreachable or refused (ConnectionRefusedError)" in caplog.text
    assert "ops@aesthetix.example" not in caplog.text
