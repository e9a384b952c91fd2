"""Payment estimates: standard amortisation over a practice's plan menu.

Monthly payment = P * r / (1 - (1 + r)^-n) with r = APR / 12, or P / n at 0% APR, in Decimal and rounded
half-up to the cent; the total is the rounded monthly payment times n (at 0% the total is the amount, as
promotional plans carry no interest: the last instalment absorbs the rounding).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from sandbox.cherry.formats import CENT, money
from sandbox.cherry.models import PlanOption

MAX_ESTIMATE_AMOUNT = Decimal("50000")


def monthly_payment(amount: Decimal, apr_percent: Decimal, term_months: int) -> Decimal:
    """The rounded monthly instalment for `amount` at `apr_percent` over `term_months`."""
    with localcontext() as ctx:
        ctx.prec = 34
        if apr_percent == 0:
            raw = amount / term_months
        else:
            rate = apr_percent / Decimal(100) / Decimal(12)
            raw = amount * rate / (1 - (1 + rate) ** -term_months)
        return raw.quantize(CENT, rounding=ROUND_HALF_UP)


def plan_estimate(amount: Decimal, option: PlanOption) -> dict[str, Any]:
    payment = monthly_payment(amount, option.apr, option.term_months)
    total = amount if option.apr == 0 else payment * option.term_months
    return {
        "term_months": option.term_months,
        "apr": money(option.apr),
        "monthly_payment": money(payment),
        "total": money(total),
    }


def estimate(amount: Decimal | None, plans: list[PlanOption]) -> dict[str, Any]:
    """The /estimates body; no plans when there is nothing to finance."""
    if amount is None:
        return {"amount": None, "plans": []}
    body_plans = [plan_estimate(amount, p) for p in plans] if amount > 0 else []
    return {"amount": money(amount), "plans": body_plans}
