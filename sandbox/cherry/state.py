"""The whole sandbox in memory: clock, practices and their books, API keys, assets, cursor codec.

One re-entrant lock guards it; request handlers and admin calls take it for the duration of a read or
write (requests are small and the sandbox is for one developer or one test at a time).
"""

from __future__ import annotations

import gc
import hashlib
import heapq
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sandbox.cherry.assets import AssetLibrary
from sandbox.cherry.book import PracticeBook
from sandbox.cherry.config import CherrySandboxConfig
from sandbox.cherry.cursors import CursorCodec
from sandbox.cherry.data import HistoryGenerator, api_key_for, make_practice, rng_for
from sandbox.cherry.errors import ApiError
from sandbox.cherry.formats import epoch_of, stamp
from sandbox.cherry.models import ApiKey, IdMaker
from sandbox.cherry.webhooks import WebhookDispatcher


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Seeding allocates millions of long-lived objects; the cyclic GC would rescan them over and over
    (about 40 % of the seeding time at 10,000 patients). Nothing seeded is cyclic garbage."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class CherryState:
    """Seeded data plus everything the admin API can change at run time."""

    def __init__(self, config: CherrySandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self._seq = itertools.count(1)
        self.anchor = epoch_of(config.now)
        self.offset_seconds = 0
        self.advances = 0
        self.codec = CursorCodec(hashlib.sha256(f"cherry-sandbox-cursor:{config.seed}".encode()).digest())
        self.runtime_rng = rng_for(config.seed, "runtime")
        self.books: dict[str, PracticeBook] = {}
        self.keys: dict[str, ApiKey] = {}
        self._key_counts: dict[str, int] = {}
        with _gc_paused():
            for index in range(config.practices):
                self._seed_practice(index)
        self.assets = AssetLibrary(config.seed, self.anchor, self.next_seq)
        self.webhooks = WebhookDispatcher(self)

    # -- seeding -----------------------------------------------------------------------------------
    def _seed_practice(self, index: int) -> None:
        cfg = self.config
        practice = make_practice(cfg.seed, index)
        ids = IdMaker(rng_for(cfg.seed, "ids", index))
        history = HistoryGenerator(practice, cfg.seed, self.anchor, cfg.history_days, ids).run(
            cfg.patients_per_practice, cfg.malformed_share, cfg.redelivery_share
        )
        book = PracticeBook(practice, ids, self.next_seq)
        book.lives = history.lives
        book.patient_order = list(history.lives)
        book.payment_order = list(history.payments)
        book.people = history.people
        book.invoice_counter = history.invoice_counter
        for version in sorted((life.version for life in history.lives.values()), key=lambda v: (v.updated_at, v.id)):
            book.patients.put(version.id, version, self.next_seq(), version.updated_at)
        for payment in sorted(history.payments.values(), key=lambda p: (p.updated_at, p.id)):
            book.payments.put(payment.id, payment, self.next_seq(), payment.updated_at)
        book.events = history.events
        book.applications = history.applications
        book.malformed = history.malformed
        book.expiries = [(life.expires, life.id) for life in history.lives.values() if life.status == "ACTIVE"]
        heapq.heapify(book.expiries)
        self.books[practice.id] = book
        key = ApiKey(api_key_for(cfg.seed, index), practice.id, activated=True, name="demo")
        self.keys[key.key] = key
        self._key_counts[practice.id] = 1

    # -- clock and sequence ------------------------------------------------------------------------
    def next_seq(self) -> int:
        return next(self._seq)

    def now_epoch(self) -> int:
        return self.anchor + self.offset_seconds

    def now(self) -> str:
        return stamp(self.now_epoch())

    def tick(self, seconds: int = 1) -> str:
        """Move the clock on (an admin write does, so its new version is strictly newer) and return now."""
        self.offset_seconds += seconds
        return self.now()

    @contextmanager
    def locked(self) -> Iterator[CherryState]:
        with self.lock:
            yield self

    # -- keys --------------------------------------------------------------------------------------
    def practice_for_key(self, api_key: str | None) -> str | None:
        """The rate-limit key for a presented API key: its practice id (None when unknown or revoked)."""
        key = self.keys.get(api_key or "")
        return key.practice_id if key is not None and not key.revoked else None

    def authenticate(self, api_key: str | None) -> PracticeBook:
        """The book an API key opens; 401 for an unknown/revoked key, 403 before activation."""
        key = self.keys.get(api_key or "")
        if key is None or key.revoked:
            raise ApiError(401, "unauthorized", "missing or unknown API key")
        if not key.activated:
            raise ApiError(403, "key_not_activated", "API key exists but has not been activated")
        return self.books[key.practice_id]

    def create_key(self, practice_id: str, activated: bool, name: str) -> ApiKey:
        book = self.book(practice_id)
        n = self._key_counts[practice_id]
        self._key_counts[practice_id] = n + 1
        key = ApiKey(api_key_for(self.config.seed, book.practice.index, n), practice_id, activated, name)
        self.keys[key.key] = key
        return key

    def book(self, practice_id: str) -> PracticeBook:
        book = self.books.get(practice_id)
        if book is None:
            raise ApiError(404, "not_found", "practice not found")
        return book

    def find_patient_book(self, patient_id: str) -> PracticeBook:
        for book in self.books.values():
            if patient_id in book.lives:
                return book
        raise ApiError(404, "not_found", "patient not found")

    def find_payment_book(self, payment_id: str) -> PracticeBook:
        for book in self.books.values():
            if payment_id in book.payments:
                return book
        raise ApiError(404, "not_found", "payment not found")
