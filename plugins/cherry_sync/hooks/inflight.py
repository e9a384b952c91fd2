"""`WriteWindow`: several requests of one CRM location in flight at once, still paced by the shared limiter.

HighLevel answers in 100-300 ms, so one request at a time uses a fraction of a location's burst limit (95 per
10 s paced = one every 105 ms). A window keeps `size` requests in flight from a small thread pool around the
hook (one `requests.Session` per thread); every request still takes a `Pacer` slot first, so the window adds
throughput, never requests per window.

What the window promises its callers:
- jobs sharing an ordering key (a contact id) run one after the other, in submission order, on one thread:
  two writes for one contact never race;
- `run` returns only when every job has finished, with one `Outcome` per job in submission order, so the
  caller records what was confirmed (in its own thread: store writes are never made from the pool) and
  only then moves a checkpoint on;
- a job's exception is its outcome; it never cancels the other jobs (their writes may already be out).

`run(jobs)` takes a list and returns when all are done. `stream(jobs)` is the same window for a feed too long (or
too heavy: media uploads hold their bytes) to build up front: it draws the next job from an iterable only when
the window has room, in the calling thread, and hands each `(job, outcome)` back to that thread as it finishes,
so the caller records every confirmed write at once, and its own memory holds at most about `size()` jobs.

The size follows Little's law from the pacing rate and the hook's observed round trip, plus headroom, between
1 and `max_in_flight` (connection extra `max_in_flight`, default 8): at HighLevel's limit and 250 ms that is
4, at 500 ms 6; on loopback 1-2.
"""

from __future__ import annotations

import math
import queue
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

DEFAULT_MAX_IN_FLIGHT = 8


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one job gave: its result, or the exception it raised."""

    result: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Job(Generic[T]):
    """One unit of work for the window; jobs with the same `key` never overlap and keep their order."""

    key: Hashable
    call: Callable[[], T]


def window_size(hook: Any, max_in_flight: int | None = None) -> int:
    """Requests to keep in flight for `hook`'s location: pacing rate x observed round trip, plus headroom."""
    cap = max_in_flight or int(getattr(hook, "extra", {}).get("max_in_flight", DEFAULT_MAX_IN_FLIGHT))
    cap = max(1, cap)
    settings = hook.pace_settings
    rate = settings.max_requests / settings.window_seconds  # requests per second the pacer lets through
    latency = hook.observed_latency
    if latency is None:
        return max(1, min(cap, 4))  # no answer seen yet: a middling window until the first round trips
    return max(1, min(cap, math.ceil(rate * latency * 1.25) + 1))


class WriteWindow:
    """Runs jobs for one CRM location with up to `size()` in flight (see the module docstring).

    The pool has `max_in_flight` threads; a gate lets a job start only while fewer than `size()` are running,
    and `size()` is re-read at every start, so the window follows the round trip as answers come in.
    """

    def __init__(self, hook: Any, *, max_in_flight: int | None = None) -> None:
        self.hook = hook
        self.max_in_flight = max_in_flight or int(
            getattr(hook, "extra", {}).get("max_in_flight", DEFAULT_MAX_IN_FLIGHT)
        )
        self._pool: ThreadPoolExecutor | None = None
        self._gate = threading.Condition()
        self._running = 0
        self.peak_in_flight = 0

    def size(self) -> int:
        return window_size(self.hook, self.max_in_flight)

    def run(self, jobs: Sequence[Job[T]]) -> list[Outcome[T]]:
        """Run every job (see `stream`); one outcome per job, in submission order, once all have finished."""
        position = {id(job): index for index, job in enumerate(jobs)}
        outcomes: list[Outcome[T] | None] = [None] * len(jobs)
        for job, outcome in self.stream(jobs):
            outcomes[position[id(job)]] = outcome
        return [o for o in outcomes if o is not None]

    def stream(self, jobs: Iterable[Job[T]]) -> Iterator[tuple[Job[T], Outcome[T]]]:
        """Run jobs as they come; yield `(job, outcome)` in the calling thread as each one finishes.

        The next job is drawn from `jobs` (in the calling thread: a generator may write the store before it hands
        a job over) only while fewer than `size()` drawn jobs are unfinished, so a lazy feed is read no faster than
        the window drains it. A job whose key has one unfinished waits behind it. When drawing from `jobs` raises,
        nothing more is drawn: the jobs already out finish and are yielded first, then the error is raised. A
        `BaseException` in a job (an interrupt) is raised at once. Closing the iterator early leaves the started
        jobs to finish in the pool (`close()` waits for them) without their outcomes.
        """
        feed = iter(jobs)
        done: queue.SimpleQueue[tuple[Job[T], Outcome[T] | None, BaseException | None]] = queue.SimpleQueue()
        behind: dict[Hashable, deque[Job[T]]] = {}  # keys with a job out -> their jobs waiting for it
        unfinished = 0
        failure: Exception | None = None
        drawing = True

        def finish(job: Job[T]) -> None:
            try:
                outcome = self._gated(job.call)
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, which raises it
                done.put((job, None, exc))
            else:
                done.put((job, outcome, None))

        pool = self._executor()
        while True:
            while drawing and unfinished < self.size():
                try:
                    job = next(feed)
                except StopIteration:
                    drawing = False
                except Exception as exc:  # noqa: BLE001 - raised once the jobs already out are yielded
                    failure, drawing = exc, False
                else:
                    unfinished += 1
                    if job.key in behind:
                        behind[job.key].append(job)
                    else:
                        behind[job.key] = deque()
                        pool.submit(finish, job)
            if unfinished == 0:
                break
            job, outcome, interrupt = done.get()
            if interrupt is not None:
                raise interrupt
            unfinished -= 1
            waiting = behind[job.key]
            if waiting:
                pool.submit(finish, waiting.popleft())
            else:
                del behind[job.key]
            assert outcome is not None
            yield job, outcome
        if failure is not None:
            raise failure

    def _gated(self, call: Callable[[], T]) -> Outcome[T]:
        with self._gate:
            while self._running >= self.size():
                self._gate.wait(0.05)  # re-check: the size moves with the observed round trip
            self._running += 1
            self.peak_in_flight = max(self.peak_in_flight, self._running)
        try:
            return _attempt(call)
        finally:
            with self._gate:
                self._running -= 1
                self._gate.notify()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> WriteWindow:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            # The task is ending (Airflow's execution timeout, an interrupt): the hook sends no new attempt and jobs
            # not started are dropped; requests already out end within their read timeout, and are waited for, so
            # nothing of this task is still in flight once it has ended.
            cancel = getattr(self.hook, "cancel", None)
            if cancel is not None:
                cancel()
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
            return
        self.close()

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="crm-window")
        return self._pool


def _attempt(call: Callable[[], T]) -> Outcome[T]:
    try:
        return Outcome(result=call())
    except Exception as exc:  # noqa: BLE001 - the caller decides per outcome; nothing is swallowed
        return Outcome(error=exc)
