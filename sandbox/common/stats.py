"""Request counters, so tests and benchmarks can prove what a client did.

Counts per endpoint (method + route template), per rate key (location / API key), per status code, and
the largest number of requests any key sent within one window of `window_seconds` (10 s by default,
the CRM's burst window), counting every request that reached the server, rejected or not, and the largest
number of requests of one key being answered at the same time (`max_concurrent`: a client's requests in flight).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Mapping


def is_crm_write(endpoint: str) -> bool:
    """A counted endpoint ("POST /contacts/upsert") that writes CRM data. The CRM's POST /contacts/search only
    reads, and the OAuth token endpoints (POST /oauth/token, /oauth/locationToken) grant tokens, not data."""
    method, _, path = endpoint.partition(" ")
    return method in ("POST", "PUT", "DELETE") and "/contacts/search" not in path and not path.startswith("/oauth/")


def crm_writes(endpoints: Mapping[str, int]) -> int:
    """Writing requests among a stats snapshot's `endpoints` counts (whole sandbox, or one `by_key` entry)."""
    return sum(n for endpoint, n in endpoints.items() if is_crm_write(endpoint))


class RequestStats:
    """Thread-safe request accounting."""

    def __init__(self, window_seconds: float = 10.0, clock=time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.window_seconds = window_seconds
        self.reset()

    def reset(self, window_seconds: float | None = None) -> None:
        with self._lock:
            if window_seconds is not None:
                self.window_seconds = window_seconds
            self._total = 0
            self._endpoints: Counter[str] = Counter()
            self._statuses: Counter[str] = Counter()
            self._by_key: dict[str, Counter[str]] = defaultdict(Counter)
            self._key_status: dict[str, Counter[str]] = defaultdict(Counter)
            self._recent: dict[str, deque] = defaultdict(deque)
            self._max_in_window: dict[str, int] = defaultdict(int)
            self._open: dict[str, int] = defaultdict(int)
            self._max_concurrent: dict[str, int] = defaultdict(int)

    def opened(self, key: str | None, at: float | None = None) -> None:
        """A request of `key` arrived and is being answered (pair with `closed`). Windows are counted here, in
        arrival order: requests answered side by side finish out of order."""
        if key is None:
            return
        now = self._clock() if at is None else at
        with self._lock:
            self._open[key] += 1
            self._max_concurrent[key] = max(self._max_concurrent[key], self._open[key])
            recent = self._recent[key]
            recent.append(now)
            horizon = now - self.window_seconds
            while recent and recent[0] <= horizon:
                recent.popleft()
            if len(recent) > self._max_in_window[key]:
                self._max_in_window[key] = len(recent)

    def closed(self, key: str | None) -> None:
        if key is None:
            return
        with self._lock:
            self._open[key] = max(0, self._open[key] - 1)

    def record(self, endpoint: str, key: str | None, status: int, at: float | None = None) -> None:
        """Count one request's answer (`at`, its arrival time, is kept for callers' symmetry; windows are counted
        in `opened`)."""
        with self._lock:
            self._total += 1
            self._endpoints[endpoint] += 1
            self._statuses[str(status)] += 1
            if key is None:
                return
            self._by_key[key][endpoint] += 1
            self._key_status[key][str(status)] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "total": self._total,
                "window_seconds": self.window_seconds,
                "endpoints": dict(self._endpoints),
                "status_codes": dict(self._statuses),
                "by_key": {
                    key: {
                        "requests": sum(counts.values()),
                        "endpoints": dict(counts),
                        "status_codes": dict(self._key_status[key]),
                        "max_in_window": self._max_in_window[key],
                        "max_concurrent": self._max_concurrent[key],
                    }
                    for key, counts in self._by_key.items()
                },
            }
