"""Report windows: 90 whole local days ending the day before the logical date (or on a chosen day)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from cherry_sync.reports.window import ReportWindow, WindowError, parse_end_date, resolve_window

FIRST_OF_MARCH = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)  # the scheduled run: "0 6 1 * *"
LATER = datetime(2026, 6, 1, tzinfo=UTC)


def test_scheduled_run_covers_the_90_days_before_the_first_in_the_practice_timezone():
    window = resolve_window("America/New_York", reference=FIRST_OF_MARCH, now=LATER)

    assert (window.start, window.end, window.days) == (date(2025, 12, 1), date(2026, 2, 28), 90)
    assert window.previous() == ReportWindow(date(2025, 9, 2), date(2025, 11, 30), "America/New_York")


def test_the_window_follows_the_practice_timezone_not_utc():
    # 06:00 UTC on March 1st is still February 28th (22:00) in Los Angeles: its last whole day is the 27th.
    window = resolve_window("America/Los_Angeles", reference=FIRST_OF_MARCH, now=LATER)

    assert window.end == date(2026, 2, 27)


def test_an_end_date_is_the_last_day_covered():
    window = resolve_window("America/Chicago", reference=FIRST_OF_MARCH, end_date=date(2026, 1, 31), now=LATER)

    assert (window.start, window.end) == (date(2025, 11, 3), date(2026, 1, 31))


def test_a_day_that_has_not_ended_in_the_practice_timezone_cannot_end_a_window():
    now = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # March 9th, 23:00 in Chicago

    with pytest.raises(WindowError, match="has not ended yet"):
        resolve_window("America/Chicago", reference=now, end_date=date(2026, 3, 9), now=now)
    assert resolve_window("America/Chicago", reference=now, end_date=date(2026, 3, 8), now=now).end == date(2026, 3, 8)


def test_utc_bounds_are_local_midnights_across_a_dst_change():
    # US DST began on 2026-03-08: the window's start is at UTC-5, its end at UTC-4.
    window = ReportWindow(date(2026, 3, 1), date(2026, 3, 31), "America/New_York")

    assert window.utc_bounds() == (datetime(2026, 3, 1, 5, tzinfo=UTC), datetime(2026, 4, 1, 4, tzinfo=UTC))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("2026-02-28", date(2026, 2, 28)), (date(2026, 1, 2), date(2026, 1, 2))],
)
def test_end_date_param_values(value, expected):
    assert parse_end_date(value) == expected


def test_a_malformed_end_date_is_refused_with_the_expected_form():
    with pytest.raises(WindowError, match="YYYY-MM-DD"):
        parse_end_date("28/02/2026")


def test_labels_read_naturally():
    assert ReportWindow(date(2026, 1, 1), date(2026, 3, 31), "UTC").label() == "Jan 1 – Mar 31, 2026"
    assert ReportWindow(date(2025, 12, 3), date(2026, 3, 2), "UTC").label() == "Dec 3, 2025 – Mar 2, 2026"
