"""`POST /_sandbox/advance`: move the sandbox clock and let the practices live through the interval.

Each requested change happens at a random moment inside the interval, in time order, through the same
transitions as the seeded history, so versions and events stay consistent. Approvals that expire inside
the interval expire. Then the feed misbehaves on request: `out_of_order_share` of the refreshed patients
change twice and the two events are delivered newest first; `duplicate_share` of the new events are
delivered a second time (same id) at the end. The RNG is seeded from the sandbox seed and the number of
earlier advances, so a given sequence of calls always gives the same result.
"""

from __future__ import annotations

import heapq
import random
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from sandbox.cherry.book import PracticeBook
from sandbox.cherry.data import (
    approval_amount,
    contact_change,
    make_payment,
    new_life,
    purchase_amount,
    rng_for,
    settle_payment,
)
from sandbox.cherry.formats import epoch, money, stamp
from sandbox.cherry.lifecycle import EVENT_FOR_STATUS, PatientLife
from sandbox.cherry.models import Application, PatientVersion

MAX_APPROVAL = Decimal("50000")
PICK_TRIES = 60


class AdvanceRequest(BaseModel):
    """What should happen while the clock moves. Counts apply to each practice (or just `practice_id`)."""

    model_config = ConfigDict(extra="forbid")

    minutes: float = Field(60, ge=0, le=527_040)
    new_patients: int = Field(0, ge=0, le=10_000)
    refreshed: int = Field(0, ge=0, le=10_000)
    payments: int = Field(0, ge=0, le=10_000)
    refunds: int = Field(0, ge=0, le=10_000)
    cancellations: int = Field(0, ge=0, le=10_000)
    pings: int = Field(0, ge=0, le=1_000)
    abandoned_applications: int = Field(0, ge=0, le=10_000)
    deactivations: int = Field(0, ge=0, le=10_000)
    duplicate_share: float = Field(0.0, ge=0, le=1)
    out_of_order_share: float = Field(0.0, ge=0, le=1)
    practice_id: str | None = None


def share_count(share: float, n: int) -> int:
    """How many of `n` items a share picks: at least one when both are non-zero."""
    return 0 if share <= 0 or n == 0 else max(1, min(n, round(share * n)))


class PracticeSimulator:
    """Runs one advance for one practice."""

    def __init__(self, book: PracticeBook, rng: random.Random, start: int, end: int) -> None:
        self.book = book
        self.rng = rng
        self.start = start
        self.end = end
        self.counts = dict.fromkeys(
            (
                "new_patients",
                "refreshed",
                "payments",
                "refunds",
                "cancellations",
                "expired",
                "pings",
                "abandoned_applications",
                "deactivations",
                "out_of_order",
                "duplicates",
                "events",
            ),
            0,
        )
        self._pending_first: dict[int, tuple[PatientLife, PatientVersion]] = {}

    # -- scheduling --------------------------------------------------------------------------------
    def _moment(self, after: int | None = None) -> int:
        lo = max(self.start + 1, (after or 0) + 1)
        return self.rng.randint(lo, self.end) if lo <= self.end else self.end

    def run(self, req: AdvanceRequest) -> dict[str, int]:
        rng, book = self.rng, self.book
        mark = len(book.events)
        actions: list[tuple[int, int, str, tuple]] = []

        def add(t: int, action: str, *args) -> None:
            actions.append((t, len(actions), action, args))

        for action, count in (
            ("new_patient", req.new_patients),
            ("pay", req.payments),
            ("refund", req.refunds),
            ("cancel", req.cancellations),
            ("ping", req.pings),
            ("abandon", req.abandoned_applications),
            ("deactivate", req.deactivations),
        ):
            for _ in range(count):
                add(self._moment(), action)
        pairs = set(rng.sample(range(req.refreshed), share_count(req.out_of_order_share, req.refreshed)))
        for i in range(req.refreshed):
            t = self._moment()
            if i in pairs:
                add(t, "refresh_first", i)
                add(self._moment(after=t), "refresh_second", i)
            else:
                add(t, "refresh")
        while book.expiries and book.expiries[0][0] <= self.end:
            expires, patient_id = heapq.heappop(book.expiries)
            add(min(self.end, max(expires, self.start)), "expire", patient_id, expires)

        for t, _, action, args in sorted(actions):
            getattr(self, f"_do_{action}")(t, *args)

        new_events = book.events[mark:]
        for event in rng.sample(new_events, share_count(req.duplicate_share, len(new_events))):
            book.redeliver(event)
            self.counts["duplicates"] += 1
        self.counts["events"] = len(book.events) - mark
        return self.counts

    # -- helpers -----------------------------------------------------------------------------------
    def _save(self, version: PatientVersion, event_type: str | None = "patient.refreshed") -> PatientVersion:
        self.book.write_patient(version)
        if event_type:
            self.book.emit(event_type, version, version.updated_at)
        return version

    def _track_expiry(self, life: PatientLife) -> None:
        if life.status == "ACTIVE" and life.expires is not None:
            heapq.heappush(self.book.expiries, (life.expires, life.id))

    def _pick(self, population: list, fits) -> object | None:
        """A random member that `fits`: a few random tries, then a scan from a random offset."""
        if not population:
            return None
        rng = self.rng
        for _ in range(PICK_TRIES):
            candidate = rng.choice(population)
            if fits(candidate):
                return candidate
        offset = rng.randrange(len(population))
        return next((c for c in population[offset:] + population[:offset] if fits(c)), None)

    def _application(self, life: PatientLife, t: int) -> Application:
        app = Application(self.book.ids("app"), life.id, stamp(t - self.rng.randrange(120, 1800)), stamp(t))
        self.book.applications.append(app)
        return app

    def _decide(self, life: PatientLife, app: Application, t: int, approve: bool) -> PatientVersion:
        app.decided_at = stamp(t)
        if approve:
            amount = approval_amount(self.rng)
            app.decision, app.approved_amount = "APPROVED", money(amount)
            version = life.approve(t, amount, epoch(app.completed_at))
            self._track_expiry(life)
            return version
        app.decision = "DECLINED"
        return life.decline(t, epoch(app.completed_at))

    # -- actions -----------------------------------------------------------------------------------
    def _do_new_patient(self, t: int) -> None:
        book, rng = self.book, self.rng
        life = new_life(rng, book.practice, book.people.identity(), book.ids("pat"), t)
        book.lives[life.id] = life
        book.patient_order.append(life.id)
        app = self._application(life, t)
        status = rng.choices(("ACTIVE", "DECLINED", "PENDING_REVIEW"), weights=(70, 15, 15))[0]
        version = life.version if status == "PENDING_REVIEW" else self._decide(life, app, t, status == "ACTIVE")
        self._save(version, "patient.created")
        self.counts["new_patients"] += 1

    def _mutate(self, life: PatientLife, t: int) -> PatientVersion:
        """One plausible change for the patient's current status."""
        rng, book = self.rng, self.book
        status, v = life.status, life.version
        if status == "PENDING_REVIEW":  # the manual review concludes
            app = next(
                (a for a in reversed(book.applications) if a.patient_id == life.id and a.decision is None), None
            ) or self._application(life, t)
            return self._decide(life, app, t, rng.random() < 0.75)
        choices = ["contact"]
        if status == "ACTIVE" and v.increase_eligible:
            choices += ["increase"] * 2
        if v.extension_eligible:
            choices += ["extend"] * 2
        if status in ("EXPIRED", "DECLINED"):
            choices += ["reapply"] * 2
        choice = rng.choice(choices)
        if choice == "increase":
            return life.increase(t, Decimal(rng.randrange(5, 50) * 100), MAX_APPROVAL)
        if choice == "extend":
            version = life.extend(t)
            self._track_expiry(life)
            return version
        if choice == "reapply":
            return self._decide(life, self._application(life, t), t, rng.random() < 0.6)
        return life.touch(t, **contact_change(rng, book.practice, v))

    def _random_life(self) -> PatientLife | None:
        order = self.book.patient_order
        return self.book.lives[self.rng.choice(order)] if order else None

    def _do_refresh(self, t: int) -> None:
        life = self._random_life()
        if life is not None:
            self._save(self._mutate(life, t))
            self.counts["refreshed"] += 1

    def _do_refresh_first(self, t: int, token: int) -> None:
        life = self._random_life()
        if life is not None:
            self._pending_first[token] = (life, self._save(self._mutate(life, t), None))

    def _do_refresh_second(self, t: int, token: int) -> None:
        pending = self._pending_first.pop(token, None)
        if pending is None:
            return
        life, first = pending
        self._save(self._mutate(life, t))  # the newer version's event goes out first...
        self.book.emit("patient.refreshed", first, first.updated_at)  # ...the older one arrives after it
        self.counts["refreshed"] += 1
        self.counts["out_of_order"] += 1

    def _do_expire(self, t: int, patient_id: str, expires: int) -> None:
        life = self.book.lives.get(patient_id)
        if life is not None and life.status == "ACTIVE" and life.expires == expires:
            self._save(life.expire(t))
            self.counts["expired"] += 1

    def _do_deactivate(self, t: int) -> None:
        """Cherry closes an active account: it turns INACTIVE and its balance (and balance status) go null."""
        book = self.book
        patient_id = self._pick(book.patient_order, lambda pid: book.lives[pid].status == "ACTIVE")
        if patient_id is not None:
            self._save(book.lives[patient_id].deactivate(t))
            self.counts["deactivations"] += 1

    def _do_pay(self, t: int) -> None:
        book = self.book

        def can_buy(pid: str) -> bool:
            life = book.lives[pid]
            return life.status == "ACTIVE" and (life.balance or 0) >= 200

        patient_id = self._pick(book.patient_order, can_buy)
        if patient_id is None:
            return
        life = book.lives[patient_id]
        amount = purchase_amount(self.rng, life.balance)
        book.invoice_counter += 1
        payment = make_payment(self.rng, book.ids, book.practice, life, t, amount, book.invoice_counter)
        book.payment_order.append(payment.id)
        book.write_payment(payment)
        book.emit("payment.completed", payment, payment.updated_at)
        self._save(life.spend(t, amount))
        self.counts["payments"] += 1

    def _settle(self, t: int, kind: str) -> bool:
        book = self.book
        payment_id = self._pick(book.payment_order, lambda pid: book.payments.records[pid].status == "COMPLETED")
        if payment_id is None:
            return False
        payment = book.payments.records[payment_id]
        changed, back = settle_payment(self.rng, payment, kind, t)
        book.write_payment(changed)
        book.emit(EVENT_FOR_STATUS[changed.status], changed, changed.updated_at)
        restored = book.lives[payment.patient_id].restore(t, back, payment.period)
        if restored is not None:
            self._save(restored)
        return True

    def _do_refund(self, t: int) -> None:
        if self._settle(t, self.rng.choice(("refund", "partial"))):
            self.counts["refunds"] += 1

    def _do_cancel(self, t: int) -> None:
        if self._settle(t, "cancel"):
            self.counts["cancellations"] += 1

    def _do_ping(self, t: int) -> None:
        self.book.emit("test.ping", None, stamp(t))
        self.counts["pings"] += 1

    def _do_abandon(self, t: int) -> None:
        self.book.applications.append(Application(self.book.ids("app"), None, stamp(t)))
        self.counts["abandoned_applications"] += 1


def advance(state, req: AdvanceRequest) -> dict:
    """Move `state`'s clock by `req.minutes` and simulate the interval; returns counts (never patient data)."""
    with state.lock:
        books = [state.book(req.practice_id)] if req.practice_id else list(state.books.values())
        start = state.now_epoch()
        state.offset_seconds += round(req.minutes * 60)
        end = state.now_epoch()
        state.advances += 1
        practices = {}
        for book in books:
            rng = rng_for(state.config.seed, "advance", state.advances, book.practice.index)
            practices[book.practice.id] = PracticeSimulator(book, rng, start, end).run(req)
        return {"now": stamp(end), "advanced_seconds": end - start, "practices": practices}
