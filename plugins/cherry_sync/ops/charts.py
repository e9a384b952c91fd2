"""Inline SVG charts for the operations pages: no script, no external asset, readable without colour."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

from cherry_sync.ops.views import RunSummary

WIDTH, HEIGHT = 760, 220
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 12, 16, 44
WRITES_COLOUR, REJECTS_COLOUR = "#2f6fb3", "#c2410c"


def runs_chart(runs: Sequence[RunSummary]) -> Markup:
    """Writes (created + updated) and rejects per run, oldest on the left, as grouped bars with a title per bar."""
    runs = list(reversed(runs))  # callers pass newest first
    if not runs:
        return Markup('<p class="muted">No runs recorded yet.</p>')
    peak = max(1, *(max(run.writes, run.rejected) for run in runs))
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    slot = plot_w / len(runs)
    bar = max(2.0, min(14.0, slot / 2 - 2))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-labelledby="runs-chart-title" class="chart">',
        '<title id="runs-chart-title">Writes and rejects per run, oldest first</title>',
    ]
    for fraction in (0, 0.5, 1):
        y = MARGIN_TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{round(peak * fraction)}</text>"
        )
    for index, run in enumerate(runs):
        x = MARGIN_LEFT + index * slot + slot / 2
        for offset, value, colour, label in (
            (-bar - 1, run.writes, WRITES_COLOUR, "writes"),
            (1, run.rejected, REJECTS_COLOUR, "rejects"),
        ):
            h = plot_h * value / peak
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{MARGIN_TOP + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(run.dag_id)} {escape(run.run_id)}: '
                f"{value} {label}</title></rect>"
            )
    first, last = runs[0].started_at, runs[-1].started_at
    parts.append(
        f'<text x="{MARGIN_LEFT}" y="{HEIGHT - 24}" font-size="11">{first:%Y-%m-%d %H:%M}</text>'
        f'<text x="{WIDTH - MARGIN_RIGHT}" y="{HEIGHT - 24}" font-size="11" text-anchor="end">'
        f"{last:%Y-%m-%d %H:%M} UTC</text>"
        f'<rect x="{MARGIN_LEFT}" y="{HEIGHT - 14}" width="10" height="10" fill="{WRITES_COLOUR}"/>'
        f'<text x="{MARGIN_LEFT + 14}" y="{HEIGHT - 5}" font-size="11">writes (created + updated)</text>'
        f'<rect x="{MARGIN_LEFT + 190}" y="{HEIGHT - 14}" width="10" height="10" fill="{REJECTS_COLOUR}"/>'
        f'<text x="{MARGIN_LEFT + 204}" y="{HEIGHT - 5}" font-size="11">rejects</text>'
    )
    parts.append("</svg>")
    # Every text that came from the store (DAG and run ids) is escaped above; numbers and dates are ours.
    return Markup("".join(parts))  # noqa: S704
