"""Per-key rate limiting as the HighLevel API does it: a burst window and a daily budget.

Sliding-window log for the burst limit (so "no 10 s window over 100" is exactly what is enforced) and a
fixed daily bucket. Both windows are configurable so tests and benchmarks can scale time down.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class RateLimitSettings(BaseModel):
    """Limits applied to every rate key (a CRM location, a Cherry API key)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    burst_limit: int = Field(100, ge=1)
    burst_window_seconds: float = Field(10.0, gt=0)
    daily_limit: int = Field(200_000, ge=1)
    daily_window_seconds: float = Field(86_400.0, gt=0)


@dataclass
class RateDecision:
    """Outcome of one request against the limiter, with the values for the X-RateLimit-* headers."""

    allowed: bool
    daily_exhausted: bool
    headers: dict[str, str]
    retry_after_seconds: float = 0.0


@dataclass
class _KeyState:
    burst: deque = field(default_factory=deque)
    day_start: float = 0.0
    day_count: int = 0


class RateLimiter:
    """Thread-safe sliding-window limiter keyed by an opaque string."""

    def __init__(self, settings: RateLimitSettings | None = None, clock=time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._keys: dict[str, _KeyState] = {}
        self.settings = settings or RateLimitSettings()
        self.overrides: dict[str, RateLimitSettings] = {}

    def configure(self, settings: RateLimitSettings) -> None:
        """Replace the default limits (and forget all counts)."""
        with self._lock:
            self.settings = settings
            self._keys.clear()

    def override(self, key: str, settings: RateLimitSettings | None) -> None:
        """Give one key its own limits (None removes the override); that key's counts restart."""
        with self._lock:
            if settings is None:
                self.overrides.pop(key, None)
            else:
                self.overrides[key] = settings
            self._keys.pop(key, None)

    def settings_for(self, key: str) -> RateLimitSettings:
        return self.overrides.get(key, self.settings)

    def check(self, key: str) -> RateDecision:
        s = self.settings_for(key)
        now = self._clock()
        with self._lock:
            st = self._keys.setdefault(key, _KeyState(day_start=now))
            if now - st.day_start >= s.daily_window_seconds:
                st.day_start, st.day_count = now, 0
            horizon = now - s.burst_window_seconds
            while st.burst and st.burst[0] <= horizon:
                st.burst.popleft()
            daily_exhausted = st.day_count >= s.daily_limit
            burst_full = len(st.burst) >= s.burst_limit
            allowed = not s.enabled or not (daily_exhausted or burst_full)
            if allowed:
                st.burst.append(now)
                st.day_count += 1
            daily_reset_ms = int(max(0.0, st.day_start + s.daily_window_seconds - now) * 1000)
            headers = {
                "X-RateLimit-Limit-Daily": str(s.daily_limit),
                "X-RateLimit-Daily-Remaining": str(max(0, s.daily_limit - st.day_count)),
                "X-RateLimit-Daily-Reset": str(daily_reset_ms),
                "X-RateLimit-Interval-Milliseconds": str(int(s.burst_window_seconds * 1000)),
                "X-RateLimit-Max": str(s.burst_limit),
                "X-RateLimit-Remaining": str(max(0, s.burst_limit - len(st.burst))),
            }
            if allowed:
                retry_after = 0.0
            elif daily_exhausted:
                retry_after = daily_reset_ms / 1000
            else:
                retry_after = max(0.0, st.burst[0] + s.burst_window_seconds - now)
            return RateDecision(
                allowed=allowed,
                daily_exhausted=daily_exhausted and s.enabled,
                headers=headers,
                retry_after_seconds=retry_after,
            )
