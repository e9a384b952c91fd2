"""Estimates (amortisation against published figures) and the metrics report (recomputed independently)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import pytest

from sandbox.cherry.estimates import monthly_payment
from sandbox.cherry.testing import CherrySandbox

CENT = Decimal("0.01")

# NOTES.md, "Standard amortisation that I computed": (amount, APR %, 6-month payment, 12-month payment).
NOTES_TABLE = [
    ("1000", "0", "166.67", "83.33"),
    ("1000", "17.99", "175.52", "91.68"),
    ("2500", "0", "416.67", "208.33"),
    ("2500", "22.99", "445.05", "235.18"),
    ("5000", "0", "833.33", "416.67"),
    ("5000", "29.99", "907.72", "487.41"),
]


@pytest.mark.parametrize(("amount", "apr", "six", "twelve"), NOTES_TABLE)
def test_amortisation_matches_the_notes_table(amount, apr, six, twelve):
    assert str(monthly_payment(Decimal(amount), Decimal(apr), 6)) == six
    assert str(monthly_payment(Decimal(amount), Decimal(apr), 12)) == twelve


def independent_payment(amount: Decimal, apr: Decimal, n: int) -> Decimal:
    """Amortisation computed differently (float-free iteration of the balance), to cross-check the server."""
    if apr == 0:
        return (amount / n).quantize(CENT, rounding=ROUND_HALF_UP)
    r = apr / 1200
    growth = Decimal(1)
    for _ in range(n):
        growth *= 1 + r
    return (amount * r * growth / (growth - 1)).quantize(CENT, rounding=ROUND_HALF_UP)


def test_practice_estimates_follow_the_plan_menu(cherry_sandbox: CherrySandbox):
    for index, practice in enumerate(cherry_sandbox.practices):
        menu = cherry_sandbox.admin("GET", f"/practices/{practice.id}/plans")
        terms = [p["term_months"] for p in menu]
        assert {3, 6, 12, 18, 24} <= set(terms) and terms == sorted(terms)
        assert any(Decimal(p["apr"]) == 0 for p in menu)
        assert all(Decimal(p["apr"]) == 0 or Decimal("9.99") <= Decimal(p["apr"]) <= Decimal("35.99") for p in menu)
        for amount in ("2500.00", "1000", "49999.99", "0.01", "733.5"):
            body = cherry_sandbox.get("/v1/estimates", index, amount=amount).json()
            value = Decimal(amount)
            assert body["amount"] == str(value.quantize(CENT))
            assert [p["term_months"] for p in body["plans"]] == terms
            for plan, option in zip(body["plans"], menu, strict=True):
                apr = Decimal(option["apr"])
                assert plan["apr"] == option["apr"]
                monthly = independent_payment(value, apr, plan["term_months"])
                assert plan["monthly_payment"] == str(monthly), (amount, option)
                total = value.quantize(CENT) if apr == 0 else monthly * plan["term_months"]
                assert plan["total"] == str(total)


@pytest.mark.parametrize("amount", ["0", "0.00", "-5", "50000.01", "abc", "1e3", "12.345", "NaN", ""])
def test_estimate_amount_must_be_valid(cherry_sandbox: CherrySandbox, amount):
    response = cherry_sandbox.get("/v1/estimates", 0, amount=amount)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_estimate_amount_is_required(cherry_sandbox: CherrySandbox):
    assert cherry_sandbox.get("/v1/estimates", 0).status_code == 400
    assert cherry_sandbox.get("/v1/estimates", 0, amount="50000").status_code == 200


def test_patient_estimates(cherry_sandbox_factory):
    sandbox = cherry_sandbox_factory(patients_per_practice=120, practices=1, rate_limits={"enabled": False})
    patients = sandbox.fetch_all("/v1/patients")
    practice_plans = sandbox.get("/v1/estimates", 0, amount="100").json()["plans"]
    seen = set()
    for patient in patients:
        body = sandbox.get(f"/v1/patients/{patient['id']}/estimates", 0).json()
        basis = patient["balance_available"] or patient["approval_amount"]
        assert body["amount"] == basis
        if basis is None:
            seen.add("no approval")
            assert body["plans"] == []
        elif Decimal(basis) == 0:
            seen.add("fully used")
            assert body["plans"] == []
        else:
            seen.add("balance" if patient["balance_available"] else "approval only")
            expected = sandbox.get("/v1/estimates", 0, amount=basis).json()
            assert body == expected
            assert len(body["plans"]) == len(practice_plans)
    assert seen == {"no approval", "fully used", "balance", "approval only"}


# -- metrics ---------------------------------------------------------------------------------------
def local_date(stamp: str, zone: ZoneInfo) -> date:
    return datetime.fromisoformat(stamp).astimezone(zone).date()


def expected_metrics(payments: list[dict], applications: list[dict], zone: ZoneInfo, start: date, end: date):
    def within(stamp):
        return stamp is not None and start <= local_date(stamp, zone) <= end

    sales = [p for p in payments if p["status"] != "CANCELLED" and within(p["created_at"])]
    refunded = [p for p in payments if p["status"] in ("REFUNDED", "PARTIALLY_REFUNDED") and within(p["updated_at"])]
    completed = [a for a in applications if within(a["completed_at"])]
    approved = [a for a in completed if a["decision"] == "APPROVED"]
    volume = sum((Decimal(p["amount"]) for p in sales), Decimal(0))

    def share(part, whole):
        return str((Decimal(part) / whole).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)) if whole else None

    return {
        "applications_started": sum(within(a["started_at"]) for a in applications),
        "applications_completed": len(completed),
        "approvals": len(approved),
        "approval_rate": share(len(approved), len(completed)),
        "approved_amount": str(sum((Decimal(a["approved_amount"]) for a in approved), Decimal("0.00"))),
        "transactions": len(sales),
        "volume": str(volume.quantize(CENT)),
        "refunds": len(refunded),
        "refund_amount": str(sum((Decimal(p["refund_amount"]) for p in refunded), Decimal("0.00"))),
        "average_ticket": str((volume / len(sales)).quantize(CENT, rounding=ROUND_HALF_UP)) if sales else None,
        "promo_share": share(sum(Decimal(p["apr"]) == 0 for p in sales), len(sales)),
    }


def test_metrics_recomputed_from_the_public_data(cherry_sandbox_factory):
    sandbox = cherry_sandbox_factory(patients_per_practice=150, rate_limits={"enabled": False})
    today = date.fromisoformat(sandbox.now()[:10])
    for index, practice in enumerate(sandbox.practices):
        zone = ZoneInfo(practice.timezone)
        payments = sandbox.fetch_all("/v1/payments", index)
        applications = sandbox.admin("GET", f"/practices/{practice.id}/applications")
        for start, end in (
            (today - timedelta(days=89), today),
            (today - timedelta(days=365), today),
            (today - timedelta(days=800), today - timedelta(days=435)),
        ):
            body = sandbox.get("/v1/reports/metrics", index, start=start.isoformat(), end=end.isoformat()).json()
            assert body.pop("practice_id") == practice.id and body.pop("currency") == "USD"
            assert (body.pop("start"), body.pop("end")) == (start.isoformat(), end.isoformat())
            assert body == expected_metrics(payments, applications, zone, start, end), (index, start)
        year = sandbox.get(
            "/v1/reports/metrics", index, start=(today - timedelta(days=365)).isoformat(), end=today.isoformat()
        ).json()
        assert year["transactions"] > 0 and year["refunds"] > 0 and year["approval_rate"] is not None


def test_metrics_use_the_practice_time_zone(cherry_sandbox_factory):
    sandbox = cherry_sandbox_factory(patients_per_practice=150, rate_limits={"enabled": False})
    practice = sandbox.practices[0]
    zone = ZoneInfo(practice.timezone)
    payments = sandbox.fetch_all("/v1/payments")
    # A sale made in the local evening, which is already the next day in UTC.
    sale = next(
        p
        for p in payments
        if p["status"] == "COMPLETED" and local_date(p["created_at"], zone).isoformat() != p["created_at"][:10]
    )
    day = local_date(sale["created_at"], zone)
    body = sandbox.get("/v1/reports/metrics", 0, start=day.isoformat(), end=day.isoformat()).json()
    same_day = [p for p in payments if p["status"] != "CANCELLED" and local_date(p["created_at"], zone) == day]
    assert body["transactions"] == len(same_day) >= 1
    assert Decimal(body["volume"]) == sum(Decimal(p["amount"]) for p in same_day)


def test_empty_range_has_null_ratios(cherry_sandbox: CherrySandbox):
    body = cherry_sandbox.get("/v1/reports/metrics", 0, start="2010-01-01", end="2010-01-31").json()
    assert body["transactions"] == 0 and body["volume"] == "0.00"
    assert body["average_ticket"] is None and body["promo_share"] is None and body["approval_rate"] is None


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2025-02-01", "2025-01-31"),
        ("2024-01-01", "2025-01-01"),
        ("2025-02-30", "2025-03-01"),
        ("2025/01/01", "2025-01-02"),
        ("", "2025-01-01"),
        ("2025-01-01", "tomorrow"),
    ],
)
def test_metrics_rejects_bad_ranges(cherry_sandbox: CherrySandbox, start, end):
    response = cherry_sandbox.get("/v1/reports/metrics", 0, start=start, end=end)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_metrics_allows_a_366_day_range(cherry_sandbox: CherrySandbox):
    assert cherry_sandbox.get("/v1/reports/metrics", 0, start="2024-01-01", end="2024-12-31").status_code == 200
    assert cherry_sandbox.get("/v1/reports/metrics", 0, start="2024-01-01", end="2025-01-01").status_code == 400
