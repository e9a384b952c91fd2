"""The request pipeline both sandboxes share: count -> rate-limit -> inject faults -> handler.

Admin routes (under `ADMIN_PREFIX`) bypass all of it, so a test can always read counters and change
faults, even while the sandbox is refusing every other request.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import Match

from sandbox.common.faults import Fault, FaultInjector, FaultSettings
from sandbox.common.ratelimit import RateLimiter, RateLimitSettings
from sandbox.common.stats import RequestStats

ADMIN_PREFIX = "/_sandbox"

ErrorFactory = Callable[[int, str, str], JSONResponse]
"""(status, message, short error code) -> the service's own error body."""

KeyFunc = Callable[[Request], "str | None"]
"""Request -> rate key (location id, practice id) or None when the caller is unknown."""


@dataclass
class SandboxControls:
    """The knobs every sandbox exposes: faults, rate limits, counters."""

    faults: FaultInjector = field(default_factory=FaultInjector)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    stats: RequestStats = field(default_factory=RequestStats)


def route_template(app: FastAPI, scope: dict) -> str:
    """'GET /v1/patients/{patient_id}' for a request, or the raw path when no route matches."""
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return f"{scope['method']} {getattr(route, 'path', scope['path'])}"
    return f"{scope['method']} {scope['path']}"


def install(
    app: FastAPI,
    controls: SandboxControls,
    key_for: KeyFunc,
    error: ErrorFactory,
    retry_after_on_limit: bool = False,
) -> None:
    """Wire counters, rate limits and faults into `app`, and mount the shared admin routes.

    `retry_after_on_limit`: whether a 429 from the real limit carries `Retry-After` (Cherry's does; the
    HighLevel API documents none, clients read the X-RateLimit-* headers instead).
    """

    @app.middleware("http")
    async def sandbox_pipeline(request: Request, call_next):
        path = request.url.path
        if path.startswith(ADMIN_PREFIX) or path in ("/docs", "/openapi.json", "/healthz"):
            return await call_next(request)
        arrived = time.monotonic()  # windows are counted by arrival, as the limiter sees requests
        endpoint = route_template(app, request.scope)
        key = key_for(request)
        controls.stats.opened(key, at=arrived)
        try:
            response = await _limited_and_faulted(request, call_next, controls, key, error, retry_after_on_limit)
        finally:
            controls.stats.closed(key)
        controls.stats.record(endpoint, key, response.status_code, at=arrived)
        return response

    app.include_router(admin_router(controls))


async def _limited_and_faulted(request, call_next, controls, key, error, retry_after_on_limit) -> Response:
    headers: dict[str, str] = {}
    if key is not None:
        decision = controls.limiter.check(key)
        headers = decision.headers
        if not decision.allowed:
            reason = "Daily request limit exceeded" if decision.daily_exhausted else "Too Many Requests"
            resp = error(429, reason, "Too Many Requests")
            if retry_after_on_limit:
                resp.headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after_seconds)))
            return _with_headers(resp, headers)

    injector = controls.faults
    if injector.latency_seconds:
        await asyncio.sleep(injector.latency_seconds)
    fault = injector.pick(request.method, request.url.path)
    settings = injector.settings

    if fault in (Fault.RATE_LIMITED, Fault.RATE_LIMITED_NO_RETRY_AFTER):
        resp = error(429, "Too Many Requests", "Too Many Requests")
        if fault is Fault.RATE_LIMITED:
            resp.headers["Retry-After"] = _retry_after_value(settings)
        return _with_headers(resp, headers)
    if fault in (Fault.SERVER_ERROR, Fault.BAD_GATEWAY, Fault.UNAVAILABLE):
        return _with_headers(error(int(fault.value), "Internal Server Error", "Server Error"), headers)
    if fault is Fault.HANG:
        # Received whole, then slow to answer (and applied once the hang ends, even if the client gave up): the body
        # is read first, so a client that stops waiting cannot cut it short on a busy machine.
        await request.body()
        await asyncio.sleep(settings.hang_seconds)

    response = await call_next(request)
    if fault is Fault.WRITE_THEN_500 and response.status_code < 400:
        # The handler ran and its write is kept; the client is told it failed.
        async for _ in response.body_iterator:
            pass
        return _with_headers(error(500, "Internal Server Error", "Server Error"), headers)
    return _with_headers(response, headers)


def _retry_after_value(settings) -> str:
    """`Retry-After` for an injected 429: delay-seconds, or the HTTP date that many seconds from now (RFC 9110)."""
    if settings.retry_after_format == "http-date":
        return format_datetime(datetime.now(UTC) + timedelta(seconds=settings.retry_after_seconds), usegmt=True)
    return str(settings.retry_after_seconds)


def _with_headers(response: Response, headers: dict[str, str]) -> Response:
    for name, value in headers.items():
        response.headers[name] = value
    return response


def admin_router(controls: SandboxControls) -> APIRouter:
    """`/_sandbox/faults`, `/_sandbox/rate-limits`, `/_sandbox/stats`: inspection and run-time switches."""
    router = APIRouter(prefix=ADMIN_PREFIX, tags=["sandbox admin"])

    @router.get("/faults")
    def get_faults() -> dict:
        return controls.faults.snapshot()

    @router.put("/faults")
    def put_faults(settings: FaultSettings) -> dict:
        controls.faults.configure(settings)
        return controls.faults.snapshot()

    @router.get("/rate-limits")
    def get_rate_limits() -> dict:
        return controls.limiter.settings.model_dump()

    @router.put("/rate-limits")
    def put_rate_limits(settings: RateLimitSettings) -> dict:
        controls.limiter.configure(settings)
        return controls.limiter.settings.model_dump()

    @router.put("/rate-limits/{key}")
    def put_key_rate_limits(key: str, settings: RateLimitSettings) -> dict:
        controls.limiter.override(key, settings)
        return controls.limiter.settings_for(key).model_dump()

    @router.delete("/rate-limits/{key}")
    def delete_key_rate_limits(key: str) -> dict:
        controls.limiter.override(key, None)
        return controls.limiter.settings.model_dump()

    @router.get("/stats")
    def get_stats() -> dict:
        return controls.stats.snapshot()

    @router.post("/stats/reset")
    def reset_stats(window_seconds: float | None = None) -> dict:
        controls.stats.reset(window_seconds)
        return controls.stats.snapshot()

    return router
