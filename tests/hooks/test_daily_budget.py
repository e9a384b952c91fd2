"""The daily request budget (X-RateLimit-Daily-Remaining): used up -> DailyBudgetExhaustedError, no loop."""

from __future__ import annotations

import pytest

from cherry_sync.hooks import errors
from tests.hooks.conftest import crm_hook

DAILY_LIMIT = 5


def test_budget_spent_stops_the_hook_and_spares_other_locations(crm_sandbox):
    spent, other = crm_sandbox.location(0), crm_sandbox.location(1)
    crm_sandbox.override_rate_limits(spent.id, daily_limit=DAILY_LIMIT)
    hook = crm_hook(crm_sandbox, 0)
    with pytest.raises(errors.DailyBudgetExhaustedError) as info:
        for _ in range(50):
            hook.list_pipelines()
    assert not info.value.retryable
    assert hook.daily_remaining == 0
    assert crm_sandbox.stats()["by_key"][spent.id]["requests"] <= DAILY_LIMIT + 1

    # Asking again does not reach the API: the hook knows the budget is spent.
    with pytest.raises(errors.DailyBudgetExhaustedError):
        hook.upsert_contact({"email": "later@example.org"})
    assert crm_sandbox.stats()["by_key"][spent.id]["requests"] <= DAILY_LIMIT + 1

    # A fresh hook (a new task) learns it from the first 429, and does not retry it.
    fresh = crm_hook(crm_sandbox, 0)
    with pytest.raises(errors.DailyBudgetExhaustedError):
        fresh.list_pipelines()
    assert fresh.calls["GET /opportunities/pipelines"] == 1
    assert crm_sandbox.stats()["by_key"][spent.id]["requests"] <= DAILY_LIMIT + 2

    assert crm_hook(crm_sandbox, 1).list_pipelines()  # another location keeps working
    assert crm_sandbox.stats()["by_key"][other.id]["status_codes"] == {"200": 1}


def test_daily_reserve_keeps_requests_back(crm_sandbox):
    crm_sandbox.override_rate_limits(crm_sandbox.location(0).id, daily_limit=DAILY_LIMIT)
    hook = crm_hook(crm_sandbox, 0, daily_reserve=2)
    calls = 0
    with pytest.raises(errors.DailyBudgetExhaustedError):
        while calls < 50:
            hook.list_pipelines()
            calls += 1
    assert calls == DAILY_LIMIT - 2
    assert hook.daily_remaining == 2


def test_cherry_daily_budget(cherry_sandbox_factory):
    from tests.hooks.conftest import cherry_hook

    cherry = cherry_sandbox_factory(patients_per_practice=5, rate_limits={"daily_limit": 3})
    hook = cherry_hook(cherry)
    with pytest.raises(errors.DailyBudgetExhaustedError):
        for _ in range(20):
            hook.get_practice()
    assert cherry.stats()["total"] <= 4
