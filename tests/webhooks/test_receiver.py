"""The receiver over a real store: genuine deliveries are stored once before the 2xx, everything else is refused
with its status and counted, and no body reaches the logs."""

from __future__ import annotations

import json
import logging
import time

import pytest
import requests

from cherry_sync.webhooks.signature import HEADER, sign

SECRET = "whsec_" + "a1" * 16


def _event(event_id: str = "evt_1", event_type: str = "patient.refreshed", **data) -> bytes:
    body = {
        "id": event_id,
        "type": event_type,
        "occurred_at": "2026-06-01T00:00:00Z",
        "patient_id": "pat_1",
        "object_type": "patient",
        "data": {"id": "pat_1", "first_name": "Zyqcanary", **data},
    }
    return json.dumps(body).encode()


def _post(url: str, body: bytes, signature: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[HEADER] = signature
    return requests.post(url, data=body, headers=headers, timeout=10)


def test_a_signed_delivery_is_stored_once_and_answered_after_the_commit(store, receiver_factory):
    receiver = receiver_factory(store, {"glow": SECRET})
    body = _event("evt_1")

    first = _post(receiver.url("glow"), body, sign(SECRET, int(time.time()), body))
    again = _post(receiver.url("glow"), body, sign(SECRET, int(time.time()), body))

    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False}
    assert again.status_code == 200 and again.json() == {"received": True, "duplicate": True}
    rows = store.pending_webhooks("glow")
    assert [(r.event_id, r.event_type) for r in rows] == [("evt_1", "patient.refreshed")]
    assert rows[0].payload == json.loads(body)
    assert store.webhook_rejection_counts() == {}


@pytest.mark.parametrize(
    ("signature", "status", "reason"),
    [
        (None, 401, "missing_signature"),
        ("t=abc,v1=00", 401, "bad_signature"),
        ("wrong-secret", 401, "bad_signature"),
        ("stale", 400, "stale_timestamp"),
    ],
)
def test_bad_signatures_and_replays_are_refused_counted_and_never_stored(
    store, receiver_factory, signature, status, reason
):
    receiver = receiver_factory(store, {"glow": SECRET})
    body = _event("evt_2")
    now = int(time.time())
    if signature == "wrong-secret":
        signature = sign("whsec_someone_else_entirely", now, body)
    elif signature == "stale":
        signature = sign(SECRET, now - 301, body)  # genuine, but older than the 5-minute tolerance

    response = _post(receiver.url("glow"), body, signature)

    assert response.status_code == status
    assert response.json() == {"error": {"code": reason}}
    assert store.pending_webhooks("glow") == []
    assert store.webhook_rejection_counts() == {("glow", reason): 1}


def test_the_previous_secret_is_accepted_during_a_rotation_and_a_tolerable_skew_passes(store, receiver_factory):
    receiver = receiver_factory(store, {"glow": SECRET})
    body = _event("evt_3")
    # Cherry's clock a little ahead of ours is fine, within the tolerance.
    assert _post(receiver.url("glow"), body, sign(SECRET, int(time.time()) + 200, body)).status_code == 200
    header = sign("whsec_old_one_being_rotated", int(time.time()), body)
    header += "," + sign(SECRET, int(time.time()), body).split(",")[1]  # two v1 entries: old and new secret
    assert _post(receiver.url("glow"), _event("evt_4"), header).status_code == 401  # signed over another body
    assert _post(receiver.url("glow"), body, header).status_code == 200


def test_unknown_practices_unconfigured_secrets_and_junk_bodies_are_refused(store, receiver_factory):
    from tests.webhooks.conftest import registry_entry

    entries = [registry_entry("glow"), registry_entry("lumen"), registry_entry("polled", webhooks=False)]
    receiver = receiver_factory(store, {"glow": SECRET, "lumen": "", "polled": SECRET}, entries=entries)
    now = int(time.time())
    body = _event("evt_5")

    assert _post(receiver.url("nobody"), body, sign(SECRET, now, body)).status_code == 404
    assert _post(receiver.url("polled"), body, sign(SECRET, now, body)).status_code == 404  # webhooks off
    assert _post(receiver.url("lumen"), body, sign(SECRET, now, body)).status_code == 404  # no secret
    junk = b'["not", "an", "event"]'
    assert _post(receiver.url("glow"), junk, sign(SECRET, now, junk)).status_code == 400
    huge = b"{" + b" " * (300 * 1024) + b"}"
    assert _post(receiver.url("glow"), huge, sign(SECRET, now, huge)).status_code == 413

    assert store.webhook_rejection_counts() == {
        ("(unknown)", "unknown_practice"): 2,
        ("lumen", "not_configured"): 1,
        ("glow", "malformed_event"): 1,
        ("(unknown)", "too_large"): 1,
    }
    assert store.pending_webhooks("glow") == []


def test_nothing_of_a_body_or_a_signature_is_logged(store, receiver_factory, caplog):
    receiver = receiver_factory(store, {"glow": SECRET})
    caplog.set_level(logging.DEBUG)
    body = _event("evt_6", email="zyq.canary@canary-mail.example")
    signature = sign(SECRET, int(time.time()), body)
    _post(receiver.url("glow"), body, signature)
    _post(receiver.url("glow"), body, signature.replace("v1=", "v1=0"))

    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "webhook patient.refreshed for practice glow stored" in text
    assert "refused for practice glow: bad_signature" in text
    for secret_or_data in ("Zyqcanary", "canary-mail", SECRET, signature.split("v1=")[1]):
        assert secret_or_data not in text


def test_a_store_that_cannot_take_the_event_answers_503_so_cherry_retries(store, receiver_factory, monkeypatch):
    from sqlalchemy import create_engine

    from cherry_sync.store import SyncStore
    from cherry_sync.webhooks.receiver import RegistryEndpoints, create_app
    from sandbox.common.server import start_in_thread

    receiver_factory(store, {"glow": SECRET})  # the registry and the practice's connection
    unreachable = SyncStore(create_engine("postgresql+psycopg2://sync@127.0.0.1:9/cherry_sync?connect_timeout=2"))
    server = start_in_thread(create_app(endpoints=RegistryEndpoints(ttl=0), store=lambda: unreachable))
    body = _event("evt_7")
    try:
        response = _post(f"{server.base_url}/glow", body, sign(SECRET, int(time.time()), body))
    finally:
        server.stop()
    assert response.status_code == 503
    assert response.json() == {"error": {"code": "unavailable"}}
