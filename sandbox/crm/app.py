"""`create_app(config)`: the CRM sandbox as a FastAPI app (HighLevel API v2 subset + /_sandbox admin)."""

from __future__ import annotations

from fastapi import FastAPI

from sandbox.common.faults import FaultInjector
from sandbox.common.middleware import SandboxControls, install
from sandbox.common.ratelimit import RateLimiter
from sandbox.crm.auth import install_gate, rate_key
from sandbox.crm.config import CrmSandboxConfig
from sandbox.crm.errors import error_response, install_handlers
from sandbox.crm.routes import (
    admin,
    contact_search,
    contacts,
    conversations,
    locations,
    media,
    oauth,
    oauth_admin,
    opportunities,
    tags,
)
from sandbox.crm.search import SearchCache
from sandbox.crm.state import CrmState


def create_app(config: CrmSandboxConfig | None = None) -> FastAPI:
    """A fresh CRM sandbox. `app.state.crm` is the CrmState, `app.state.controls` the shared knobs."""
    config = config or CrmSandboxConfig()
    app = FastAPI(title="Aesthetix CRM sandbox (HighLevel API v2 subset)", docs_url="/docs", redoc_url=None)
    controls = SandboxControls(faults=FaultInjector(config.faults), limiter=RateLimiter(config.rate_limits))
    app.state.config = config
    app.state.controls = controls

    def reset() -> None:
        app.state.crm = CrmState(config)
        app.state.search_cache = SearchCache()
        controls.faults.configure(config.faults)
        controls.limiter.configure(config.rate_limits)
        for key in list(controls.limiter.overrides):
            controls.limiter.override(key, None)
        controls.stats.reset()

    app.state.reset = reset
    reset()

    install_handlers(app)
    # HighLevel documents no Retry-After on its 429; clients must read the X-RateLimit-* headers.
    install(app, controls, rate_key, lambda status, message, error: error_response(status, message, error))
    # Added last, so it wraps the pipeline above: tokens are checked before rate limits and faults.
    install_gate(app, controls)
    # Specific paths before parameterised ones: /contacts/search before /contacts/{id}, etc.
    # The routers' own route objects are shared rather than copied by include_router: they hold no
    # per-app state (handlers read request.app.state), and copying costs ~40 ms per app, which adds
    # up over a test suite that starts a fresh sandbox per test.
    for module in (
        contact_search,
        tags,
        contacts,
        locations,
        opportunities,
        media,
        conversations,
        oauth,
        admin,
        oauth_admin,
    ):
        app.router.routes.extend(module.router.routes)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True}

    return app
