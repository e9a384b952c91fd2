"""Cherry's webhook signature: `Cherry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.

A delivery is genuine when one `v1` matches the body under one of the practice's secrets (two during a rotation)
and its `t` is within the tolerance of our clock (5 minutes): a valid signature on an old timestamp is a replay.
The signature is checked before the timestamp, so a forger learns nothing from the answer.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from enum import StrEnum

HEADER = "Cherry-Signature"
TOLERANCE_SECONDS = 300


class Refusal(StrEnum):
    """Why the receiver refused a delivery (counted per practice in `webhook_rejections`; never a record's
    rejection: nothing of the body was read or kept)."""

    UNKNOWN_PRACTICE = "unknown_practice"  # the URL names no practice with webhooks on (404)
    NOT_CONFIGURED = "not_configured"  # the practice's Cherry connection holds no `webhook_secret` (404)
    MISSING_SIGNATURE = "missing_signature"  # no Cherry-Signature header (401)
    BAD_SIGNATURE = "bad_signature"  # no v1 matches any secret, or the header cannot be read (401)
    STALE_TIMESTAMP = "stale_timestamp"  # signed, but more than the tolerance away from now: a replay (400)
    MALFORMED_EVENT = "malformed_event"  # signed, but not a Cherry event (400)
    TOO_LARGE = "too_large"  # over the body limit, not read (413)


STATUS = {
    Refusal.UNKNOWN_PRACTICE: 404,
    Refusal.NOT_CONFIGURED: 404,
    Refusal.MISSING_SIGNATURE: 401,
    Refusal.BAD_SIGNATURE: 401,
    Refusal.STALE_TIMESTAMP: 400,
    Refusal.MALFORMED_EVENT: 400,
    Refusal.TOO_LARGE: 413,
}


class DeliveryRefused(Exception):
    """A delivery the receiver will not store; `reason` says why (no header or body value is kept)."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason

    @property
    def status(self) -> int:
        return STATUS[self.reason]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value Cherry sends for `body` at `timestamp` (what tests and the sandbox compute)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    header: str | None, body: bytes, secrets: Sequence[str], now: float, tolerance: int = TOLERANCE_SECONDS
) -> int:
    """Check a delivery's signature and timestamp; returns the signed timestamp or raises `DeliveryRefused`."""
    if not header or not header.strip():
        raise DeliveryRefused(Refusal.MISSING_SIGNATURE)
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value.strip().lower())
    if timestamp is None or not candidates:
        raise DeliveryRefused(Refusal.BAD_SIGNATURE)
    signed = f"{timestamp}.".encode() + body
    expected = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets if s]
    if not any(hmac.compare_digest(e, c) for e in expected for c in candidates):
        raise DeliveryRefused(Refusal.BAD_SIGNATURE)
    if abs(now - timestamp) > tolerance:
        raise DeliveryRefused(Refusal.STALE_TIMESTAMP)
    return timestamp
