"""Report test helpers shared by the engine and DAG tests: fill the store as a backfill would, and recompute the
report's figures independently of the report code.

- `load_store_from_cherry`: every parseable patient and payment from Cherry's public API, through the product's own
  parsers, and a completed checkpoint — what a backfill leaves in the store, without a CRM;
- `expected_figures`: the figures as displayed, recomputed from the sandbox's admin dumps (applications, payments
  with their settlement time) and the store's patient ids, with plain Python and string comparisons of Cherry's UTC
  stamps: none of the report code is used;
- `text_figures`: {label: (value, change)} read back from the plain-text email.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cherry_sync.domain import RecordRejected, parse_patient, parse_payment
from cherry_sync.store import SyncStore
from cherry_sync.store.schema import cherry_patients
from cherry_sync.sync.events import payment_snapshot
from cherry_sync.sync.patients import snapshot_of
from sandbox.cherry.testing import CherrySandbox


def load_store_from_cherry(store: SyncStore, cherry: CherrySandbox, index: int, slug: str) -> None:
    """Fill the store as a backfill does (patients and payments through the product's parsers)."""
    info = cherry.practices[index]
    patients, payments = [], []
    for raw in cherry.fetch_all("/v1/patients", info):
        with contextlib.suppress(RecordRejected):  # rejected by the sync (e.g. no contact point): never stored
            patients.append(snapshot_of(parse_patient(raw)))
    for raw in cherry.fetch_all("/v1/payments", info):
        with contextlib.suppress(RecordRejected):
            payments.append(payment_snapshot(parse_payment(raw)))
    store.upsert_patient_snapshots(slug, patients)
    store.upsert_payments(slug, payments)
    store.begin_checkpoint(slug, "active")
    store.complete_checkpoint(slug, "active")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bounds(start: date, end: date, timezone: str) -> tuple[str, str]:
    tz = ZoneInfo(timezone)
    return (
        _stamp(datetime.combine(start, time(0), tz)),
        _stamp(datetime.combine(end + timedelta(days=1), time(0), tz)),
    )


def dollars(value: Decimal) -> str:
    sign = "\u2212" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def expected_figures(
    cherry: CherrySandbox, store: SyncStore, index: int, slug: str, start: date, end: date, threshold: Decimal
) -> dict[str, str]:
    """The report's figures as displayed, recomputed from the sandbox dumps and the store's patient rows."""
    info = cherry.practices[index]
    lo, hi = _bounds(start, end, info.timezone)

    def within(stamp: str | None) -> bool:
        return stamp is not None and lo <= stamp < hi

    apps = cherry.admin("GET", f"/practices/{info.id}/applications")
    started = sum(within(a["started_at"]) for a in apps)
    completed = [a for a in apps if within(a["completed_at"])]
    approved = [a for a in completed if a["decision"] == "APPROVED"]
    payments = cherry.admin("GET", f"/practices/{info.id}/payments")
    made = [p for p in payments if p["status"] != "CANCELLED" and within(p["created_at"])]
    refunded = [p for p in payments if p["status"] in ("REFUNDED", "PARTIALLY_REFUNDED") and within(p["_settled_at"])]
    cancelled = [p for p in payments if p["status"] == "CANCELLED" and within(p["_settled_at"])]
    volume = sum((Decimal(p["amount"]) for p in made), Decimal(0))
    refund_amount = sum((Decimal(p["refund_amount"]) for p in refunded), Decimal(0))
    promo = sum(Decimal(p["apr"]) == 0 for p in made)

    with store.engine.begin() as conn:
        stored_ids = set(
            conn.execute(select(cherry_patients.c.patient_id).where(cherry_patients.c.practice_slug == slug)).scalars()
        )
    patients = [p for p in cherry.admin("GET", f"/practices/{info.id}/patients") if p["_id"] in stored_ids]
    active = [p for p in patients if p["account_status"] == "ACTIVE"]
    balances = [Decimal(p["balance_available"]) for p in active if p["balance_available"] is not None]

    def pct(num: int, den: int) -> str:
        if not den:
            return "n/a"
        ratio = (Decimal(num) / Decimal(den)).quantize(Decimal("0.0001"), ROUND_HALF_UP)
        return f"{ratio * 100:.1f}%"

    return {
        "Applications started": f"{started:,}",
        "Applications completed": f"{len(completed):,}",
        "Approvals": f"{len(approved):,}",
        "Approval rate": pct(len(approved), len(completed)),
        "Amount approved": dollars(sum((Decimal(a["approved_amount"]) for a in approved), Decimal(0))),
        "Payments completed": f"{len(made):,}",
        "Payment volume": dollars(volume),
        "Refunds": f"{len(refunded):,}",
        "Amount refunded": dollars(refund_amount),
        "Cancellations": f"{len(cancelled):,}",
        "Amount cancelled": dollars(sum((Decimal(p["amount"]) for p in cancelled), Decimal(0))),
        "Net volume": dollars(volume - refund_amount),
        "Average ticket": dollars((volume / len(made)).quantize(Decimal("0.01"), ROUND_HALF_UP)) if made else "n/a",
        "Share paid at 0% APR": pct(promo, len(made)),
        "Patients with an active Cherry account": f"{len(active):,}",
        "Available to spend (active accounts)": dollars(sum(balances, Decimal(0))),
        "Patients eligible for a higher limit": f"{sum(bool(p['increase_eligible']) for p in patients):,}",
        "threshold": f"{sum(b >= threshold for b in balances):,}",
    }


_LINE = re.compile(r"^  (?P<label>[^:\n]+):\s+(?P<value>\S+(?: \S+)*?)(?:\s{2,}(?P<change>\S.*))?$")


def text_figures(text: str) -> dict[str, tuple[str, str]]:
    """{label: (value, change)} from the plain-text report's figure lines (the section lines, last wins)."""
    found: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            found[match["label"]] = (match["value"], match["change"] or "")
    return found
