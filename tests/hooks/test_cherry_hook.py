"""CherryHook against the Cherry sandbox: paging to the end, filters, estimates, metrics, assets, typed errors."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from cherry_sync.hooks import errors
from cherry_sync.hooks.base import RetrySettings
from sandbox.cherry.testing import CherrySandbox
from tests.hooks.conftest import FAST, ROOMY, cherry_hook, closed_port_url


@pytest.fixture(scope="module")
def cherry():
    """One read-only sandbox for the paging tests (no faults; no rate limit: tests in a row would share it)."""
    sandbox = CherrySandbox.start(
        seed=11, practices=2, patients_per_practice=60, redelivery_share=0.0, rate_limits={"enabled": False}
    )
    yield sandbox
    sandbox.stop(wait=False)


def _unpaced(cherry, **kwargs):
    """A hook on the module sandbox, which has no rate limit: no need to pace either."""
    return cherry_hook(cherry, burst_limit=10_000, retry=ROOMY, **kwargs)


def _ids(pages) -> list[str]:
    return [row["id"] for page in pages for row in page.items]


# -- paging -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("iter_patient_pages", "/v1/patients"),
        ("iter_payment_pages", "/v1/payments"),
        ("iter_marketing_asset_pages", "/v1/marketing-assets"),
        ("iter_event_pages", "/v1/events"),
    ],
)
def test_pages_to_the_end_without_overlap_or_gap(cherry, method, path):
    hook = _unpaced(cherry)
    pages = list(getattr(hook, method)(limit=7))
    ids = _ids(pages)
    expected = [row["id"] for row in cherry.fetch_all(path, cherry.practices[0], limit=500)]
    assert len(expected) > 3 * 7  # several pages, or the test proves nothing
    assert len(ids) == len(set(ids))  # total == distinct: no page overlaps another
    assert ids == expected  # nothing skipped, same order as one big page
    assert len(pages) == -(-len(expected) // 7)
    assert all(p.has_more for p in pages[:-1]) and not pages[-1].has_more
    assert hook.calls[f"GET {path}"] == len(pages)


def test_event_feed_resumes_from_the_last_cursor(cherry_sandbox_factory):
    cherry = cherry_sandbox_factory(patients_per_practice=20)
    hook = cherry_hook(cherry)
    pages = list(hook.iter_event_pages(limit=50))
    resume = pages[-1].next_cursor
    assert resume, "the last page of the feed must carry a resume cursor"
    assert list(hook.iter_event_pages(cursor=resume, limit=50))[0].items == []  # nothing new yet

    before = [e["id"] for e in cherry.fetch_all("/v1/events", 0)]
    assert _ids(pages) == before
    cherry.advance(minutes=30, new_patients=3, payments=2)
    after = [e["id"] for e in cherry.fetch_all("/v1/events", 0)]
    new_events = after[len(before) :]
    assert new_events

    again = list(hook.iter_event_pages(cursor=resume, limit=2))
    assert _ids(again) == new_events
    assert again[-1].next_cursor and again[-1].next_cursor != resume


def test_patient_filters(cherry):
    hook = _unpaced(cherry)
    practice = cherry.practices[0]
    active = _ids(hook.iter_patient_pages(status="ACTIVE", limit=5))
    expected = [p["id"] for p in cherry.fetch_all("/v1/patients", practice, status="ACTIVE")]
    assert active == expected and active
    rows = [r for p in hook.iter_patient_pages(status="ACTIVE") for r in p.items]
    assert {r["account_status"] for r in rows} == {"ACTIVE"}

    everyone = [r for p in hook.iter_patient_pages() for r in p.items]
    stamps = sorted(r["updated_at"] for r in everyone)
    middle = datetime.fromisoformat(stamps[len(stamps) // 2].replace("Z", "+00:00"))
    recent = [r for p in hook.iter_patient_pages(updated_since=middle, limit=4) for r in p.items]
    assert recent and len(recent) < len(everyone)
    assert all(r["updated_at"] >= stamps[len(stamps) // 2] for r in recent)
    assert [r["id"] for r in recent] == [
        p["id"] for p in cherry.fetch_all("/v1/patients", practice, updated_since=middle.isoformat())
    ]


def test_practice_patient_estimates_and_metrics(cherry):
    hook = _unpaced(cherry)
    practice = hook.get_practice()
    assert practice["id"] == cherry.practices[0].id
    patient = next(p for page in hook.iter_patient_pages(status="ACTIVE") for p in page.items)
    assert hook.get_patient(patient["id"])["id"] == patient["id"]

    estimates = hook.get_estimates(Decimal("1500"))
    assert estimates == cherry.get("/v1/estimates", 0, amount="1500.00").json()
    assert hook.get_patient_estimates(patient["id"]) == cherry.get(f"/v1/patients/{patient['id']}/estimates", 0).json()

    end = date.fromisoformat(cherry.now()[:10])
    start = end - timedelta(days=30)
    metrics = hook.get_metrics(start, end)
    assert metrics == cherry.get("/v1/reports/metrics", 0, start=start.isoformat(), end=end.isoformat()).json()


# -- assets -------------------------------------------------------------------------------------


def test_download_asset_matches_its_sha256(cherry):
    hook = _unpaced(cherry)
    assets = [a for p in hook.iter_marketing_asset_pages() for a in p.items][:3]
    assert len(assets) == 3  # the loop below checks nothing if the listing comes back empty
    for asset in assets:
        content = hook.download_asset(asset["id"], max_bytes=asset["size"])
        assert len(content) == asset["size"]
        assert hashlib.sha256(content).hexdigest() == asset["sha256"]


def test_download_asset_refuses_more_than_max_bytes_by_content_length(cherry):
    hook = _unpaced(cherry)
    asset = next(a for p in hook.iter_marketing_asset_pages() for a in p.items)
    with pytest.raises(errors.ValidationError, match="cap"):
        hook.download_asset(asset["id"], max_bytes=asset["size"] - 1)


def test_download_asset_refuses_more_than_max_bytes_while_streaming(cherry, monkeypatch):
    """A response without Content-Length (chunked) is capped as it streams."""
    hook = _unpaced(cherry)
    asset = next(a for p in hook.iter_marketing_asset_pages() for a in p.items if a["size"] > 1000)
    real_request = hook.request
    seen = []

    def without_length(*args, **kwargs):
        response = real_request(*args, **kwargs)
        if kwargs.get("stream"):
            response.headers.pop("Content-Length", None)
            seen.append(response)
        return response

    monkeypatch.setattr(hook, "request", without_length)
    with pytest.raises(errors.ValidationError, match="exceeds"):
        hook.download_asset(asset["id"], max_bytes=asset["size"] - 1, chunk_size=256)
    assert seen and seen[0].raw.closed  # the stream was closed, not left open
    assert hook.download_asset(asset["id"], max_bytes=asset["size"], chunk_size=256)  # at the cap: fine


# -- errors -------------------------------------------------------------------------------------


def test_unknown_key_is_auth_error(cherry):
    with pytest.raises(errors.AuthError) as info:
        cherry_hook(cherry, api_key="ck_sandbox_not_a_real_key").get_practice()
    assert info.value.status == 401 and not info.value.retryable


def test_key_not_activated(cherry):
    key = cherry.create_key(0, activated=False, name="inactive")
    hook = cherry_hook(cherry, api_key=key)
    with pytest.raises(errors.KeyNotActivatedError) as info:
        hook.get_practice()
    assert info.value.status == 403 and info.value.api_code == "key_not_activated"
    assert isinstance(info.value, errors.ForbiddenError)
    assert hook.test_connection()[0] is False


def test_not_found_and_validation(cherry):
    hook = _unpaced(cherry)
    with pytest.raises(errors.NotFoundError):
        hook.get_patient("pat_0000000000000000")
    with pytest.raises(errors.ValidationError) as info:
        hook.get_estimates(Decimal("0"))
    assert info.value.status == 400 and "amount" in str(info.value)
    assert hook.calls["GET /v1/estimates"] == 1  # a 400 is not retried
    assert hook.test_connection() == (True, "Connection successfully tested")


def test_429_waits_for_retry_after(cherry_sandbox, sleeps):
    cherry_sandbox.set_faults(script=["429"], retry_after_seconds=7)
    hook = cherry_hook(cherry_sandbox, sleep=sleeps)
    assert hook.get_practice()["id"] == cherry_sandbox.practices[0].id
    assert hook.calls["GET /v1/practice"] == 2
    assert len(sleeps.waits) == 1 and 7 <= sleeps.waits[0] <= 7.25


def test_429_without_retry_after_backs_off(cherry_sandbox, sleeps):
    cherry_sandbox.set_faults(script=["429_no_retry_after", "429_no_retry_after"])
    hook = cherry_hook(cherry_sandbox, sleep=sleeps)
    hook.get_practice()
    assert hook.calls["GET /v1/practice"] == 3
    assert len(sleeps.waits) == 2 and all(0 < w <= FAST.backoff_max for w in sleeps.waits)


def test_server_errors_are_retried(cherry_sandbox):
    cherry_sandbox.set_faults(script=["500", "502", "503"])
    hook = cherry_hook(cherry_sandbox)
    assert len([r for p in hook.iter_patient_pages() for r in p.items]) == 40
    assert hook.calls["GET /v1/patients"] == 4
    assert cherry_sandbox.stats()["status_codes"] == {"500": 1, "502": 1, "503": 1, "200": 1}


def test_hang_times_out_then_succeeds(cherry_sandbox):
    cherry_sandbox.set_faults(script=["hang"], hang_seconds=1.5)
    hook = cherry_hook(cherry_sandbox)
    assert hook.get_practice()["id"] == cherry_sandbox.practices[0].id
    assert hook.calls["GET /v1/practice"] == 2


def test_hang_every_time_gives_up_with_timeout(cherry_sandbox):
    cherry_sandbox.set_faults(hang_share=1.0, hang_seconds=1.5)
    hook = cherry_hook(cherry_sandbox, retry=RetrySettings(**{**FAST.__dict__, "max_attempts": 2}))
    with pytest.raises(errors.ApiTimeoutError):
        hook.get_practice()
    assert hook.calls["GET /v1/practice"] == 2


def test_connection_refused_is_unavailable():
    hook = cherry_hook(
        closed_port_url(), api_key="ck_sandbox_x", retry=RetrySettings(**{**FAST.__dict__, "max_attempts": 3})
    )
    with pytest.raises(errors.ApiUnavailableError) as info:
        hook.get_practice()
    assert info.value.retryable
    assert hook.calls["GET /v1/practice"] == 3


def test_retries_give_up_after_max_attempts(cherry_sandbox):
    cherry_sandbox.set_faults(server_error_share=1.0)
    cherry_sandbox.reset_stats()
    hook = cherry_hook(cherry_sandbox)
    with pytest.raises(errors.ServerError) as info:
        hook.get_practice()
    assert info.value.status in (500, 502, 503)
    assert cherry_sandbox.stats()["total"] == FAST.max_attempts == hook.calls["GET /v1/practice"]


def test_real_burst_limit_429_is_honoured(cherry_sandbox_factory, sleeps):
    """The sandbox's own limiter (not a scripted fault): its Retry-After is what the hook waits."""
    cherry = cherry_sandbox_factory(patients_per_practice=5, rate_limits={"burst_limit": 2, "burst_window_seconds": 9})
    hook = cherry_hook(cherry, sleep=sleeps, retry=RetrySettings(**{**FAST.__dict__, "max_attempts": 2}))
    hook.get_practice()
    hook.get_practice()
    with pytest.raises(errors.RateLimitedError) as info:
        hook.get_practice()
    assert info.value.retry_after is not None and 5 <= info.value.retry_after <= 9
    # Before each attempt the hook also waits on the sandbox's own count (X-RateLimit-Remaining 0 after the
    # second call): what is left of its 9 s window.
    honoured = [w for w in sleeps.waits if info.value.retry_after <= w <= info.value.retry_after + 0.25]
    held = [w for w in sleeps.waits if w not in honoured]
    assert len(honoured) == 1 and len(held) == 2 and all(8.0 <= w <= 9.0 for w in held)


def test_a_retry_after_longer_than_the_time_budget_is_capped(cherry_sandbox, sleeps):
    cherry_sandbox.set_faults(script=["429"], retry_after_seconds=3600)
    hook = cherry_hook(cherry_sandbox, sleep=sleeps)  # max_elapsed_seconds=20
    hook.get_practice()
    assert len(sleeps.waits) == 1 and FAST.max_elapsed_seconds <= sleeps.waits[0] <= FAST.max_elapsed_seconds + 0.25


def test_429_waits_for_an_http_date_retry_after(cherry_sandbox, sleeps):
    """`Retry-After: <HTTP date>` (RFC 9110): the wait is that date less the response's own `Date`."""
    cherry_sandbox.set_faults(script=["429"], retry_after_seconds=7, retry_after_format="http-date")
    hook = cherry_hook(cherry_sandbox, sleep=sleeps)
    assert hook.get_practice()["id"] == cherry_sandbox.practices[0].id
    assert hook.calls["GET /v1/practice"] == 2
    # HTTP dates have whole seconds: 7 s from a moment within the second the response was dated.
    assert len(sleeps.waits) == 1 and 6 <= sleeps.waits[0] <= 7.25


def test_an_http_date_retry_after_in_the_past_is_no_wait(cherry_sandbox, sleeps):
    cherry_sandbox.set_faults(script=["429"], retry_after_seconds=0, retry_after_format="http-date")
    hook = cherry_hook(cherry_sandbox, sleep=sleeps)
    hook.get_practice()
    assert hook.calls["GET /v1/practice"] == 2
    assert len(sleeps.waits) == 1 and 0 <= sleeps.waits[0] <= 0.25  # the jitter only
