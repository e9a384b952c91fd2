"""Render a `PracticeReport` into the email's subject, HTML body, plain-text body and chart.

Templates: `metrics_email.html.j2` and `metrics_email.txt.j2`, package data in `cherry_sync/templates/` (Jinja2,
strict undefined, autoescaped HTML). Formatting (money, counts, percentages, changes) happens here, once, so the HTML and text bodies
show exactly the same figures. The HTML's `<style>` is inlined into `style` attributes with css-inline (mail
clients drop or ignore head styles); `@media` rules stay in the head for clients that honour them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import css_inline
from jinja2 import BaseLoader, Environment, FileSystemLoader, FunctionLoader, StrictUndefined, select_autoescape

from cherry_sync.reports import chart
from cherry_sync.reports.figures import (
    APPLICATION_KEYS,
    HEADLINE_KEYS,
    PATIENT_KEYS,
    PAYMENT_KEYS,
    Figure,
    Kind,
    PracticeReport,
)

TEMPLATES_ENV = "CHERRY_SYNC_TEMPLATES"  # a folder of templates that replaces the packaged ones
# The templates are package data (cherry_sync/templates/), read through importlib.resources: found wherever the
# package is installed, whether from the plugins folder, a wheel or a zip.
TEMPLATES_PACKAGE, TEMPLATES_FOLDER = "cherry_sync", "templates"
HTML_TEMPLATE = "metrics_email.html.j2"
TEXT_TEMPLATE = "metrics_email.txt.j2"
MINUS = "\u2212"
TONE_COLOURS = {"good": "#16794a", "bad": "#b42318", "neutral": "#6b6b76"}


@dataclass(frozen=True)
class RenderedReport:
    """The email's parts. `html` references the chart as `cid:<chart_cid>`; `html_for_file` as `chart_filename`."""

    subject: str
    preheader: str
    html: str
    html_for_file: str
    text: str
    chart_png: bytes
    chart_cid: str
    chart_filename: str
    chart_alt: str


def templates_override() -> Path | None:
    """The folder `$CHERRY_SYNC_TEMPLATES` names, or None for the packaged templates."""
    override = os.environ.get(TEMPLATES_ENV)
    return Path(override).expanduser() if override else None


def _packaged_template(name: str) -> str | None:
    resource = resources.files(TEMPLATES_PACKAGE).joinpath(TEMPLATES_FOLDER, name)
    return resource.read_text(encoding="utf-8") if resource.is_file() else None


@lru_cache(maxsize=4)
def _environment(folder: str | None) -> Environment:
    loader: BaseLoader = FileSystemLoader(folder) if folder else FunctionLoader(_packaged_template)
    env = Environment(
        loader=loader,
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


def template_environment() -> Environment:
    """The Jinja2 environment over the packaged templates (or the folder `$CHERRY_SYNC_TEMPLATES` names)."""
    override = templates_override()
    return _environment(str(override) if override else None)


@lru_cache(maxsize=1)
def _inliner() -> css_inline.CSSInliner:
    # keep_at_rules: @media (phone layout) has no inline form, so it stays in a <style> in the head.
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


# -- formatting -----------------------------------------------------------------------------------------


def money(value: Decimal) -> str:
    sign = MINUS if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def whole_money(value: Decimal) -> str:
    """$5,000 for a whole amount, $2,500.50 otherwise (thresholds in labels)."""
    return f"${value:,.0f}" if value == value.to_integral_value() else money(value)


# Friendlier names for the time zones practices use most; any other zone is shown by its IANA name.
ZONE_NAMES = {
    "America/New_York": "Eastern time",
    "America/Detroit": "Eastern time",
    "America/Chicago": "Central time",
    "America/Denver": "Mountain time",
    "America/Phoenix": "Arizona time",
    "America/Los_Angeles": "Pacific time",
    "America/Anchorage": "Alaska time",
    "Pacific/Honolulu": "Hawaii time",
}


def zone_name(timezone: str) -> str:
    friendly = ZONE_NAMES.get(timezone)
    return f"{friendly} ({timezone})" if friendly else timezone


def format_value(figure: Figure, value: Any | None = None) -> str:
    value = figure.value if value is None else value
    if not figure.available:
        return "unavailable"
    if value is None:
        return figure.empty_note
    if figure.kind is Kind.MONEY:
        return money(Decimal(value))
    if figure.kind is Kind.RATIO:
        return f"{Decimal(value) * 100:.1f}%"
    return f"{int(value):,}"


def _row(figure: Figure) -> dict[str, Any]:
    change = figure.change()
    previous = format_value(figure, figure.previous) if figure.previous is not None else None
    # "was ..." only where it adds something: not for "no change" or "up from 0".
    moved = change is not None and change.text != "no change" and figure.previous != 0
    if change is not None:
        change_text = f"{change.arrow} {change.text}"
        change_full = f"{change_text} (was {previous})" if moved else change_text
    elif not figure.compared or not figure.available:
        change_text = change_full = ""
    else:
        change_text = change_full = "no comparison"
    return {
        "key": figure.key,
        "label": figure.label,
        "value": format_value(figure),
        "available": figure.available and figure.value is not None,
        "change": change_text,
        "change_full": change_full,
        "was": f"was {previous}" if moved else "",
        "tone": change.tone if change else "neutral",
        "colour": TONE_COLOURS[change.tone if change else "neutral"],
    }


def _local(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(ZoneInfo(timezone))


def _date_label(moment: datetime, timezone: str) -> str:
    local = _local(moment, timezone)
    return f"{local:%b} {local.day}, {local.year}"


def _notices(report: PracticeReport) -> list[dict[str, str]]:
    notices = []
    if not report.metrics.available:
        notices.append(
            {
                "tone": "warning",
                "title": "Application figures unavailable",
                "text": (
                    "Cherry's reporting service could not be reached when this report was prepared "
                    f"({report.metrics.reason or 'no answer'}), so applications, approvals and the 0% APR share "
                    "are not shown. Payment and patient figures come from Aesthetix's synced copy of your Cherry "
                    "account and are shown as usual."
                ),
            }
        )
    elif not report.previous_metrics.available:
        notices.append(
            {
                "tone": "warning",
                "title": "Some changes not shown",
                "text": (
                    "Cherry's figures for the previous 90 days could not be fetched, so application figures are "
                    "shown without a comparison."
                ),
            }
        )
    if not report.store.available:
        notices.append(
            {
                "tone": "warning",
                "title": "Payment and patient figures unavailable",
                "text": (
                    "Your Cherry account has not completed its first sync into Aesthetix yet, so payments and "
                    "patients are not shown. They will appear in the next report."
                ),
            }
        )
    if report.metrics.available and report.store.available and not report.has_activity():
        notices.append(
            {
                "tone": "info",
                "title": "A quiet 90 days",
                "text": "No Cherry applications or payments were recorded at the practice in these 90 days.",
            }
        )
    return notices


def _headline(report: PracticeReport, as_of: str) -> list[dict[str, Any]]:
    f = report.figures
    subs = {
        "net_volume": (
            f"from {format_value(f['payment_volume'])} in payments" if f["payment_volume"].available else ""
        ),
        "payments_completed": (
            f"average ticket {format_value(f['average_ticket'])}"
            if f["average_ticket"].available and f["average_ticket"].value is not None
            else ""
        ),
        "approval_rate": (
            f"{format_value(f['approvals'])} approved of {format_value(f['applications_completed'])} completed"
            if f["approvals"].available
            else ""
        ),
        "active_patients": (
            f"{format_value(f['available_balance'])} available to spend, as of {as_of}"
            if f["available_balance"].available
            else ""
        ),
    }
    titles = {
        "net_volume": "Net volume",
        "payments_completed": "Payments completed",
        "approval_rate": "Approval rate",
        "active_patients": "Active Cherry patients",
    }
    return [{**_row(f[key]), "label": titles[key], "sub": subs[key]} for key in HEADLINE_KEYS]


def _sections(report: PracticeReport, as_of: str) -> list[dict[str, Any]]:
    f = report.figures
    return [
        {
            "title": "Applications",
            "compared": True,
            "note": "From Cherry's reporting.",
            "rows": [_row(f[k]) for k in APPLICATION_KEYS],
        },
        {
            "title": "Payments",
            "compared": True,
            "note": "Completed payments by the day they were made; refunds and cancellations by the day they happened.",
            "rows": [_row(f[k]) for k in PAYMENT_KEYS],
        },
        {
            "title": f"Patients as of {as_of}",
            "compared": False,
            "note": "A snapshot of today's accounts, so there is no comparison with the previous 90 days.",
            "rows": [_row(f[k]) for k in PATIENT_KEYS],
        },
    ]


def _subject(report: PracticeReport) -> str:
    base = f"{report.display_name}: your Cherry report for {report.window.label()}"
    net = report.figures["net_volume"]
    if net.available and net.value is not None:
        return f"{base} ({format_value(net)} net volume)"
    return base


def _preheader(headline: list[dict[str, Any]]) -> str:
    parts = [f"{row['label']}: {row['value']}" for row in headline if row["available"]]
    return " · ".join(parts) if parts else "Your 90-day Cherry report"


def _weeks(report: PracticeReport) -> list[dict[str, Any]]:
    return [
        {
            "label": f"{w.start:%b} {w.start.day}–{w.end:%b} {w.end.day}",
            "payments": f"{w.payments:,}",
            "volume": money(w.volume),
        }
        for w in report.weeks
    ]


def view_model(report: PracticeReport, *, recipients_count: int, chart_cid: str, chart_alt: str) -> dict[str, Any]:
    """What both templates receive: everything already formatted."""
    as_of_moment = report.store.as_of or report.generated_at
    as_of = _date_label(as_of_moment, report.timezone)
    headline = _headline(report, as_of)
    previous = report.previous_window
    return {
        "subject": _subject(report),
        "preheader": _preheader(headline),
        "practice": report.display_name,
        "period": report.window.label(),
        "previous_period": previous.label(),
        "days": report.window.days,
        "timezone": zone_name(report.timezone),
        "headline": headline,
        "notices": _notices(report),
        "sections": _sections(report, as_of),
        "chart": {
            "available": report.store.available,
            "alt": chart_alt,
            "width": chart.WIDTH,
            "height": chart.HEIGHT,
            "cid": chart_cid,
            "weeks": _weeks(report),
        },
        "as_of": as_of,
        "generated": _date_label(report.generated_at, report.timezone),
        "recipients_count": recipients_count,
        "threshold": whole_money(report.balance_threshold),
        "colours": TONE_COLOURS,
    }


def render_report(report: PracticeReport, *, recipients_count: int, chart_cid: str | None = None) -> RenderedReport:
    """Subject, HTML (CSS inlined), text and chart PNG for one report."""
    png = chart.weekly_volume_png(report.weeks)
    cid = chart_cid or f"weekly-volume.{report.slug}.{report.window.end.isoformat()}@cherry-sync"
    alt = chart.alt_text(report.weeks) if report.store.available else "Weekly payment volume: unavailable."
    view = view_model(report, recipients_count=recipients_count, chart_cid=cid, chart_alt=alt)
    env = template_environment()
    filename = f"{report.slug}_{report.window.end.isoformat()}_chart.png"
    html = _inliner().inline(env.get_template(HTML_TEMPLATE).render(**view, image_src=f"cid:{cid}"))
    html_for_file = _inliner().inline(env.get_template(HTML_TEMPLATE).render(**view, image_src=filename))
    text = "\n".join(line.rstrip() for line in env.get_template(TEXT_TEMPLATE).render(**view).splitlines()) + "\n"
    return RenderedReport(
        subject=view["subject"],
        preheader=view["preheader"],
        html=html,
        html_for_file=html_for_file,
        text=text,
        chart_png=png,
        chart_cid=cid,
        chart_filename=filename,
        chart_alt=alt,
    )


def write_files(rendered: RenderedReport, folder: Path, stem: str) -> list[Path]:
    """Write `<stem>.html`, `<stem>.txt` and the chart PNG into `folder` (created); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.html", folder / f"{stem}.txt", folder / rendered.chart_filename]
    paths[0].write_text(rendered.html_for_file, encoding="utf-8")
    paths[1].write_text(rendered.text, encoding="utf-8")
    paths[2].write_bytes(rendered.chart_png)
    return paths
