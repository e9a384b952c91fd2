"""Cherry's webhooks: every new feed event of a subscribed practice is POSTed, signed, to the partner's endpoint.

One subscription per practice (target URL and shared secret, set in the partner portal; here
`PUT /_sandbox/webhooks/{practice_id}`). Deliveries follow the feed: an event appended to the feed after the
subscription was made (new, redelivered, or a `test.ping`) is delivered, one event per request, with the feed's
event body byte for byte. Delivery is at-least-once: anything but a 2xx within the timeout is retried on the retry
schedule (seconds after the previous attempt), and an event that is still refused after the last retry is given
up (it stays in the feed). Retries of different events do not wait for each other, so order is not kept.

Signing: `Cherry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`, the wall clock
(not the sandbox clock) at the attempt. Every attempt is signed afresh.

Misbehaviour on request (`PUT /_sandbox/webhooks`): `duplicate_share` of the events are delivered a second time;
`reorder_share` are held back `reorder_delay_seconds` so later events overtake them; `forged_share` are preceded by
a copy signed with the wrong secret; `replay_share` are followed by a copy whose signature is valid but whose
timestamp is `replay_age_seconds` old (a captured request replayed). Forged and replayed copies are never retried.
`time_scale` multiplies every wait (the retry schedule, the reorder delay), so tests run a day of retries in seconds.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from sandbox.cherry.models import Event
    from sandbox.cherry.state import CherryState

SIGNATURE_HEADER = "Cherry-Signature"
EVENT_ID_HEADER = "Cherry-Event-Id"
DELIVERY_ID_HEADER = "Cherry-Delivery-Id"
EVENT_TYPE_HEADER = "Cherry-Event-Type"
TOLERANCE_SECONDS = 300  # what the contract tells receivers to accept
# Seconds after the previous failed attempt: about 47 hours of retries in all, as payment companies do.
RETRY_SCHEDULE = (10, 30, 60, 300, 900, 3600, 10800, 21600, 43200, 86400)
TICK = 0.02  # how often the dispatcher looks for new events and due attempts (real seconds)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Cherry-Signature` value for `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookSettings(BaseModel):
    """Retry schedule, timing and faults of webhook delivery (all practices)."""

    model_config = ConfigDict(extra="forbid")

    retry_schedule_seconds: tuple[float, ...] = Field(RETRY_SCHEDULE, max_length=30)
    time_scale: float = Field(1.0, gt=0, le=10, description="multiplies every wait")
    timeout_seconds: float = Field(10.0, gt=0, le=60, description="a slower answer is a failed attempt")
    duplicate_share: float = Field(0.0, ge=0, le=1)
    reorder_share: float = Field(0.0, ge=0, le=1)
    reorder_delay_seconds: float = Field(5.0, ge=0, le=3600)
    forged_share: float = Field(0.0, ge=0, le=1)
    replay_share: float = Field(0.0, ge=0, le=1)
    replay_age_seconds: int = Field(3600, ge=1)


class SubscriptionRequest(BaseModel):
    """The endpoint a practice's events go to, and the secret they are signed with."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2000)
    secret: str = Field(min_length=16, max_length=200)
    enabled: bool = True


@dataclass
class Subscription:
    practice_id: str
    url: str
    secret: str
    enabled: bool
    position: int  # the next feed index to deliver
    stats: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "events",
                "attempts",
                "delivered",
                "failed_attempts",
                "gave_up",
                "duplicates",
                "forged",
                "replays",
                # forged or replayed copies the endpoint answered: refused (4xx/5xx) or, wrongly, accepted (2xx)
                "fakes_refused",
                "fakes_accepted",
            ),
            0,
        )
    )

    def to_json(self) -> dict[str, Any]:
        return {"practice_id": self.practice_id, "url": self.url, "enabled": self.enabled, "stats": dict(self.stats)}


@dataclass
class Delivery:
    delivery_id: str
    practice_id: str
    event_id: str
    event_type: str
    body: bytes
    kind: str = "real"  # real | forged | replay (forged and replayed copies are sent once)
    attempts: int = 0


class WebhookDispatcher:
    """Turns new feed events into deliveries and sends them on a background thread."""

    def __init__(self, state: CherryState) -> None:
        self.state = state
        self.settings = WebhookSettings()
        self.subscriptions: dict[str, Subscription] = {}
        self._queue: list[tuple[float, int, Delivery]] = []  # (due, order, delivery)
        self._order = itertools.count()
        self._ids = itertools.count(1)
        self._rng = random.Random(f"webhooks:{state.config.seed}")
        self._in_flight = 0  # taken off the queue, not yet answered
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._http = requests.Session()
        self._http.trust_env = False

    # -- configuration (under state.lock) -------------------------------------------------------------------------
    def subscribe(self, practice_id: str, request: SubscriptionRequest) -> Subscription:
        book = self.state.book(practice_id)
        current = self.subscriptions.get(practice_id)
        if current is None:
            current = Subscription(practice_id, request.url, request.secret, request.enabled, len(book.events))
            self.subscriptions[practice_id] = current
        else:
            current.url, current.secret, current.enabled = request.url, request.secret, request.enabled
        self._ensure_thread()
        return current

    def unsubscribe(self, practice_id: str) -> bool:
        return self.subscriptions.pop(practice_id, None) is not None

    def pending(self) -> int:
        """Deliveries not settled yet: events not looked at, queued (retries included) or being sent."""
        unseen = sum(
            len(self.state.books[sub.practice_id].events) - sub.position
            for sub in self.subscriptions.values()
            if sub.enabled
        )
        return unseen + len(self._queue) + self._in_flight

    def stop(self) -> None:
        self._stop.set()

    # -- the loop -------------------------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="cherry-webhooks", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self.state.lock:
                self._collect()
                due = self._take_due()
                self._in_flight = len(due)
            for delivery in due:
                self._attempt(delivery)
                with self.state.lock:
                    self._in_flight -= 1
            if not due:
                self._stop.wait(TICK)

    def _wait(self, seconds: float) -> float:
        return seconds * self.settings.time_scale

    def _push(self, delivery: Delivery, after: float = 0.0) -> None:
        heapq.heappush(self._queue, (time.monotonic() + after, next(self._order), delivery))

    def _collect(self) -> None:
        """Queue a delivery for every event appended to a subscribed practice's feed since the last look."""
        settings, rng = self.settings, self._rng
        for sub in self.subscriptions.values():
            events = self.state.books[sub.practice_id].events
            new: list[Event] = events[sub.position :]
            sub.position = len(events)
            if not sub.enabled:
                continue
            for event in new:
                body = json.dumps(event.to_json(), separators=(",", ":")).encode()
                real = Delivery(self._delivery_id(), sub.practice_id, event.id, event.type, body)
                sub.stats["events"] += 1
                if settings.forged_share and rng.random() < settings.forged_share:
                    self._push(Delivery(self._delivery_id(), sub.practice_id, event.id, event.type, body, "forged"))
                    sub.stats["forged"] += 1
                held = settings.reorder_share and rng.random() < settings.reorder_share
                self._push(real, self._wait(settings.reorder_delay_seconds) if held else 0.0)
                if settings.duplicate_share and rng.random() < settings.duplicate_share:
                    copy = Delivery(self._delivery_id(), sub.practice_id, event.id, event.type, body)
                    self._push(copy, self._wait(settings.reorder_delay_seconds))
                    sub.stats["duplicates"] += 1
                if settings.replay_share and rng.random() < settings.replay_share:
                    self._push(Delivery(self._delivery_id(), sub.practice_id, event.id, event.type, body, "replay"))
                    sub.stats["replays"] += 1

    def _delivery_id(self) -> str:
        return f"dlv_{next(self._ids):08d}"

    def _take_due(self) -> list[Delivery]:
        now, due = time.monotonic(), []
        while self._queue and self._queue[0][0] <= now and len(due) < 50:
            due.append(heapq.heappop(self._queue)[2])
        return due

    def _attempt(self, delivery: Delivery) -> None:
        with self.state.lock:
            sub = self.subscriptions.get(delivery.practice_id)
            if sub is None or not sub.enabled:
                return  # unsubscribed meanwhile: the feed still has the event
            url, secret, timeout = sub.url, sub.secret, self.settings.timeout_seconds
        now = int(time.time())
        if delivery.kind == "forged":
            signature = sign(secret + "-not-the-secret", now, delivery.body)
        elif delivery.kind == "replay":
            signature = sign(secret, now - self.settings.replay_age_seconds, delivery.body)
        else:
            signature = sign(secret, now, delivery.body)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Cherry-Webhooks/1.0",
            SIGNATURE_HEADER: signature,
            EVENT_ID_HEADER: delivery.event_id,
            EVENT_TYPE_HEADER: delivery.event_type,
            DELIVERY_ID_HEADER: delivery.delivery_id,
        }
        delivery.attempts += 1
        answered = False
        try:
            response = self._http.post(url, data=delivery.body, headers=headers, timeout=timeout)
            answered, ok = True, 200 <= response.status_code < 300
        except requests.RequestException:
            ok = False
        with self.state.lock:
            sub.stats["attempts"] += 1
            if delivery.kind != "real":
                if answered:
                    sub.stats["fakes_accepted" if ok else "fakes_refused"] += 1
                return
            if ok:
                sub.stats["delivered"] += 1
                return
            sub.stats["failed_attempts"] += 1
            schedule = self.settings.retry_schedule_seconds
            if delivery.attempts > len(schedule):
                sub.stats["gave_up"] += 1
                return
            self._push(delivery, self._wait(schedule[delivery.attempts - 1]))
