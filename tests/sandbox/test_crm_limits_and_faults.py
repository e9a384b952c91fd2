"""Rate limits (burst and daily, per location), fault switches and request statistics."""

from __future__ import annotations

import time

import pytest
import requests

from sandbox.common.ratelimit import RateLimitSettings

RATE_HEADERS = (
    "X-RateLimit-Limit-Daily",
    "X-RateLimit-Daily-Remaining",
    "X-RateLimit-Interval-Milliseconds",
    "X-RateLimit-Max",
    "X-RateLimit-Remaining",
)


def ping(client, crm, which=0):
    return client.get(f"/locations/{crm.location(which).id}")


def test_every_response_carries_rate_limit_headers(crm_sandbox):
    r = ping(crm_sandbox.client(0), crm_sandbox)
    assert all(h in r.headers for h in RATE_HEADERS)
    assert r.headers["X-RateLimit-Max"] == "100"
    assert r.headers["X-RateLimit-Interval-Milliseconds"] == "10000"
    assert r.headers["X-RateLimit-Limit-Daily"] == "200000"


def test_the_101st_request_in_10_seconds_is_429(crm_sandbox):
    client = crm_sandbox.client(0)
    statuses = [ping(client, crm_sandbox).status_code for _ in range(100)]
    assert statuses == [200] * 100
    r = ping(client, crm_sandbox)
    assert r.status_code == 429
    assert r.json()["statusCode"] == 429
    assert "Retry-After" not in r.headers  # HighLevel documents none
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert ping(crm_sandbox.client(1), crm_sandbox, 1).status_code == 200  # buckets are per location


def test_scaled_burst_window_recovers(crm_sandbox_factory):
    crm = crm_sandbox_factory(rate_limits=RateLimitSettings(burst_limit=5, burst_window_seconds=0.5))
    client = crm.client(0)
    responses = [ping(client, crm) for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 5 + [429]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses[:5]] == ["4", "3", "2", "1", "0"]
    assert responses[-1].headers["X-RateLimit-Max"] == "5"
    assert responses[-1].headers["X-RateLimit-Interval-Milliseconds"] == "500"
    time.sleep(0.55)
    assert ping(client, crm).status_code == 200


def test_limits_change_at_run_time(crm_sandbox):
    crm_sandbox.set_rate_limits(burst_limit=2, burst_window_seconds=5)
    client = crm_sandbox.client(0)
    assert [ping(client, crm_sandbox).status_code for _ in range(3)] == [200, 200, 429]
    crm_sandbox.set_rate_limits(enabled=False)
    assert ping(client, crm_sandbox).status_code == 200


def test_daily_budget_exhaustion_for_one_location(crm_sandbox):
    target = crm_sandbox.location(0).id
    crm_sandbox.override_rate_limits(target, daily_limit=3)
    client = crm_sandbox.client(0)
    responses = [ping(client, crm_sandbox) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert responses[-1].headers["X-RateLimit-Daily-Remaining"] == "0"
    assert "Daily" in responses[-1].json()["message"]
    assert ping(crm_sandbox.client(1), crm_sandbox, 1).status_code == 200
    crm_sandbox.clear_rate_limit_override(target)
    assert ping(client, crm_sandbox).status_code == 200


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        ("429", 429, "7"),
        ("429_no_retry_after", 429, None),
        ("500", 500, None),
        ("502", 502, None),
        ("503", 503, None),
    ],
)
def test_scripted_faults(crm_sandbox, fault, status, retry_after):
    crm_sandbox.set_faults(script=[fault], retry_after_seconds=7)
    client = crm_sandbox.client(0)
    r = ping(client, crm_sandbox)
    assert r.status_code == status
    assert r.headers.get("Retry-After") == retry_after
    assert r.json()["statusCode"] == status
    assert "X-RateLimit-Remaining" in r.headers
    assert ping(client, crm_sandbox).status_code == 200  # the script is used up


def test_hang_outlasts_the_client_timeout(crm_sandbox):
    crm_sandbox.set_faults(script=["hang"], hang_seconds=5)
    client = crm_sandbox.client(0)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        client.get(f"/locations/{crm_sandbox.location(0).id}", timeout=0.3)
    assert time.monotonic() - started < 2
    assert ping(client, crm_sandbox).status_code == 200  # only the scripted request hangs


def test_latency_is_added(crm_sandbox):
    crm_sandbox.set_faults(latency_ms=150)
    started = time.monotonic()
    assert ping(crm_sandbox.client(0), crm_sandbox).status_code == 200
    assert time.monotonic() - started >= 0.15


def test_write_then_500_keeps_the_write(crm_sandbox):
    loc = crm_sandbox.location(0).id
    client = crm_sandbox.client(0)
    crm_sandbox.set_faults(script=["write_then_500"])
    assert ping(client, crm_sandbox).status_code == 200  # reads pass; the fault waits for a write
    r = client.post("/contacts/upsert", json={"locationId": loc, "email": "ghost@example.com"})
    assert r.status_code == 500
    found = client.get("/contacts/search/duplicate", params={"locationId": loc, "email": "ghost@example.com"})
    assert found.json()["contact"]["email"] == "ghost@example.com"
    retried = client.post("/contacts/upsert", json={"locationId": loc, "email": "ghost@example.com"})
    assert retried.json()["new"] is False


def test_fault_shares_are_seeded_and_repeatable(crm_sandbox):
    client = crm_sandbox.client(0)
    crm_sandbox.set_rate_limits(enabled=False)
    runs = []
    for _ in range(2):
        crm_sandbox.set_faults(server_error_share=0.5, seed=42)
        runs.append([ping(client, crm_sandbox).status_code for _ in range(20)])
    assert runs[0] == runs[1]
    assert {200} < set(runs[0])


def test_stats_per_endpoint_and_location(crm_sandbox):
    crm_sandbox.reset_stats(window_seconds=10)
    loc0, loc1 = crm_sandbox.location(0).id, crm_sandbox.location(1).id
    first, second = crm_sandbox.client(0), crm_sandbox.client(1)
    for i in range(3):
        first.post("/contacts/upsert", json={"locationId": loc0, "email": f"s{i}@example.com"})
    second.get(f"/locations/{loc1}")
    stats = crm_sandbox.stats()
    assert stats["total"] == 4
    assert stats["endpoints"]["POST /contacts/upsert"] == 3
    assert stats["endpoints"]["GET /locations/{locationId}"] == 1
    assert stats["by_key"][loc0]["requests"] == 3
    assert stats["by_key"][loc0]["max_in_window"] == 3
    assert stats["by_key"][loc1]["endpoints"] == {"GET /locations/{locationId}": 1}
    assert crm_sandbox.reset_stats()["total"] == 0


def test_injected_faults_are_counted_across_reconfigurations(crm_sandbox):
    crm_sandbox.set_faults(script=["500", "429"])
    client = crm_sandbox.client()
    assert client.get(f"/locations/{crm_sandbox.location().id}").status_code == 500
    assert client.get(f"/locations/{crm_sandbox.location().id}").status_code == 429
    crm_sandbox.set_faults(script=["hang"], hang_seconds=0)
    client.get(f"/locations/{crm_sandbox.location().id}")
    assert crm_sandbox.fired_faults() == {"500": 1, "429": 1, "hang": 1}
