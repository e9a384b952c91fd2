"""`WriteWindow` against the real CRM sandbox: several requests in flight, per-key order, outcomes per job; and the
hook holding back on the service's own `X-RateLimit-Remaining`."""

from __future__ import annotations

import threading
import time

import pytest

from cherry_sync.hooks import errors
from cherry_sync.hooks.inflight import Job, WriteWindow, window_size
from tests.hooks.conftest import ROOMY, crm_hook


def _new_contacts(hook, n: int) -> list[str]:
    return [hook.upsert_contact({"email": f"window{i}@example.test", "firstName": "W"})[0]["id"] for i in range(n)]


def test_writes_overlap_up_to_the_window_and_come_back_in_order(crm_sandbox) -> None:
    hook = crm_hook(crm_sandbox, retry=ROOMY, burst_limit=95, burst_window_seconds=1)
    ids = _new_contacts(hook, 12)
    crm_sandbox.set_faults(latency_ms=150)
    crm_sandbox.reset_stats()
    jobs = [
        Job(cid, lambda cid=cid, i=i: hook.update_contact(cid, {"lastName": f"L{i}"})["id"])
        for i, cid in enumerate(ids)
    ]
    started = time.monotonic()
    with WriteWindow(hook, max_in_flight=4) as window:
        outcomes = window.run(jobs)
    elapsed = time.monotonic() - started

    assert [o.result for o in outcomes] == ids
    loc = crm_sandbox.location(0).id
    assert crm_sandbox.stats()["by_key"][loc]["max_concurrent"] == 4
    assert elapsed < 12 * 0.15 / 2, "twelve 150 ms writes four at a time take about 0.45 s, one at a time 1.8 s"
    state = {c["id"]: c for c in crm_sandbox.location_state(loc)["contacts"]}
    assert [state[cid]["lastName"] for cid in ids] == [f"L{i}" for i in range(12)]


def test_jobs_of_one_key_never_overlap_and_keep_their_order(crm_sandbox) -> None:
    hook = crm_hook(crm_sandbox, retry=ROOMY, burst_limit=95, burst_window_seconds=1)
    [first, second] = _new_contacts(hook, 2)
    crm_sandbox.set_faults(latency_ms=100)
    spans: dict[str, list[tuple[float, float]]] = {first: [], second: []}
    lock = threading.Lock()

    def write(cid: str, value: str) -> str:
        began = time.monotonic()
        hook.update_contact(cid, {"lastName": value})
        with lock:
            spans[cid].append((began, time.monotonic()))
        return value

    jobs = [Job(cid, lambda cid=cid, v=v: write(cid, v)) for v in ("a", "b", "c") for cid in (first, second)]
    with WriteWindow(hook, max_in_flight=8) as window:
        outcomes = window.run(jobs)

    assert [o.result for o in outcomes] == ["a", "a", "b", "b", "c", "c"]
    for cid in (first, second):
        chain = spans[cid]
        assert all(end <= nxt_begin for (_, end), (nxt_begin, _) in zip(chain, chain[1:], strict=False))
    contacts = {c["id"]: c for c in crm_sandbox.location_state(crm_sandbox.location(0).id)["contacts"]}
    assert contacts[first]["lastName"] == contacts[second]["lastName"] == "c"  # the last write of each key won
    # The two keys did run side by side.
    assert spans[first][0][0] < spans[second][0][1] and spans[second][0][0] < spans[first][0][1]


def test_a_failed_job_is_its_own_outcome_and_the_others_complete(crm_sandbox) -> None:
    hook = crm_hook(crm_sandbox, retry=ROOMY, burst_limit=95, burst_window_seconds=1)
    ids = _new_contacts(hook, 3)
    jobs = [Job(cid, lambda cid=cid: hook.update_contact(cid, {"lastName": "ok"})["id"]) for cid in ids]
    jobs.insert(1, Job("bad", lambda: hook.update_contact(ids[0], {"notAField": "x"})))
    with WriteWindow(hook, max_in_flight=4) as window:
        outcomes = window.run(jobs)
    assert [o.ok for o in outcomes] == [True, False, True, True]
    assert isinstance(outcomes[1].error, errors.ValidationError)
    assert [o.result for o in outcomes if o.ok] == ids


def test_window_size_follows_the_pacing_rate_and_the_round_trip(crm_sandbox) -> None:
    real_limits = crm_hook(crm_sandbox, burst_limit=95, burst_window_seconds=10)
    assert window_size(real_limits) == 4  # no answer seen yet
    real_limits._note_latency(0.25)
    assert window_size(real_limits) == 4  # 9.5 per s x 0.25 s x 1.25, rounded up, + 1
    real_limits._latency = 0.5
    assert window_size(real_limits) == 7
    real_limits._latency = 0.002  # loopback
    assert window_size(real_limits) == 2
    capped = crm_hook(crm_sandbox, burst_limit=95, burst_window_seconds=1, max_in_flight=3)
    capped._note_latency(0.5)
    assert window_size(capped) == 3


def test_the_services_own_remaining_count_holds_the_next_request(crm_sandbox) -> None:
    """Another app on the location spends its window: our pacer does not know, the headers do."""
    loc = crm_sandbox.location(0).id
    crm_sandbox.override_rate_limits(loc, burst_limit=3, burst_window_seconds=2)
    hook = crm_hook(crm_sandbox, burst_limit=1000, burst_window_seconds=1)
    started = time.monotonic()
    for _ in range(5):
        hook.get_location()
    elapsed = time.monotonic() - started
    assert crm_sandbox.stats()["by_key"][loc]["status_codes"].get("429", 0) == 0
    assert elapsed >= 1.0, "the fourth call had to wait for the window to free a slot"


def test_stream_draws_jobs_only_as_the_window_has_room_and_hands_outcomes_back_in_the_calling_thread(
    crm_sandbox,
) -> None:
    hook = crm_hook(crm_sandbox, retry=ROOMY, burst_limit=95, burst_window_seconds=1)
    ids = _new_contacts(hook, 10)
    crm_sandbox.set_faults(latency_ms=100)
    crm_sandbox.reset_stats()
    caller = threading.get_ident()
    drawn: list[str] = []
    unfinished_at_draw: list[int] = []
    finished: list[str] = []

    def feed():
        for i, cid in enumerate(ids):
            assert threading.get_ident() == caller, "jobs are drawn in the calling thread"
            unfinished_at_draw.append(len(drawn) - len(finished))
            drawn.append(cid)
            yield Job(cid, lambda cid=cid, i=i: hook.update_contact(cid, {"lastName": f"S{i}"})["id"])

    with WriteWindow(hook, max_in_flight=3) as window:
        for job, outcome in window.stream(feed()):
            assert threading.get_ident() == caller
            assert outcome.ok and outcome.result == job.key
            finished.append(job.key)

    assert sorted(finished) == sorted(ids) and len(finished) == len(ids)
    assert max(unfinished_at_draw) <= 2, "never more than the window's 3 jobs drawn and unfinished"
    assert window.peak_in_flight == 3
    assert crm_sandbox.stats()["by_key"][crm_sandbox.location(0).id]["max_concurrent"] == 3
    state = {c["id"]: c for c in crm_sandbox.location_state(crm_sandbox.location(0).id)["contacts"]}
    assert [state[cid]["lastName"] for cid in ids] == [f"S{i}" for i in range(10)]


def test_stream_keeps_one_keys_jobs_in_order_and_yields_what_was_out_before_a_feed_error(crm_sandbox) -> None:
    hook = crm_hook(crm_sandbox, retry=ROOMY, burst_limit=95, burst_window_seconds=1)
    [first, second] = _new_contacts(hook, 2)
    crm_sandbox.set_faults(latency_ms=50)

    def feed():
        for value in ("a", "b", "c"):
            for cid in (first, second):
                yield Job(cid, lambda cid=cid, v=value: hook.update_contact(cid, {"lastName": v})["lastName"])
        raise RuntimeError("the feed broke")

    seen: list[tuple[str, str]] = []
    with WriteWindow(hook, max_in_flight=4) as window, pytest.raises(RuntimeError, match="the feed broke"):
        for job, outcome in window.stream(feed()):
            seen.append((job.key, outcome.result))
    assert [v for cid, v in seen if cid == first] == ["a", "b", "c"]
    assert [v for cid, v in seen if cid == second] == ["a", "b", "c"], "every job drawn was yielded before the error"
    contacts = {c["id"]: c for c in crm_sandbox.location_state(crm_sandbox.location(0).id)["contacts"]}
    assert contacts[first]["lastName"] == contacts[second]["lastName"] == "c"


def test_thread_calls_count_only_what_the_calling_thread_sent(crm_sandbox) -> None:
    """What lets a window's job tell whether its own write was repeated (the shared `calls` mixes every job's)."""
    hook = crm_hook(crm_sandbox, retry=ROOMY, burst_limit=95, burst_window_seconds=1)
    crm_sandbox.set_faults(script=["500"], path_prefixes=["/locations/"])
    hook.get_location()  # one 500, then an answer: two attempts from this thread
    other: list[int] = []
    worker = threading.Thread(
        target=lambda: (hook.get_location(), other.append(hook.thread_calls("GET /locations/{id}")))
    )
    worker.start()
    worker.join()
    assert other == [1]
    assert hook.thread_calls("GET /locations/{id}") == 2
    assert hook.calls["GET /locations/{id}"] == 3
