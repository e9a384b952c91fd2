"""A worker process for the cross-process pacing tests (started with multiprocessing's 'spawn').

Each worker imports the hook once, then runs jobs from its own queue: build an `AesthetixCrmHook` for one
CRM location with the pacer named by URL, wait for the common start time, send `requests` calls, report
what happened. Separate OS processes, so nothing but the pacer's backend coordinates them.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import time
from collections import Counter
from typing import Any


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    from airflow.sdk import Connection

    from cherry_sync.hooks import errors
    from cherry_sync.hooks.base import RetrySettings
    from cherry_sync.hooks.crm import AesthetixCrmHook
    from cherry_sync.hooks.pacing import MemoryPacer, pacer_from_url

    url = job["pacer_url"]
    pacer = MemoryPacer() if url.startswith("memory:") else pacer_from_url(url)
    extra = {
        "location_id": job["location_id"],
        "burst_limit": job["pace_max"],
        "burst_window_seconds": job["pace_window"],
        "pace_max_wait_seconds": 60,
    }
    conn = Connection(
        conn_id="crm_pacing", conn_type="http", host=job["base_url"], password=job["token"], extra=json.dumps(extra)
    )
    hook = AesthetixCrmHook("crm_pacing", connection=conn, pacer=pacer, retry=RetrySettings(**job["retry"]))
    outcomes: Counter[str] = Counter()
    admitted: list[float] = []  # when each slot was handed out (for the test's failure message)
    real_acquire = pacer.acquire

    def acquire(key, settings):
        real_acquire(key, settings)
        admitted.append(time.time())

    pacer.acquire = acquire
    try:
        hook.get_conn()  # session set up before the start line, so the first request is not slower than the rest
        time.sleep(max(0.0, job["start_at"] - time.time()))
        for _ in range(job["requests"]):
            try:
                hook.list_pipelines()
                outcomes["ok"] += 1
            except errors.ApiError as exc:
                outcomes[exc.reason_code] += 1
    finally:
        pacer.close()
    return {"outcomes": dict(outcomes), "attempts": hook.api_calls, "admitted": admitted}


def serve(jobs, results) -> None:
    """Worker loop: one job at a time until None; a failure is reported, not raised."""
    import cherry_sync.hooks.crm  # noqa: F401 - the slow imports, done while the other workers start too

    results.put({"ready": True})
    while True:
        job = jobs.get()
        if job is None:
            return
        try:
            results.put(run_job(job))
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            results.put({"error": f"{type(exc).__name__}: {exc}"})


class Workers:
    """Long-lived spawned worker processes. Starting them costs seconds (each imports Airflow), so the hooks'
    conftest starts them as soon as collection shows pacing tests will run, and they warm up meanwhile."""

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.results = ctx.Queue()
        self.queues = [ctx.Queue() for _ in range(count)]
        self.processes = [
            ctx.Process(target=serve, args=(q, self.results), daemon=True, name=f"pacing-worker-{i}")
            for i, q in enumerate(self.queues)
        ]
        for p in self.processes:
            p.start()
        self._ready = False

    def _get(self, timeout: float) -> dict:
        try:
            return self.results.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("a pacing worker did not answer in time") from None

    def wait_ready(self) -> None:
        if not self._ready:
            for _ in self.processes:
                assert self._get(120).get("ready")
            self._ready = True

    def run(self, job: dict) -> list[dict]:
        """Give every worker the same job, starting together shortly; their reports, in no particular order."""
        self.wait_ready()
        job = {**job, "start_at": time.time() + 0.3}
        for q in self.queues:
            q.put(job)
        results = [self._get(120) for _ in self.queues]
        errors = [r["error"] for r in results if "error" in r]
        assert not errors, errors
        return results

    def stop(self) -> None:
        for q in self.queues:
            q.put(None)
        deadline = time.monotonic() + 1.0
        for p in self.processes:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.processes:
            if p.is_alive():  # done with its jobs; Airflow's exit hooks are not worth waiting for
                p.terminate()
                p.join(5)


_pool: Workers | None = None


def prestart(count: int) -> None:
    global _pool
    if _pool is None:
        _pool = Workers(count)


def take(count: int) -> Workers:
    """The pre-started pool (or a new one); the caller stops it."""
    global _pool
    pool, _pool = _pool, None
    if pool is None or len(pool.processes) != count:
        if pool is not None:
            pool.stop()
        pool = Workers(count)
    return pool
