"""Estimate text and its rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cherry_sync.domain.cherry_records import EstimatePlan, Estimates, parse_estimates
from cherry_sync.domain.estimates import PracticeEstimates, estimate_text, format_money, format_percent, plan_line
from tests.domain import samples


def _plan(term: int, apr: str, monthly: str, total: str) -> EstimatePlan:
    return EstimatePlan(term_months=term, apr=Decimal(apr), monthly_payment=Decimal(monthly), total=Decimal(total))


def test_example_line() -> None:
    assert plan_line(Decimal("2500.00"), _plan(6, "0.00", "416.67", "2500.00")) == (
        "$2,500.00: $416.67/mo for 6 months at 0.00% APR (total $2,500.00)"
    )


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("416.666667", "$416.67"),
        ("416.665", "$416.67"),  # half-up, not banker's rounding
        ("416.664999", "$416.66"),
        ("0.005", "$0.01"),
        ("1000000", "$1,000,000.00"),
        ("0", "$0.00"),
    ],
)
def test_money_rounding(amount: str, text: str) -> None:
    assert format_money(Decimal(amount)) == text


def test_percent_rendering() -> None:
    assert format_percent(Decimal("17.99")) == "17.99%"
    assert format_percent(Decimal("0")) == "0.00%"
    assert format_percent(Decimal("22.995")) == "23.00%"


def test_best_plan_per_term_is_lowest_apr() -> None:
    item = Estimates(
        amount=Decimal("1000"),
        plans=(
            _plan(12, "29.99", "97.00", "1164.00"),
            _plan(12, "9.99", "87.92", "1055.04"),
            _plan(6, "0", "166.666", "1000"),
        ),
    )
    assert estimate_text([item], 12) == "$1,000.00: $87.92/mo for 12 months at 9.99% APR (total $1,055.04)"
    assert estimate_text([item], 6) == "$1,000.00: $166.67/mo for 6 months at 0.00% APR (total $1,000.00)"
    assert estimate_text([item], 24) is None


def test_practice_estimates_sorted_and_deduplicated() -> None:
    big = parse_estimates(samples.estimates())
    small = parse_estimates(
        {
            "amount": "1000",
            "plans": [
                {"term_months": 6, "apr": "0", "monthly_payment": "166.67", "total": "1000"},
            ],
        }
    )
    duplicate = parse_estimates({"amount": "2500.0", "plans": []})
    practice = PracticeEstimates((big, small, duplicate))
    assert [e.amount for e in practice.estimates] == [Decimal("1000"), Decimal("2500.00")]
    assert estimate_text(practice.estimates, 6) == (
        "$1,000.00: $166.67/mo for 6 months at 0.00% APR (total $1,000.00)\n"
        "$2,500.00: $416.67/mo for 6 months at 0.00% APR (total $2,500.00)"
    )
