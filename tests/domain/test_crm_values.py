"""Reading CRM values back for comparison, and rendering values for writes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from cherry_sync.domain.crm_values import parse_crm_date, parse_crm_number, same_value, to_field_value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-02-28", date(2026, 2, 28)),
        ("2026-02-28T00:00:00.000Z", date(2026, 2, 28)),
        ("02/28/2026", date(2026, 2, 28)),
        ("2026/02/28", date(2026, 2, 28)),
        (1772236800000, date(2026, 2, 28)),
        ("1772236800000", date(2026, 2, 28)),
        (-1000, date(1969, 12, 31)),
        ("2023-02-30", None),
        ("soon", None),
        (True, None),
        (None, None),
    ],
)
def test_parse_crm_date(raw: object, expected: date | None) -> None:
    assert parse_crm_date(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1234.5, Decimal("1234.5")),
        ("1234.50", Decimal("1234.50")),
        ("$1,234.50", Decimal("1234.50")),
        (10, Decimal("10")),
        ("abc", None),
        ("NaN", None),
        (True, None),
        (None, None),
    ],
)
def test_parse_crm_number(raw: object, expected: Decimal | None) -> None:
    assert parse_crm_number(raw) == expected


def test_same_value_by_meaning() -> None:
    assert same_value(Decimal("2500.00"), 2500)
    assert not same_value(Decimal("2500.00"), "2500.01")
    assert same_value(date(2026, 2, 28), "2026-02-28T00:00:00Z")
    assert same_value("Active", ["Active"])
    assert not same_value("Active", "active")
    assert not same_value("Active", None)


def test_to_field_value() -> None:
    assert to_field_value(Decimal("1234.50")) == 1234.5
    assert to_field_value(date(2026, 2, 28)) == "2026-02-28"
    assert to_field_value("Yes") == "Yes"
