"""The weekly payment volume chart: a small PNG for the email, drawn with matplotlib's Agg canvas.

Uses the object API (`Figure` + `FigureCanvasAgg`), not pyplot: no global state, no GUI backend, safe in a
worker that draws several reports. Drawn at twice its display size so it stays sharp on phones.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from decimal import Decimal

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from cherry_sync.reports.figures import WeekVolume

# Display size in CSS pixels (the <img> width/height); the PNG has SCALE times as many pixels.
WIDTH, HEIGHT, SCALE = 560, 260, 2
BAR = "#b0245a"
BAR_EMPTY = "#e9d3dc"
INK = "#3b3b45"
MUTED = "#8a8a96"


def short_money(value: Decimal | float) -> str:
    """$0, $850, $12.3k, $1.2M: axis and bar labels (the exact amounts are in the text table)."""
    amount = Decimal(str(value))
    if amount >= 1_000_000:
        return f"${amount / 1_000_000:.1f}M"
    if amount >= 10_000:
        return f"${amount / 1000:.0f}k"
    if amount >= 1000:
        return f"${amount / 1000:.1f}k"
    return f"${amount:.0f}"


def week_label(week: WeekVolume) -> str:
    return f"{week.start:%b} {week.start.day}"


def alt_text(weeks: Sequence[WeekVolume]) -> str:
    """A one-sentence description of the chart for screen readers and image-blocking mail clients."""
    if not weeks or not any(w.payments for w in weeks):
        return "Weekly payment volume chart: no payments in these 90 days."
    best = max(weeks, key=lambda w: (w.volume, w.end))
    total = sum((w.volume for w in weeks), Decimal(0))
    return (
        f"Weekly payment volume chart over {len(weeks)} weeks, {short_money(total)} in total; "
        f"the busiest week began {week_label(best)} with {short_money(best.volume)}."
    )


def weekly_volume_png(weeks: Sequence[WeekVolume]) -> bytes:
    """Bars of completed payment volume per week, oldest first, with the newest week's bar labelled."""
    fig = Figure(figsize=(WIDTH / 100, HEIGHT / 100), dpi=100 * SCALE, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.1, 0.13, 0.88, 0.82))
    # Matplotlib needs floats to draw; the figures themselves stay Decimal. Bar heights only.
    heights = [float(w.volume) for w in weeks]
    positions = list(range(len(weeks)))
    empty = not any(heights)
    ax.bar(positions, heights if not empty else [0] * len(weeks), width=0.68, color=BAR, zorder=2)
    ax.set_xticks(positions, [week_label(w) for w in weeks], fontsize=9.5, color=MUTED)
    for index, label in enumerate(ax.get_xticklabels()):
        label.set_visible(index % 2 == (len(weeks) - 1) % 2)  # every other week, always the newest
    ax.tick_params(axis="both", length=0, pad=4)
    ax.tick_params(axis="y", labelsize=9.5, labelcolor=MUTED)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: short_money(v)))
    ax.grid(axis="y", color="#ececf1", linewidth=0.8, zorder=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color("#d6d6de")
    ax.set_xlim(-0.6, len(weeks) - 0.4)
    if empty:
        ax.set_ylim(0, 1000)
        ax.text(
            0.5, 0.55, "No payments in these 90 days", transform=ax.transAxes, ha="center", fontsize=12, color=MUTED
        )
    else:
        top = max(heights)
        ax.set_ylim(0, top * 1.18)
        newest = len(weeks) - 1
        ax.annotate(
            short_money(weeks[newest].volume),
            (newest, heights[newest]),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=9.5,
            color=INK,
            fontweight="bold",
        )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100 * SCALE, facecolor="white", metadata={"Software": None})
    return buffer.getvalue()
