"""Which days a report covers: 90 whole local days in the practice's time zone, and the 90 days before them.

The window ends at the end of the day before the reference moment (the run's logical date), in the practice's
time zone, or on the day a person chose (`end_date`, inclusive). A day that has not ended yet in the practice's
time zone cannot end a window: its figures would still change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cherry_sync.errors import CherrySyncError, Disposition
from cherry_sync.reasons import ReasonCode

WINDOW_DAYS = 90


class WindowError(CherrySyncError, ValueError):
    """The requested window cannot be reported (bad date, or a day that has not ended yet): fails, not retried."""

    reason_code = ReasonCode.INVALID_REPORT_WINDOW
    disposition = Disposition.FAIL


@dataclass(frozen=True, slots=True)
class ReportWindow:
    """An inclusive range of local dates in one time zone."""

    start: date
    end: date
    timezone: str

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise WindowError(f"a window cannot end ({self.end}) before it starts ({self.start})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> ReportWindow:
        """The window of the same length that ends the day before this one starts."""
        end = self.start - timedelta(days=1)
        return ReportWindow(end - timedelta(days=self.days - 1), end, self.timezone)

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """[local midnight starting `start`, local midnight after `end`) as UTC instants."""
        tz = ZoneInfo(self.timezone)
        lo = datetime.combine(self.start, time(0), tz).astimezone(UTC)
        hi = datetime.combine(self.end + timedelta(days=1), time(0), tz).astimezone(UTC)
        return lo, hi

    def label(self) -> str:
        """e.g. "Dec 3, 2025 – Mar 2, 2026" (the year once when both ends share it)."""
        if self.start.year == self.end.year:
            return f"{_day(self.start)} – {_day(self.end)}, {self.end.year}"
        return f"{_day(self.start)}, {self.start.year} – {_day(self.end)}, {self.end.year}"


def _day(value: date) -> str:
    return f"{value:%b} {value.day}"


def parse_end_date(value: object) -> date | None:
    """The `end_date` param: a date, "YYYY-MM-DD", or empty/None (use the logical date)."""
    if value is None or isinstance(value, datetime):
        return value.date() if isinstance(value, datetime) else None
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise WindowError(f"end_date must be a date written YYYY-MM-DD, not {text[:20]!r}") from None


def local_today(moment: datetime, timezone: str) -> date:
    if moment.tzinfo is None:
        raise WindowError("the reference moment must be timezone-aware")
    return moment.astimezone(ZoneInfo(timezone)).date()


def resolve_window(
    timezone: str,
    *,
    reference: datetime,
    end_date: date | None = None,
    now: datetime | None = None,
    days: int = WINDOW_DAYS,
) -> ReportWindow:
    """The report window for a practice.

    `reference` is the run's logical date: without `end_date` the window ends on the local day before it.
    `now` (default: the wall clock) guards against a window whose last day has not ended yet.
    """
    end = end_date if end_date is not None else local_today(reference, timezone) - timedelta(days=1)
    today = local_today(now or datetime.now(UTC), timezone)
    if end >= today:
        raise WindowError(
            f"the report cannot end on {end}: that day has not ended yet in {timezone} (today there is {today}); "
            f"choose {today - timedelta(days=1)} or earlier"
        )
    return ReportWindow(end - timedelta(days=days - 1), end, timezone)
