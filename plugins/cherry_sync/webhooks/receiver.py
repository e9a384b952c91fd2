"""The webhook receiver: a small FastAPI app that lands Cherry's signed deliveries in the sync store's inbox.

`POST /{practice_slug}`: the signature and timestamp are checked against the practice's secrets (extra
`webhook_secret`, and `webhook_secret_previous` during a rotation, of the practice's Cherry connection); a refused
delivery is answered 401 / 400 / 404 / 413 and counted in `webhook_rejections` (practice and reason only: neither
body nor header values are logged or kept). A genuine one is stored in `webhook_inbox` (deduplicated by event id)
and committed before the answer is 200, so an event Cherry was told we have is never lost; if the store cannot
take it the answer is 503 and Cherry retries. Applying the event is the refresh's job: the inbox watcher
(cherry_sync.triggers) notices the row within a second and the `cherry_refresh` DAG runs.

Served two ways, the same app: by Airflow's api-server as a plugin (`plugins/cherry_sync_webhooks.py`, under
`/cherry-webhooks`), or alone (`python -m cherry_sync.webhooks`), e.g. as its own compose service.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from cherry_sync.webhooks.signature import HEADER, DeliveryRefused, Refusal, verify

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # a Cherry event is a few KB; anything this large is not one
SETTINGS_TTL_SECONDS = 30.0  # how long a practice's registry entry and secrets are reused (a rotation shows then)
SECRET_EXTRA, PREVIOUS_SECRET_EXTRA = "webhook_secret", "webhook_secret_previous"


@dataclass(frozen=True)
class Endpoint:
    """What the receiver needs to accept one practice's deliveries."""

    slug: str
    secrets: tuple[str, ...]


class RegistryEndpoints:
    """Practice slug -> `Endpoint`, from the registry (practices with `events.webhooks: true`, enabled) and each
    one's Cherry connection; cached for `SETTINGS_TTL_SECONDS`."""

    def __init__(self, ttl: float = SETTINGS_TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._clock = ttl, clock
        self._cache: dict[str, tuple[float, Endpoint | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, slug: str) -> Endpoint | None:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(slug)
            if hit is not None and now - hit[0] < self._ttl:
                return hit[1]
        endpoint = self._resolve(slug)
        with self._lock:
            self._cache[slug] = (now, endpoint)
        return endpoint

    @staticmethod
    def _resolve(slug: str) -> Endpoint | None:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        from cherry_sync.registry import load_registry

        practice = load_registry().get(slug)
        if practice is None or not practice.enabled or not practice.events.webhooks:
            return None
        try:
            extra = BaseHook.get_connection(practice.cherry_conn_id).extra_dejson or {}
        except AirflowNotFoundException:
            return Endpoint(slug, ())
        secrets = tuple(str(extra[k]) for k in (SECRET_EXTRA, PREVIOUS_SECRET_EXTRA) if extra.get(k))
        return Endpoint(slug, secrets)


def _default_store():
    from cherry_sync.context import STORE_CONN_ID
    from cherry_sync.store import get_store

    return get_store(STORE_CONN_ID)


def create_app(
    endpoints: Callable[[str], Endpoint | None] | None = None,
    store: Callable[[], Any] | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The receiver app. `endpoints(slug)` and `store()` default to the registry + Airflow connections and the
    sync store's connection, resolved at request time (never when the api-server loads the plugin)."""
    endpoints = endpoints or RegistryEndpoints()
    store = store or _default_store
    app = FastAPI(title="Cherry webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)

    def refuse(slug: str | None, reason: Refusal) -> JSONResponse:
        log.warning("webhook refused for practice %s: %s", slug or "(unknown)", reason.value)
        try:
            store().count_webhook_rejection(slug, reason.value)
        except Exception as exc:  # noqa: BLE001 - counting must not turn a refusal into a 500
            log.error("could not count a refused webhook: %s", type(exc).__name__)
        status = DeliveryRefused(reason).status
        return JSONResponse({"error": {"code": reason.value}}, status_code=status)

    def accept(slug: str, signature: str | None, body: bytes) -> JSONResponse:
        endpoint = endpoints(slug)
        if endpoint is None:
            return refuse(None, Refusal.UNKNOWN_PRACTICE)
        if not endpoint.secrets:
            return refuse(slug, Refusal.NOT_CONFIGURED)
        try:
            verify(signature, body, endpoint.secrets, clock())
        except DeliveryRefused as exc:
            return refuse(slug, exc.reason)
        event = _event_of(body)
        if event is None:
            return refuse(slug, Refusal.MALFORMED_EVENT)
        try:
            new = store().store_webhook(slug, event["id"], event["type"], event)
        except Exception as exc:  # noqa: BLE001 - not stored: Cherry must retry
            log.error("webhook for practice %s not stored (%s): answering 503", slug, type(exc).__name__)
            return JSONResponse({"error": {"code": "unavailable"}}, status_code=503)
        log.info("webhook %s for practice %s %s", event["type"], slug, "stored" if new else "already stored")
        return JSONResponse({"received": True, "duplicate": not new})

    @app.post("/{practice_slug}")
    async def receive(practice_slug: str, request: Request) -> JSONResponse:
        slug = practice_slug if len(practice_slug) <= 64 else None
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return await run_in_threadpool(refuse, None, Refusal.TOO_LARGE)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return await run_in_threadpool(refuse, None, Refusal.TOO_LARGE)
        if slug is None:
            return await run_in_threadpool(refuse, None, Refusal.UNKNOWN_PRACTICE)
        return await run_in_threadpool(accept, slug, request.headers.get(HEADER), body)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    return app


def _event_of(body: bytes) -> dict[str, Any] | None:
    """The delivered event if the body is one (an object with a string id and type); the engine checks the rest."""
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(event, dict):
        return None
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not event_id or len(event_id) > 128:
        return None
    if len(event_type) > 64:
        return None
    return event
