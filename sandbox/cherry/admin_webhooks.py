"""Admin routes of Cherry's webhooks (the partner portal's webhook page, and the delivery switches).

`PUT /_sandbox/webhooks/{practice_id}` subscribes a practice (URL and secret; only events appended to the feed
from then on are delivered), `DELETE` removes it, `POST .../ping` puts a `test.ping` in the practice's feed (and so
in its deliveries), `GET /_sandbox/webhooks` lists subscriptions (never the secret) with their delivery counters,
`PUT /_sandbox/webhooks` sets the retry schedule, the time scale and the faults (sandbox.cherry.webhooks).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from sandbox.cherry.errors import not_found
from sandbox.cherry.state import CherryState
from sandbox.cherry.webhooks import SubscriptionRequest, WebhookSettings

router = APIRouter(prefix="/_sandbox/webhooks", tags=["sandbox admin"])


def _state(request: Request) -> CherryState:
    return request.app.state.cherry


def _overview(state: CherryState) -> dict:
    hooks = state.webhooks
    return {
        "settings": hooks.settings.model_dump(mode="json"),
        "subscriptions": [sub.to_json() for sub in hooks.subscriptions.values()],
        "pending": hooks.pending(),
    }


@router.get("")
def list_webhooks(request: Request) -> dict:
    state = _state(request)
    with state.lock:
        return _overview(state)


@router.put("")
def change_settings(request: Request, body: WebhookSettings) -> dict:
    state = _state(request)
    with state.lock:
        state.webhooks.settings = body
        return _overview(state)


@router.put("/{practice_id}")
def subscribe(request: Request, practice_id: str, body: SubscriptionRequest) -> dict:
    state = _state(request)
    with state.lock:
        return state.webhooks.subscribe(practice_id, body).to_json()


@router.delete("/{practice_id}")
def unsubscribe(request: Request, practice_id: str) -> dict:
    state = _state(request)
    with state.lock:
        if not state.webhooks.unsubscribe(practice_id):
            raise not_found("subscription")
        return {"practice_id": practice_id, "removed": True}


@router.post("/{practice_id}/ping")
def ping(request: Request, practice_id: str) -> dict:
    state = _state(request)
    with state.lock:
        event = state.book(practice_id).emit("test.ping", None, state.now())
        return {"event_id": event.id}
