"""Opaque, tamper-evident paging cursors.

A cursor is base64url("<kind>.<practice>.<position>.<mac>"). The MAC (HMAC-SHA256, truncated) is keyed
from the sandbox seed, so a cursor edited by hand, cut short, or taken from another listing or practice
is refused with 400 instead of silently paging from the wrong place.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


class InvalidCursor(ValueError):
    """The cursor was not issued by this sandbox for this listing."""


class CursorCodec:
    """Encodes and checks positions for one sandbox instance."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()[:16]

    def encode(self, kind: str, practice_id: str, position: int) -> str:
        body = f"{kind}.{practice_id}.{position}"
        raw = f"{body}.{self._mac(body)}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, token: str, kind: str, practice_id: str) -> int:
        """The position encoded in `token`; raises InvalidCursor unless it is intact and for this listing."""
        if not token or len(token) > 200:
            raise InvalidCursor("cursor is not valid")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise InvalidCursor("cursor is not valid") from exc
        parts = raw.split(".")
        if len(parts) != 4:
            raise InvalidCursor("cursor is not valid")
        got_kind, got_practice, position, mac = parts
        if not hmac.compare_digest(mac, self._mac(f"{got_kind}.{got_practice}.{position}")):
            raise InvalidCursor("cursor is not valid")
        if got_kind != kind or got_practice != practice_id:
            raise InvalidCursor("cursor belongs to another listing")
        if not position.isdigit():
            raise InvalidCursor("cursor is not valid")
        return int(position)
