"""Pacing: keep every API key / CRM location under its burst limit, across threads, processes and workers.

Airflow pools cap how many tasks run at once, not how fast they call an API, so each hook asks a
`Pacer` for a slot before every request. The slot bookkeeping lives where every worker can see it:
Redis or the sync store's PostgreSQL for a deployment, a file-locked SQLite database for several
processes on one machine, and memory for a single process. All use pyrate-limiter's sliding-window log,
the same algorithm HighLevel enforces, with a safety margin below the published limit.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate, SQLiteBucket

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PaceSettings:
    """At most `max_requests` per `window_seconds` for one key. Defaults: 95% of HighLevel's 100 / 10 s."""

    max_requests: int = 95
    window_seconds: float = 10.0
    max_wait_seconds: float = 300.0

    @property
    def rate(self) -> Rate:
        return Rate(self.max_requests, int(self.window_seconds * Duration.SECOND))


class PacingTimeoutError(Exception):
    """No slot became free within `max_wait_seconds`."""


class Pacer:
    """Hands out request slots per key; one pyrate-limiter bucket per key, created on first use."""

    backend = "abstract"

    def __init__(self) -> None:
        self._limiters: dict[tuple[str, PaceSettings], Limiter] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, settings: PaceSettings) -> None:
        """Block until `key` may send one more request."""
        limiter = self._limiter(key, settings)
        if not limiter.try_acquire(_safe_name(key), blocking=True, timeout=settings.max_wait_seconds):
            raise PacingTimeoutError(f"no request slot for {_safe_name(key)} within {settings.max_wait_seconds}s")

    def _limiter(self, key: str, settings: PaceSettings) -> Limiter:
        with self._lock:
            limiter = self._limiters.get((key, settings))
            if limiter is None:
                limiter = Limiter(self._bucket(key, settings), buffer_ms=20)
                self._limiters[(key, settings)] = limiter
            return limiter

    def _bucket(self, key: str, settings: PaceSettings):
        raise NotImplementedError

    def close(self) -> None:
        with self._lock:
            for limiter in self._limiters.values():
                limiter.close()
            self._limiters.clear()


class MemoryPacer(Pacer):
    """In-process only: correct for one worker process (the embedded default's `dags test`)."""

    backend = "memory"

    def _bucket(self, key, settings):
        return InMemoryBucket([settings.rate])


class SQLitePacer(Pacer):
    """Several processes on one machine, coordinated through a file-locked SQLite database."""

    backend = "sqlite"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _bucket(self, key, settings):
        return SQLiteBucket.init_from_file(
            [settings.rate], table=f"pace_{_safe_name(key)}", db_path=str(self.path), use_file_lock=True
        )


class PostgresPacer(Pacer):
    """Every worker that reaches the store's PostgreSQL; one small table per key."""

    backend = "postgres"

    def __init__(self, conninfo: str) -> None:
        super().__init__()
        from psycopg_pool import ConnectionPool

        self._pool = ConnectionPool(conninfo, min_size=1, max_size=4, open=True, kwargs={"autocommit": False})

    def _bucket(self, key, settings):
        from pyrate_limiter import PostgresBucket

        return PostgresBucket(self._pool, f"pace_{_safe_name(key)}", [settings.rate])

    def close(self) -> None:
        super().close()
        self._pool.close()


class RedisPacer(Pacer):
    """Every worker that reaches the Redis server (the Celery broker in docker-compose)."""

    backend = "redis"

    def __init__(self, url: str) -> None:
        super().__init__()
        import redis

        self._redis = redis.Redis.from_url(url)

    def _bucket(self, key, settings):
        from pyrate_limiter import RedisBucket

        return RedisBucket.init([settings.rate], self._redis, f"cherry_sync:pace:{_safe_name(key)}")


def _safe_name(key: str) -> str:
    """A table/key-safe name that does not reveal the raw key (an API key must never become a table name)."""
    slug = re.sub(r"[^a-z0-9]+", "_", key.lower())[:24].strip("_")
    return f"{slug}_{hashlib.sha256(key.encode()).hexdigest()[:10]}"


_default_pacer: Pacer | None = None
_default_lock = threading.Lock()


def default_pacer() -> Pacer:
    """The process-wide fallback pacer (memory)."""
    global _default_pacer
    with _default_lock:
        if _default_pacer is None:
            _default_pacer = MemoryPacer()
        return _default_pacer


def pacer_from_url(url: str | None) -> Pacer:
    """Build a pacer from a URL: `redis://…`, `postgresql://…`, `sqlite:///path` or None/`memory://`."""
    if not url or url.startswith("memory:"):
        return default_pacer()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisPacer(url)
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg2://")):
        return PostgresPacer(re.sub(r"^postgres(ql)?(\+psycopg2)?://", "postgresql://", url))
    if url.startswith("sqlite:///"):
        return SQLitePacer(url.removeprefix("sqlite:///"))  # sqlite:////abs -> /abs, sqlite:///rel -> rel
    raise ValueError("unsupported pacer backend URL scheme")
