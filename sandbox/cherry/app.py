"""`create_app(config)`: the Cherry sandbox as a FastAPI application.

Request pipeline (from sandbox.common.middleware): count -> rate-limit per practice -> injected faults ->
handler. The rate key is the practice id of the presented API key; an unknown key is not limited (the
handler answers 401). `/openapi.json` and `/docs` serve the hand-written contract (openapi.yaml), not a
generated one, so what a developer reads is what the tests check.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from sandbox.cherry import admin, admin_assets, admin_records, admin_webhooks, api
from sandbox.cherry.config import CherrySandboxConfig
from sandbox.cherry.contract import load_contract
from sandbox.cherry.errors import install_error_handlers, middleware_error
from sandbox.cherry.state import CherryState
from sandbox.common.faults import FaultInjector
from sandbox.common.middleware import SandboxControls, install
from sandbox.common.ratelimit import RateLimiter
from sandbox.common.stats import RequestStats


def create_app(config: CherrySandboxConfig | None = None) -> FastAPI:
    """Build a sandbox app; its state is `app.state.cherry` and its switches `app.state.controls`."""
    config = config or CherrySandboxConfig()
    app = FastAPI(title="Cherry sandbox", docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.openapi = load_contract  # serve the contract as written
    app.state.cherry = CherryState(config)
    controls = SandboxControls(
        faults=FaultInjector(config.faults),
        limiter=RateLimiter(config.rate_limits),
        stats=RequestStats(window_seconds=config.rate_limits.burst_window_seconds),
    )
    app.state.controls = controls

    def rate_key(request: Request) -> str | None:
        return request.app.state.cherry.practice_for_key(api.bearer_token(request))

    install(app, controls, rate_key, middleware_error, retry_after_on_limit=True)
    install_error_handlers(app)
    app.include_router(api.router)
    app.include_router(admin.router)
    app.include_router(admin_records.router)
    app.include_router(admin_assets.router)
    app.include_router(admin_webhooks.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"status": "ok"}

    return app
