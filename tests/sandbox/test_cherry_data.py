"""Seeded data: determinism, realism of values, internal consistency, start-up time."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from sandbox.cherry.app import create_app
from sandbox.cherry.config import CherrySandboxConfig
from sandbox.cherry.testing import CherrySandbox

PINNED = "2026-01-15T00:00:00Z"
PHONE_SHAPES = {
    r"^\(\d{3}\) \d{3}-\d{4}$",
    r"^\d{3}\.\d{3}\.\d{4}$",
    r"^\+1 \d{3} \d{3} \d{4}$",
    r"^\d{10}$",
    r"^\d{3}-\d{3}-\d{4}$",
    r"^\+1\d{10}$",
    r"^1-\d{3}-\d{3}-\d{4}$",
    r"^\(\d{3}\)\d{3}-\d{4}$",
}


def raw_pages(sandbox: CherrySandbox, path: str, practice: int) -> list[bytes]:
    pages, cursor = [], None
    while True:
        response = sandbox.get(path, practice, limit=50, **({"cursor": cursor} if cursor else {}))
        pages.append(response.content)
        body = response.json()
        if not body["has_more"]:
            return pages
        cursor = body["next_cursor"]


def test_same_seed_same_bytes_other_seed_differs(cherry_sandbox_factory):
    off = {"rate_limits": {"enabled": False}, "now": PINNED}
    a, b, c = cherry_sandbox_factory(**off), cherry_sandbox_factory(**off), cherry_sandbox_factory(seed=8, **off)
    assert a.practices == b.practices
    for path in ("/v1/practice", "/v1/patients", "/v1/payments", "/v1/events", "/v1/marketing-assets"):
        for practice in range(3):
            if path == "/v1/practice":
                assert a.get(path, practice).content == b.get(path, practice).content
            else:
                assert raw_pages(a, path, practice) == raw_pages(b, path, practice), path
    asset = a.get("/v1/marketing-assets", 0, limit=1).json()["data"][0]["id"]
    content = f"/v1/marketing-assets/{asset}/content"
    assert a.get(content, 0).content == b.get(content, 0).content
    assert {p.api_key for p in a.practices} != {p.api_key for p in c.practices}
    assert raw_pages(a, "/v1/patients", 0) != raw_pages(c, "/v1/patients", 0)


def test_a_practice_does_not_depend_on_how_many_there_are(cherry_sandbox_factory):
    small = cherry_sandbox_factory(practices=1, now=PINNED)
    big = cherry_sandbox_factory(practices=3, now=PINNED)
    assert small.practices[0] == big.practices[0]
    assert small.fetch_all("/v1/patients") == big.fetch_all("/v1/patients")


@pytest.fixture(scope="module")
def population():
    """Default-sized data (3 x 200), read once for the realism checks."""
    with CherrySandbox.start(now=PINNED, rate_limits={"enabled": False}) as sandbox:
        yield {
            "practices": [sandbox.get("/v1/practice", i).json() for i in range(3)],
            "patients": [sandbox.fetch_all("/v1/patients", i) for i in range(3)],
            "payments": [sandbox.fetch_all("/v1/payments", i) for i in range(3)],
        }


def test_practices_span_time_zones_and_have_locations(population):
    zones = [p["timezone"] for p in population["practices"]]
    assert len(set(zones)) == 3
    for zone in zones:
        ZoneInfo(zone)  # a real IANA zone
        assert zone.startswith(("America/", "Pacific/"))


def test_patients_look_like_real_applicants(population):
    today = date(2026, 1, 15)
    for patients in population["patients"]:
        statuses = Counter(p["account_status"] for p in patients)
        assert set(statuses) == {"ACTIVE", "INACTIVE", "EXPIRED", "DECLINED", "PENDING_REVIEW"}
        assert statuses["ACTIVE"] > len(patients) / 2
        ages = [(today - date.fromisoformat(p["date_of_birth"])).days / 365.25 for p in patients if p["date_of_birth"]]
        assert min(ages) >= 18 and max(ages) <= 80.5
        assert any(p["date_of_birth"] is None for p in patients) or len(patients) < 100
        shapes = Counter(next(s for s in PHONE_SHAPES if re.match(s, p["phone"])) for p in patients if p["phone"])
        assert len(shapes) >= 5
        # Real area codes, 555 exchange: valid-looking numbers that reach nobody.
        assert all(re.sub(r"\D", "", p["phone"])[-7:-4] == "555" for p in patients if p["phone"])
        assert any(p["phone"] is None for p in patients) and any(p["email"] is None for p in patients)
        assert any(p["phone"] is None and p["email"] is None for p in patients)
        emails = [p["email"] for p in patients if p["email"]]
        assert any(e != e.strip() or e != e.lower() for e in emails)  # typed messily
        assert all(
            e.strip().lower().split("@")[1].startswith(("example.", "mail.example.", "inbox.example.")) for e in emails
        )


def _digits(phone: str | None) -> str | None:
    return re.sub(r"\D", "", phone)[-10:] if phone else None


def test_families_share_a_phone_or_an_email(population):
    shared = 0
    for patients in population["patients"]:
        by_contact: dict[tuple, list[dict]] = {}
        for p in patients:
            for key in (("phone", _digits(p["phone"])), ("email", (p["email"] or "").strip().lower() or None)):
                if key[1]:
                    by_contact.setdefault(key, []).append(p)
        for members in by_contact.values():
            if len(members) > 1:
                shared += 1
                assert len({m["last_name"] for m in members}) == 1  # a family, not a collision
    assert shared >= 3


def test_money_and_balances_are_consistent(population):
    for patients in population["patients"]:
        for p in patients:
            approval, balance = p["approval_amount"], p["balance_available"]
            status = p["account_status"]
            if status in ("DECLINED", "PENDING_REVIEW"):
                assert approval is None and balance is None and p["balance_status"] is None
                continue
            assert Decimal("200") <= Decimal(approval) <= Decimal("50000")
            if status == "INACTIVE":
                assert balance is None and p["balance_status"] is None
                continue
            assert Decimal(0) <= Decimal(balance) <= Decimal(approval)
            expected = (
                "EXPIRED"
                if status == "EXPIRED"
                else "FULLY_USED"
                if Decimal(balance) == 0
                else "AVAILABLE"
                if balance == approval
                else "PARTIALLY_USED"
            )
            assert p["balance_status"] == expected
            if status == "ACTIVE":
                assert p["approval_expires_at"] > "2026-01-15T00:00:00Z"  # the sandbox clock
            else:
                assert p["approval_expires_at"] <= p["updated_at"]
            if p["increase_eligible"]:
                assert status == "ACTIVE"
    every = [p for patients in population["patients"] for p in patients]
    assert {p["balance_status"] for p in every} >= {"AVAILABLE", "PARTIALLY_USED", "FULLY_USED", "EXPIRED"}
    assert any(p["increase_eligible"] for p in every) and any(p["extension_eligible"] for p in every)


def test_payments_history(population):
    for payments, patients in zip(population["payments"], population["patients"], strict=True):
        statuses = Counter(p["status"] for p in payments)
        assert set(statuses) == {"COMPLETED", "REFUNDED", "PARTIALLY_REFUNDED", "CANCELLED"}
        ids = {p["id"] for p in patients}
        stamps = sorted(p["created_at"] for p in payments)
        assert stamps[0] < "2024-07-01" and stamps[-1] > "2025-10-01"  # about two years of history
        for pay in payments:
            assert pay["patient_id"] in ids
            amount, refund = Decimal(pay["amount"]), Decimal(pay["refund_amount"])
            assert Decimal(200) <= amount <= Decimal(10_000)
            assert {"REFUNDED": refund == amount, "PARTIALLY_REFUNDED": 0 < refund < amount}.get(
                pay["status"], refund == 0
            )
            assert re.match(r"^L-[A-Z0-9]{12}-\d$", pay["contract_id"])


def test_default_start_up_is_fast():
    started = time.perf_counter()
    app = create_app(CherrySandboxConfig())
    elapsed = time.perf_counter() - started
    assert len(app.state.cherry.books) == 3
    assert sum(len(b.lives) for b in app.state.cherry.books.values()) == 600
    assert elapsed < 2.0, elapsed


def test_clock_defaults_to_today_utc():
    config = CherrySandboxConfig()
    assert config.now.hour == config.now.minute == config.now.second == 0
    assert config.now.tzinfo is not None


def test_many_practices_all_valid():
    """Every practice a seed can make is well-formed (menus, zones, locations), not just the first three."""
    from sandbox.cherry.data import make_practice

    for seed in (1, 7, 99):
        for index in range(40):
            practice = make_practice(seed, index)
            ZoneInfo(practice.timezone)
            terms = [p.term_months for p in practice.plans]
            assert terms[:5] == [3, 6, 12, 18, 24] and terms == sorted(terms)
            aprs = [p.apr for p in practice.plans]
            assert aprs[0] == 0 and all(a == 0 or Decimal("9.99") <= a <= Decimal("35.99") for a in aprs)
            assert 1 <= len(practice.locations) <= 3
