"""Rate limits per API key and every fault switch, seen through real HTTP."""

from __future__ import annotations

import time

import pytest
import requests

from sandbox.cherry.testing import CherrySandbox

RATE_HEADERS = (
    "X-RateLimit-Max",
    "X-RateLimit-Remaining",
    "X-RateLimit-Interval-Milliseconds",
    "X-RateLimit-Limit-Daily",
    "X-RateLimit-Daily-Remaining",
    "X-RateLimit-Daily-Reset",
)


def test_rate_limit_headers_on_every_response(cherry_sandbox: CherrySandbox):
    for path in ("/v1/practice", "/v1/patients", "/v1/patients/pat_missing", "/v1/estimates"):
        response = cherry_sandbox.get(path, 0, limit=1)
        for header in RATE_HEADERS:
            assert header in response.headers, (path, header)
    first = cherry_sandbox.get("/v1/practice", 1).headers
    assert first["X-RateLimit-Max"] == "20" and first["X-RateLimit-Interval-Milliseconds"] == "1000"
    assert first["X-RateLimit-Limit-Daily"] == "100000"


def test_burst_limit_gives_429_with_retry_after(cherry_sandbox_factory):
    sandbox = cherry_sandbox_factory(rate_limits={"burst_limit": 5, "burst_window_seconds": 1.0})
    statuses = [sandbox.get("/v1/practice", 0) for _ in range(6)]
    assert [r.status_code for r in statuses[:5]] == [200] * 5
    limited = statuses[5]
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 1
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Limit-Daily"] == "100000"  # the other Cherry defaults are kept
    # The limit is per key (practice): another practice is unaffected; an unknown key is never limited.
    assert sandbox.get("/v1/practice", 1).status_code == 200
    assert sandbox.get("/v1/practice", api_key="ck_unknown").status_code == 401
    time.sleep(float(limited.headers["Retry-After"]))
    assert sandbox.get("/v1/practice", 0).status_code == 200
    by_key = sandbox.stats()["by_key"]
    assert by_key[sandbox.practices[0].id]["status_codes"]["429"] == 1
    assert by_key[sandbox.practices[0].id]["max_in_window"] >= 6


def test_two_keys_of_one_practice_share_its_limit(cherry_sandbox_factory):
    sandbox = cherry_sandbox_factory(rate_limits={"burst_limit": 4, "burst_window_seconds": 5.0})
    second_key = sandbox.create_key(0)
    codes = [sandbox.get("/v1/practice", 0).status_code for _ in range(2)]
    codes += [sandbox.get("/v1/practice", api_key=second_key).status_code for _ in range(3)]
    assert codes == [200, 200, 200, 200, 429]


def test_daily_budget(cherry_sandbox_factory):
    sandbox = cherry_sandbox_factory(rate_limits={"burst_limit": 100, "daily_limit": 3})
    codes = [sandbox.get("/v1/practice", 0).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    last = sandbox.get("/v1/practice", 0)
    assert last.headers["X-RateLimit-Daily-Remaining"] == "0"
    assert int(last.headers["Retry-After"]) > 3600  # the day has to roll over


def test_rate_limits_can_be_changed_at_run_time(cherry_sandbox: CherrySandbox):
    cherry_sandbox.set_rate_limits(burst_limit=2, burst_window_seconds=10)
    codes = [cherry_sandbox.get("/v1/practice", 0).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    cherry_sandbox.admin(
        "PUT", f"/rate-limits/{cherry_sandbox.practices[0].id}", json={"burst_limit": 50, "burst_window_seconds": 10}
    )
    assert cherry_sandbox.get("/v1/practice", 0).status_code == 200


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        ("429", 429, True),
        ("429_no_retry_after", 429, False),
        ("500", 500, False),
        ("502", 502, False),
        ("503", 503, False),
    ],
)
def test_scripted_faults(cherry_sandbox: CherrySandbox, fault, status, retry_after):
    cherry_sandbox.set_faults(script=[fault], retry_after_seconds=7)
    response = cherry_sandbox.get("/v1/patients", 0, limit=1)
    assert response.status_code == status
    assert response.json()["error"]["code"] == ("rate_limited" if status == 429 else "internal_error")
    assert ("Retry-After" in response.headers) is retry_after
    if retry_after:
        assert response.headers["Retry-After"] == "7"
    assert cherry_sandbox.get("/v1/patients", 0, limit=1).status_code == 200  # the script is used up
    # Admin routes are never faulted, so a test can always inspect and reset.
    assert cherry_sandbox.admin("GET", "/faults")["script_remaining"] == []


def test_fault_shares_are_repeatable(cherry_sandbox: CherrySandbox):
    cherry_sandbox.set_rate_limits(enabled=False)  # only injected faults here

    def run() -> list[int]:
        cherry_sandbox.set_faults(server_error_share=0.3, rate_limited_share=0.2, seed=3)
        return [cherry_sandbox.get("/v1/practice", 1).status_code for _ in range(15)]

    first = run()
    assert set(first) - {200} and 200 in first
    assert run() == first
    cherry_sandbox.set_faults()
    assert cherry_sandbox.get("/v1/practice", 1).status_code == 200


def test_latency(cherry_sandbox: CherrySandbox):
    cherry_sandbox.set_faults(latency_ms=300)
    started = time.perf_counter()
    assert cherry_sandbox.get("/v1/practice", 0).status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_hang_outlasts_the_client_timeout(cherry_sandbox: CherrySandbox):
    cherry_sandbox.set_faults(script=["hang"], hang_seconds=1.5)
    with pytest.raises(requests.Timeout):
        cherry_sandbox.get("/v1/practice", 0, timeout=0.3)
    assert cherry_sandbox.get("/v1/practice", 0).status_code == 200


def test_faults_can_target_paths(cherry_sandbox: CherrySandbox):
    cherry_sandbox.set_faults(server_error_share=1.0, path_prefixes=["/v1/events"])
    assert cherry_sandbox.get("/v1/events", 0).status_code in (500, 502, 503)
    assert cherry_sandbox.get("/v1/patients", 0).status_code == 200


def test_write_then_500_never_fires_on_the_read_only_api(cherry_sandbox: CherrySandbox):
    # Cherry's public API has only GETs: a scripted write fault waits for a write that never comes.
    cherry_sandbox.set_faults(script=["write_then_500"])
    assert cherry_sandbox.get("/v1/patients", 0, limit=1).status_code == 200
    assert cherry_sandbox.admin("GET", "/faults")["script_remaining"] == ["write_then_500"]


def test_initial_faults_from_config(cherry_sandbox_factory):
    sandbox = cherry_sandbox_factory(faults={"script": ["503"]})
    assert sandbox.get("/v1/practice", 0).status_code == 503
    assert sandbox.get("/v1/practice", 0).status_code == 200
