"""Seeded practices and two years of history for each: patients, payments, applications, the event feed.

Everything comes from `random.Random` instances seeded with strings derived from the sandbox seed and
the practice index, so the same seed gives the same data byte for byte, and practice #0 is the same
whether the sandbox runs 3 practices or 10. Each patient's life is simulated in time order (application,
decision, purchases, refunds, expiry, re-approval...), emitting the events a consumer would have seen;
the practice's feed is then all of them in time order, with a few late re-deliveries mixed in.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from itertools import accumulate

from sandbox.cherry.formats import CENT, epoch, money, stamp
from sandbox.cherry.lifecycle import DAY, EVENT_FOR_STATUS, PatientLife
from sandbox.cherry.malformed import MalformedKind, patient_overrides
from sandbox.cherry.models import (
    Application,
    Event,
    IdMaker,
    Location,
    PatientVersion,
    PaymentVersion,
    PlanOption,
    Practice,
)
from sandbox.cherry.people import Identity, PeopleFactory, format_phone, name_tables, pick_weighted
from sandbox.cherry.regions import PRACTICE_NAME_PATTERNS, REGIONS

MAX_APPROVAL = Decimal("50000")
STATUS_WEIGHTS = (("ACTIVE", 62), ("EXPIRED", 12), ("INACTIVE", 5), ("DECLINED", 13), ("PENDING_REVIEW", 8))
STATUSES = tuple(s for s, _ in STATUS_WEIGHTS)
# random.choices with cum_weights draws exactly as with weights, minus re-summing them on every call.
STATUS_CUM_WEIGHTS = tuple(accumulate(w for _, w in STATUS_WEIGHTS))
PURCHASE_COUNT_CUM_WEIGHTS = tuple(accumulate((35, 40, 18, 7)))  # 0, 1, 2 or 3 purchases per approval
TERM_WEIGHTS = {3: 8, 6: 30, 12: 34, 18: 10, 24: 10, 36: 4, 48: 2, 60: 2}
APPROVAL_BANDS = (
    (0.05, 200, 500),
    (0.45, 500, 3000),
    (0.75, 3000, 7500),
    (0.93, 7500, 15000),
    (0.99, 15000, 35000),
    (1.01, 35000, 50000),
)  # (cumulative share, low $, high $)
REGULAR_APRS = ("9.99", "12.99", "14.99", "17.99", "19.99", "22.99", "24.99", "26.99", "29.99", "32.99", "35.99")


def rng_for(seed: int, *parts: object) -> random.Random:
    """An independent RNG per purpose, so adding draws in one place never shifts data elsewhere."""
    return random.Random(":".join(["cherry", str(seed), *map(str, parts)]))


def api_key_for(seed: int, practice_index: int, n: int = 0) -> str:
    """Sandbox API keys are deterministic (and not secret): ck_sandbox_<32 hex>."""
    return f"ck_sandbox_{rng_for(seed, 'key', practice_index, n).getrandbits(128):032x}"


def make_practice(seed: int, index: int) -> Practice:
    rng = rng_for(seed, "practice", index)
    region = REGIONS[index % len(REGIONS)]
    hoods = rng.sample(region.neighbourhoods, k=min(len(region.neighbourhoods), rng.choice((1, 1, 2, 2, 3))))
    surname = pick_weighted(rng, _last_names())
    name = rng.choice(PRACTICE_NAME_PATTERNS).format(metro=region.metro, surname=surname, hood=hoods[0])
    ids = IdMaker(rng)
    locations = [Location(ids("loc"), f"{name} - {hood}" if len(hoods) > 1 else name) for hood in hoods]
    plans = _plan_menu(rng)
    return Practice(
        id=ids("prac"),
        name=name,
        timezone=region.timezone,
        locations=locations,
        plans=plans,
        approval_days=rng.choice((60, 90, 90, 180)),
        area_codes=region.area_codes,
        index=index,
        plan_cum_weights=tuple(accumulate(TERM_WEIGHTS.get(p.term_months, 1) for p in plans)),
    )


def _last_names():
    return name_tables()["last"]


def _plan_menu(rng: random.Random) -> list[PlanOption]:
    """Terms 3/6/12/18/24 (+ some of 36/48/60); 0% promos on short terms, 9.99-35.99% rising with term."""
    terms = [3, 6, 12, 18, 24] + [t for t in (36, 48, 60) if rng.random() < 0.5]
    start = rng.randrange(0, len(REGULAR_APRS) - len(terms) + 1)  # cheaper or dearer practices
    regular = sorted(rng.sample(REGULAR_APRS[start:], k=len(terms)), key=Decimal)
    plans = []
    for term, apr in zip(terms, regular, strict=True):
        promo = term == 3 or (term == 6 and rng.random() < 0.8) or (term == 12 and rng.random() < 0.3)
        plans.append(PlanOption(term, Decimal("0.00") if promo else Decimal(apr)))
    return plans


def approval_amount(rng: random.Random) -> Decimal:
    """$200-$50,000, most between $500 and $7,500."""
    roll = rng.random()
    lo, hi = next((lo, hi) for share, lo, hi in APPROVAL_BANDS if roll < share)
    amount = Decimal(rng.randrange(lo, hi + 1) // 10 * 10)
    if rng.random() < 0.1:
        amount += Decimal(rng.choice(("0.50", "0.25", "0.75")))
    return min(amount, MAX_APPROVAL)


def purchase_amount(rng: random.Random, balance: Decimal) -> Decimal | None:
    """A checkout of $200-$10,000 (skewed low) that fits in `balance`; None when nothing fits."""
    cap = min(balance, Decimal(10_000))
    if cap < 200:
        return None
    if balance <= cap and rng.random() < 0.12:  # the whole remaining balance
        return balance
    raw = Decimal(200) + (cap - 200) * Decimal(str(rng.random() ** 1.6))
    return raw.quantize(CENT, rounding=ROUND_HALF_UP)


def pick_plan(rng: random.Random, practice: Practice) -> PlanOption:
    return rng.choices(practice.plans, cum_weights=practice.plan_cum_weights)[0]


def contract_id(rng: random.Random) -> str:
    chars = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "L-" + "".join(rng.choices(chars, k=12)) + f"-{rng.randint(1, 3)}"


def contact_change(rng: random.Random, practice: Practice, v: PatientVersion) -> dict:
    """A patient re-types their phone (maybe in another format), adds an e-mail, or moves location."""
    if v.phone and rng.random() < 0.6:
        digits = "".join(ch for ch in v.phone if ch.isdigit())[-10:]
        return {"phone": format_phone(rng, digits)}
    if v.email is None:
        local = f"{v.first_name.lower()}.{v.last_name.lower().replace(' ', '')}{rng.randrange(100, 999)}"
        return {"email": f"{local}@example.com"}
    return {"location_id": rng.choice(practice.locations).id}


def new_life(rng: random.Random, practice: Practice, person: Identity, patient_id: str, created: int) -> PatientLife:
    """A patient who has just completed an application (PENDING_REVIEW until decided)."""
    return PatientLife(
        PatientVersion(
            id=patient_id,
            practice_id=practice.id,
            first_name=person.first_name,
            last_name=person.last_name,
            date_of_birth=person.date_of_birth,
            phone=person.phone,
            email=person.email,
            location_id=rng.choice(practice.locations).id,
            account_status="PENDING_REVIEW",
            approval_amount=None,
            balance_available=None,
            balance_status=None,
            application_completed_at=stamp(created),
            approval_expires_at=None,
            increase_eligible=False,
            extension_eligible=False,
            created_at=stamp(created),
            updated_at=stamp(created),
        ),
        validity_seconds=practice.approval_days * DAY,
        increase_dice=rng.random(),
        extension_dice=rng.random(),
    )


def make_payment(
    rng: random.Random, ids: IdMaker, practice: Practice, life: PatientLife, t: int, amount: Decimal, invoice: int
) -> PaymentVersion:
    """A completed checkout by `life` at `t` on one of the practice's plans."""
    plan = pick_plan(rng, practice)
    location = life.version.location_id if rng.random() < 0.85 else rng.choice(practice.locations).id
    return PaymentVersion(
        id=ids("pay"),
        practice_id=practice.id,
        patient_id=life.id,
        location_id=location,
        invoice_number=f"INV-{invoice}",
        contract_id=contract_id(rng),
        amount=money(amount),
        refund_amount="0.00",
        status="COMPLETED",
        term_months=plan.term_months,
        apr=money(plan.apr),
        created_at=stamp(t),
        updated_at=stamp(t),
        period=life.period,
    )


@dataclass
class History:
    """What the generator produced for one practice, ready to load into a PracticeBook."""

    lives: dict[str, PatientLife] = field(default_factory=dict)
    payments: dict[str, PaymentVersion] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    applications: list[Application] = field(default_factory=list)
    malformed: dict[str, tuple[str, str]] = field(default_factory=dict)
    invoice_counter: int = 0
    people: PeopleFactory | None = None


class HistoryGenerator:
    """Simulates `history_days` of one practice up to `now` (epoch seconds)."""

    def __init__(self, practice: Practice, seed: int, now: int, history_days: int, ids: IdMaker) -> None:
        self.practice = practice
        self.seed = seed
        self.now = now
        self.span = history_days * DAY
        self.ids = ids
        self.rng = rng_for(seed, "history", practice.index)
        today = datetime.fromtimestamp(now, UTC).date()
        self.people = PeopleFactory(rng_for(seed, "people", practice.index), practice.area_codes, today)
        self.out = History(
            invoice_counter=rng_for(seed, "invoice", practice.index).randrange(10_000, 90_000), people=self.people
        )
        self._raw: list[list] = []  # [t, order, type, ref]

    # -- helpers -----------------------------------------------------------------------------------
    def _emit(self, t: int, event_type: str, ref) -> list:
        entry = [t, len(self._raw), event_type, ref]
        self._raw.append(entry)
        return entry

    def new_payment(self, rng: random.Random, life: PatientLife, t: int, amount: Decimal) -> PaymentVersion:
        self.out.invoice_counter += 1
        return make_payment(rng, self.ids, self.practice, life, t, amount, self.out.invoice_counter)

    # -- one patient -------------------------------------------------------------------------------
    def _patient(self, corrupt: MalformedKind | None, corrupt_rng: random.Random) -> None:
        rng, now, practice = self.rng, self.now, self.practice
        validity = practice.approval_days * DAY
        status = rng.choices(STATUSES, cum_weights=STATUS_CUM_WEIGHTS)[0]
        if status == "PENDING_REVIEW":
            created = now - rng.randrange(600, 47 * 3600)
        elif status in ("EXPIRED", "INACTIVE"):
            created = now - rng.randrange(validity + 3 * DAY, max(validity + 4 * DAY, self.span))
        else:
            created = now - rng.randrange(3600, self.span)
        life = new_life(rng, practice, self.people.identity(), self.ids("pat"), created)
        pid = life.id
        self.out.lives[pid] = life
        app = Application(self.ids("app"), pid, stamp(created - rng.randrange(120, 2400)), stamp(created))
        self.out.applications.append(app)
        last_entry = None

        if status == "PENDING_REVIEW":
            last_entry = self._emit(created, "patient.created", life.version)
        elif status == "DECLINED":
            last_entry = self._emit(created, "patient.created", life.decline(created, created))
            app.decision, app.decided_at = "DECLINED", stamp(created)
        else:
            last_entry = self._approved_life(life, app, status, created, validity)

        last = epoch(life.version.updated_at)
        if rng.random() < 0.08 and last + 120 < now:  # re-typed contact details, a move to another location
            t = rng.randrange(last + 60, now)
            changed = life.touch(t, **contact_change(rng, practice, life.version))
            last_entry = self._emit(t, "patient.refreshed", changed)

        if corrupt is not None:
            bad = life.version.evolve(overrides=patient_overrides(corrupt, life.version, corrupt_rng))
            life.version = bad
            last_entry[3] = bad  # the latest event carried the (now) corrupted version
            self.out.malformed[pid] = ("patient", corrupt.value)

    def _approved_life(self, life: PatientLife, app: Application, status: str, created: int, validity: int):
        rng, now = self.rng, self.now
        amount = approval_amount(rng)
        if rng.random() < 0.1:  # manual review first, decided within 48 hours
            self._emit(created, "patient.created", life.version)
            decided = min(created + rng.randrange(3600, 47 * 3600), now - 120)
            decided = max(decided, created + 1)
            entry = self._emit(decided, "patient.refreshed", life.approve(decided, amount, created))
        else:
            decided = created
            entry = self._emit(created, "patient.created", life.approve(created, amount, created))
        app.decision, app.decided_at, app.approved_amount = "APPROVED", stamp(decided), money(amount)

        queue: list[tuple] = []
        order = 0

        def push(t: int, action: str, *args) -> None:
            nonlocal order
            order += 1
            heapq.heappush(queue, (t, order, action, args))

        end = decided + validity
        stop = now
        if status == "ACTIVE" and end <= now:
            hi = now - 60
            lo = min(max(end + 60, now - validity + 3600), hi)
            reapply = rng.randrange(lo, hi + 1)
            if end < reapply:
                push(end, "expire", 1)
            push(reapply, "reapply")
            self._schedule_purchases(push, decided, min(end, reapply), 1)
            self._schedule_purchases(push, reapply, now, 2)
        else:
            if status == "EXPIRED":
                push(end, "expire", 1)
                stop = end
            elif status == "INACTIVE":
                stop = rng.randrange(decided + DAY, max(decided + DAY + 1, min(end, now) - 3600))
                push(stop, "deactivate")
            self._schedule_purchases(push, decided, min(stop, end), 1)

        while queue:
            t, _, action, args = heapq.heappop(queue)
            entry = self._apply(life, t, action, args, push) or entry
        return entry

    def _schedule_purchases(self, push, start: int, stop: int, period: int) -> None:
        rng = self.rng
        count = rng.choices((0, 1, 2, 3), cum_weights=PURCHASE_COUNT_CUM_WEIGHTS)[0]
        if stop - start < 1200:
            return
        for t in sorted(rng.randrange(start + 600, stop - 600) for _ in range(count)):
            push(t, "pay", period)

    def _apply(self, life: PatientLife, t: int, action: str, args: tuple, push):
        """Run one scheduled action; returns the latest patient event entry it emitted, if any."""
        rng, out = self.rng, self.out
        if action == "expire":
            if life.period == args[0] and life.status == "ACTIVE":
                return self._emit(t, "patient.refreshed", life.expire(t))
        elif action == "deactivate":
            return self._emit(t, "patient.refreshed", life.deactivate(t))
        elif action == "reapply":
            amount = approval_amount(rng)
            app = Application(
                self.ids("app"),
                life.id,
                stamp(t - rng.randrange(120, 1800)),
                stamp(t),
                "APPROVED",
                stamp(t),
                money(amount),
            )
            out.applications.append(app)
            return self._emit(t, "patient.refreshed", life.approve(t, amount, t))
        elif action == "pay":
            if life.period != args[0] or life.status != "ACTIVE" or life.balance is None:
                return None
            amount = purchase_amount(rng, life.balance)
            if amount is None:
                return None
            payment = self.new_payment(rng, life, t, amount)
            out.payments[payment.id] = payment
            self._emit(t, "payment.completed", payment)
            self._schedule_outcome(push, payment, t)
            return self._emit(t, "patient.refreshed", life.spend(t, amount))
        elif action == "outcome":
            return self._outcome(life, t, *args)
        return None

    def _schedule_outcome(self, push, payment: PaymentVersion, t: int) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.07:
            kind, when = "cancel", t + rng.randrange(3600, 3 * DAY)
        elif roll < 0.13:
            kind, when = "refund", t + rng.randrange(2 * DAY, 90 * DAY)
        elif roll < 0.19:
            kind, when = "partial", t + rng.randrange(2 * DAY, 90 * DAY)
        else:
            return
        if when < self.now:
            push(when, "outcome", payment.id, kind)

    def _outcome(self, life: PatientLife, t: int, payment_id: str, kind: str):
        payment = self.out.payments[payment_id]
        changed, back = settle_payment(self.rng, payment, kind, t)
        self.out.payments[payment_id] = changed
        self._emit(t, EVENT_FOR_STATUS[changed.status], changed)
        restored = life.restore(t, back, payment.period)
        return self._emit(t, "patient.refreshed", restored) if restored else None

    # -- the practice ------------------------------------------------------------------------------
    def run(self, patients: int, malformed_share: float, redelivery_share: float) -> History:
        corrupt_rng = rng_for(self.seed, "malformed", self.practice.index)
        bad = set(corrupt_rng.sample(range(patients), k=round(patients * malformed_share)))
        kinds = list(MalformedKind)
        for i in range(patients):
            self._patient(kinds[i % len(kinds)] if i in bad else None, corrupt_rng)
        for _ in range(max(2, patients // 100)):
            self._emit(self.now - self.rng.randrange(60, self.span), "test.ping", None)
        for _ in range(round(patients * 0.22)):  # started, never finished: only the metrics see them
            self.out.applications.append(
                Application(self.ids("app"), None, stamp(self.now - self.rng.randrange(60, self.span)))
            )
        self.out.applications.sort(key=lambda a: (a.started_at, a.id))
        self._raw.sort(key=lambda e: (e[0], e[1]))
        events = [
            Event(self.ids("evt", 96), etype, ref.updated_at if ref is not None else stamp(t), _patient_id(ref), ref)
            for t, _, etype, ref in self._raw
        ]
        self.out.events = _with_redeliveries(self.rng, events, redelivery_share)
        return self.out


def settle_payment(rng: random.Random, payment: PaymentVersion, kind: str, t: int) -> tuple[PaymentVersion, Decimal]:
    """Cancel or (partially) refund `payment` at `t`; returns the new version and the amount given back."""
    amount = Decimal(payment.amount)
    when = stamp(t)
    if kind == "cancel":
        return payment.evolve(status="CANCELLED", updated_at=when, settled_at=when), amount
    if kind == "refund":
        return payment.evolve(status="REFUNDED", refund_amount=payment.amount, updated_at=when, settled_at=when), amount
    part = (amount * Decimal(str(rng.uniform(0.1, 0.6)))).quantize(CENT, rounding=ROUND_HALF_UP)
    changed = payment.evolve(status="PARTIALLY_REFUNDED", refund_amount=money(part), updated_at=when, settled_at=when)
    return changed, part


def _patient_id(ref) -> str | None:
    if isinstance(ref, PatientVersion):
        return ref.id
    if isinstance(ref, PaymentVersion):
        return ref.patient_id
    return None


def _with_redeliveries(rng: random.Random, events: list[Event], share: float) -> list[Event]:
    """Copies of some events re-delivered 1-300 positions later (same id: at-least-once delivery)."""
    if share <= 0:
        return events
    later: dict[int, list[Event]] = {}
    for i, event in enumerate(events):
        if rng.random() < share:
            later.setdefault(min(len(events) - 1, i + rng.randrange(1, 300)), []).append(event)
    result: list[Event] = []
    for i, event in enumerate(events):
        result.append(event)
        result.extend(later.get(i, ()))
    return result
