"""Readable payment-estimate text for the Cherry estimate custom fields.

One line per amount, e.g. "$2,500.00: $416.67/mo for 6 months at 0.00% APR (total $2,500.00)".
Amounts are rounded half-up to the cent only for display; Cherry's values are kept as given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from cherry_sync.domain.cherry_records import EstimatePlan, Estimates

_CENT = Decimal("0.01")


@dataclass(frozen=True)
class PracticeEstimates:
    """Cherry estimates for a practice's reference amounts (say $1,000, $2,500 and $5,000).

    Kept sorted by amount, one entry per amount (the first given wins), so the text is stable.
    """

    estimates: tuple[Estimates, ...]

    def __post_init__(self) -> None:
        by_amount: dict[Decimal, Estimates] = {}
        for item in self.estimates:
            by_amount.setdefault(item.amount, item)
        object.__setattr__(self, "estimates", tuple(by_amount[amount] for amount in sorted(by_amount)))


def format_money(amount: Decimal) -> str:
    """US dollars with thousands separators and cents: Decimal("2500") → "$2,500.00"."""
    return f"${amount.quantize(_CENT, rounding=ROUND_HALF_UP):,.2f}"


def format_percent(rate: Decimal) -> str:
    """An APR in percent with two places: Decimal("17.99") → "17.99%"."""
    return f"{rate.quantize(_CENT, rounding=ROUND_HALF_UP):.2f}%"


def plan_line(amount: Decimal, plan: EstimatePlan) -> str:
    """One estimate line for `amount` financed under `plan`."""
    return (
        f"{format_money(amount)}: {format_money(plan.monthly_payment)}/mo for {plan.term_months} months"
        f" at {format_percent(plan.apr)} APR (total {format_money(plan.total)})"
    )


def best_plan(estimates: Estimates, term_months: int) -> EstimatePlan | None:
    """The plan to show for a term: lowest APR, then lowest total (Cherry may offer several per term)."""
    candidates = [plan for plan in estimates.plans if plan.term_months == term_months]
    if not candidates:
        return None
    return min(candidates, key=lambda plan: (plan.apr, plan.total, plan.monthly_payment))


def estimate_text(estimates: Iterable[Estimates], term_months: int) -> str | None:
    """Lines for every amount that has a plan of `term_months`, joined by newlines; None if there are none."""
    lines = []
    for item in estimates:
        plan = best_plan(item, term_months)
        if plan is not None:
            lines.append(plan_line(item.amount, plan))
    return "\n".join(lines) or None
