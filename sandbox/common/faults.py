"""Fault injection shared by both sandboxes.

A sandbox is only useful if it misbehaves the way the real service does. `FaultSettings` describes
which faults to inject (as shares of requests, or as a scripted queue for exact tests); `FaultInjector`
decides, per request, which fault applies. Decisions come from a seeded RNG so a run is repeatable.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Fault(StrEnum):
    """One injected misbehaviour."""

    RATE_LIMITED = "429"  # 429 with a Retry-After header
    RATE_LIMITED_NO_RETRY_AFTER = "429_no_retry_after"
    SERVER_ERROR = "500"
    BAD_GATEWAY = "502"
    UNAVAILABLE = "503"
    HANG = "hang"  # sleep `hang_seconds`, past any sane client timeout, then answer normally
    WRITE_THEN_500 = "write_then_500"  # apply the write, then answer 500 (writes only)


class FaultSettings(BaseModel):
    """What to inject. Shares are probabilities per request (0..1); `script` forces the next faults in order."""

    model_config = ConfigDict(extra="forbid")

    rate_limited_share: float = Field(0.0, ge=0, le=1, description="429 with Retry-After")
    rate_limited_no_retry_after_share: float = Field(0.0, ge=0, le=1, description="429 without Retry-After")
    server_error_share: float = Field(0.0, ge=0, le=1, description="500/502/503, chosen at random")
    hang_share: float = Field(0.0, ge=0, le=1)
    hang_seconds: float = Field(30.0, ge=0, le=600)
    write_then_500_share: float = Field(0.0, ge=0, le=1, description="POST/PUT/DELETE applied, then 500")
    latency_ms: int = Field(0, ge=0, le=60_000, description="added to every request")
    retry_after_seconds: int = Field(1, ge=0, le=3600)
    retry_after_format: Literal["seconds", "http-date"] = Field(
        "seconds", description="an injected 429's Retry-After as delay-seconds, or as the HTTP date to retry at"
    )
    script: list[Fault] = Field(default_factory=list, description="faults for the next matching requests")
    methods: list[str] = Field(default_factory=list, description="only these methods (empty: all)")
    path_prefixes: list[str] = Field(default_factory=list, description="only these paths (empty: all)")
    seed: int = 0

    def applies_to(self, method: str, path: str) -> bool:
        if self.methods and method.upper() not in {m.upper() for m in self.methods}:
            return False
        return not self.path_prefixes or any(path.startswith(p) for p in self.path_prefixes)


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class FaultInjector:
    """Picks the fault (if any) for each request, thread-safe and repeatable for a given seed."""

    def __init__(self, settings: FaultSettings | None = None) -> None:
        self._lock = threading.Lock()
        self._fired: Counter[str] = Counter()  # every fault handed out since start, across re-configurations
        self.configure(settings or FaultSettings())

    def configure(self, settings: FaultSettings) -> None:
        with self._lock:
            self.settings = settings
            self._script = list(settings.script)
            self._rng = random.Random(settings.seed)

    def snapshot(self) -> dict:
        with self._lock:
            data = self.settings.model_dump(mode="json")
            data["script_remaining"] = [f.value for f in self._script]
            data["fired"] = dict(self._fired)
            return data

    def pick(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if any (counted in `snapshot()["fired"]`)."""
        with self._lock:
            fault = self._choose(method, path)
            if fault is not None:
                self._fired[fault.value] += 1
            return fault

    def _choose(self, method: str, path: str) -> Fault | None:
        # Called with the lock held.
        s = self.settings
        if not s.applies_to(method, path):
            return None
        is_write = method.upper() in WRITE_METHODS
        while self._script:
            fault = self._script.pop(0)
            if fault is Fault.WRITE_THEN_500 and not is_write:
                # A scripted write fault waits for the next write rather than being lost on a read.
                self._script.insert(0, fault)
                break
            return fault
        roll = self._rng.random()
        for share, fault in (
            (s.rate_limited_share, Fault.RATE_LIMITED),
            (s.rate_limited_no_retry_after_share, Fault.RATE_LIMITED_NO_RETRY_AFTER),
            (s.server_error_share, None),  # resolved below to one of the 5xx codes
            (s.hang_share, Fault.HANG),
            (s.write_then_500_share if is_write else 0.0, Fault.WRITE_THEN_500),
        ):
            if roll < share:
                if fault is None:
                    return self._rng.choice([Fault.SERVER_ERROR, Fault.BAD_GATEWAY, Fault.UNAVAILABLE])
                return fault
            roll -= share
        return None

    @property
    def latency_seconds(self) -> float:
        return self.settings.latency_ms / 1000.0
