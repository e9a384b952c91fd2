"""A full backfill under each sandbox fault ends in the same CRM state as a fault-free one."""

from __future__ import annotations

import time

import pytest

from cherry_sync.hooks.base import RetrySettings
from cherry_sync.sync.practice_runs import backfill_practice, refresh_practice
from tests.sync.conftest import duplicates_by_contact_point

PAGE = 20

# (faults for both sandboxes, a status the CRM must have answered at least once, retry settings)
FAULTS = {
    # The sandbox's Retry-After is whole seconds; 0 keeps the test fast (the hook adds up to 0.25 s jitter).
    "429_retry_after": ({"rate_limited_share": 0.15, "retry_after_seconds": 0}, "429", None),
    "429_no_retry_after": ({"rate_limited_no_retry_after_share": 0.15}, "429", None),
    "5xx": ({"server_error_share": 0.15}, "5xx", None),
    "hang": (
        {"hang_share": 0.05, "hang_seconds": 0.6},
        None,
        RetrySettings(backoff_initial=0.01, backoff_max=0.1, read_timeout=0.3),
    ),
    "write_then_500": ({"write_then_500_share": 0.25}, "500", None),
    "latency": ({"latency_ms": 20}, None, None),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_backfill_under_fault_matches_fault_free_run(sync_env_factory, fault: str) -> None:
    settings, status, retry = FAULTS[fault]
    env = sync_env_factory()
    baseline = sync_env_factory(store="sqlite")
    clean = backfill_practice(baseline.make_ctx(0), page_size=PAGE)

    env.crm.set_faults(**settings, seed=3)
    env.cherry.set_faults(**{k: v for k, v in settings.items() if k != "write_then_500_share"}, seed=3)
    faulty = backfill_practice(env.make_ctx(0, retry=retry), page_size=PAGE)
    env.crm.clear_faults()
    env.cherry.set_faults()

    # Several writes were in flight at once (the window opens to at least 2 even on loopback).
    assert env.crm.stats()["by_key"][env.location_id(0)]["max_concurrent"] >= 2
    codes = env.status_codes(0)
    if status == "5xx":
        assert any(code.startswith("5") for code in codes), codes
    elif status is not None:
        assert codes.get(status), codes
    contacts = env.contacts(0)
    assert not duplicates_by_contact_point(contacts)
    state = env.crm_state(0)
    assert state["counts"]["customFields"] == 14
    assert env.canonical(0) == baseline.canonical(0)
    assert faulty.patients.rejected == clean.patients.rejected
    assert faulty.patients.rejects_by_reason == clean.patients.rejects_by_reason
    assert faulty.patients.created + faulty.patients.updated == clean.patients.created

    # And the faults left nothing half-done: an unchanged re-run writes nothing. A request the client gave up on
    # while the sandbox held it ("hang") still reaches the handler afterwards: let it land before counting.
    time.sleep(settings.get("hang_seconds", 0))
    env.crm.reset_stats()
    again = backfill_practice(env.make_ctx(0), page_size=PAGE)
    assert env.crm_writes(0) == {}
    assert again.patients.unchanged == clean.patients.created


@pytest.mark.parametrize("fault", [f for f in FAULTS if f != "latency"])
def test_refresh_under_fault_with_writes_in_flight_matches_fault_free_run(sync_env_factory, fault: str) -> None:
    """The refresh's writes go out several at a time too: under each fault it ends where a fault-free refresh of
    the same events ends, with nothing duplicated, and a re-run writes nothing."""
    settings, _, retry = FAULTS[fault]
    env = sync_env_factory()
    baseline = sync_env_factory(store="sqlite", cherry_of=env)
    for each in (env, baseline):
        backfill_practice(each.make_ctx(0), scope="all", page_size=PAGE)
    env.cherry.advance(
        minutes=120, new_patients=10, refreshed=30, payments=4, refunds=1, practice_id=env.cherry.practices[0].id
    )
    clean = refresh_practice(baseline.make_ctx(0), page_size=PAGE)

    env.crm.set_faults(**settings, latency_ms=20, seed=5)
    env.crm.reset_stats()
    faulty = refresh_practice(env.make_ctx(0, retry=retry), page_size=PAGE)
    env.crm.clear_faults()

    assert env.crm.stats()["by_key"][env.location_id(0)]["max_concurrent"] >= 2
    assert not duplicates_by_contact_point(env.contacts(0))
    assert env.canonical(0) == baseline.canonical(0)
    assert faulty.patients.created + faulty.patients.updated >= clean.patients.created + clean.patients.updated
    time.sleep(settings.get("hang_seconds", 0))
    env.crm.reset_stats()
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert env.crm_writes(0) == {}
