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
import random
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate, SQLiteBucket

log = logging.getLogger(__name__)

_MAX_POLL_SECONDS = 0.05


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
        """Block until `key` may send one more request.

        Polls with non-blocking tries rather than using pyrate-limiter's blocking mode: each try stamps the
        slot with the time it is taken (the blocking mode stamps a retried slot with its first try's time plus
        the planned sleep, so under contention slots were logged as older than they were and the window let
        more through), and PostgreSQL's lock contention (a refused try, not a full window) is simply retried.
        """
        limiter = self._limiter(key, settings)
        name = _safe_name(key)
        deadline = time.monotonic() + settings.max_wait_seconds
        poll = min(_MAX_POLL_SECONDS, settings.window_seconds / max(1, settings.max_requests))
        while not _try_once(limiter, name):
            if time.monotonic() >= deadline:
                raise PacingTimeoutError(f"no request slot for {name} within {settings.max_wait_seconds}s")
            time.sleep(poll * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto

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
        bucket = SQLiteBucket.init_from_file(
            [settings.rate], table=f"pace_{_safe_name(key)}", db_path=str(self.path), use_file_lock=True
        )
        bucket.lock = _FileLockAdapter(bucket.lock)  # the Limiter picks it up as its cross-process lock
        return bucket


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

        bucket_key = f"cherry_sync:pace:{_safe_name(key)}"
        return RedisBucket([settings.rate], self._redis, bucket_key, self._redis.script_load(_redis_put_script()))


def _redis_put_script() -> str:
    """pyrate-limiter's Redis check-and-insert, counting every slot in the window.

    Its script counts `ZCOUNT key window_start now`, `now` being this client's timestamp: a slot another
    worker stamped a millisecond later but inserted first is not counted, so workers starting together
    get more slots than the limit. Nothing is newer than now in a correct count, so the upper bound goes.
    """
    from pyrate_limiter.buckets.redis_bucket import LuaScript

    bounded = "redis.call('ZCOUNT', bucket, window_start, now)"
    if bounded not in LuaScript.PUT_ITEM:
        raise RuntimeError("pyrate-limiter's Redis script changed: review RedisPacer before upgrading")
    return LuaScript.PUT_ITEM.replace(bounded, "redis.call('ZCOUNT', bucket, window_start, '+inf')")


def _try_once(limiter: Limiter, name: str) -> bool:
    """One non-blocking try; a lock held by another process for longer than a few seconds counts as a miss."""
    try:
        return bool(limiter.try_acquire(name, blocking=False))
    except TimeoutError:
        return False


class _FileLockAdapter:
    """The SQLite bucket's `filelock.FileLock`, callable the way pyrate-limiter calls locks.

    pyrate-limiter's non-blocking path calls `lock.acquire(False)`, which `FileLock` reads as `timeout=False`
    (a TypeError). The lock is only ever held for one count-and-insert, so a "non-blocking" acquire here
    waits a few seconds at most for another process to finish its insert.
    """

    NON_BLOCKING_WAIT = 5.0

    def __init__(self, lock) -> None:
        self._lock = lock

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        from filelock import Timeout

        wait = self.NON_BLOCKING_WAIT if not blocking else (-1 if timeout is None else timeout)
        try:
            self._lock.acquire(timeout=wait)
        except Timeout:
            return False
        return True

    def release(self) -> None:
        self._lock.release()

    def __enter__(self):
        self._lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


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
