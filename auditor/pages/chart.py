"""A grouped bar chart as plain geometry, drawn as inline SVG by a template.

Computed here, in numbers, so the template only places rectangles and (escaped) text:
no JavaScript, no charting library, and an organisation's name can never become markup.
One group of bars per period, one bar per organisation, one colour per organisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from auditor.pages.render import fmt_date

#: Colour-blind-safe palette (Okabe-Ito), cycled when there are more organisations.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000")


#: Widest bar in pixels: one period with few organisations should not fill the width.
MAX_BAR = 36


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str  # the tooltip: "bank-a, 2026-11-30: 3"


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    bars: list[Bar]
    x_labels: list[Tick]
    y_ticks: list[Tick]
    legend: list[tuple[str, str]]  # (colour, series name)

    @property
    def empty(self) -> bool:
        return not self.bars


def nice_step(value: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1):
    axis steps are round whole numbers (the chart counts things)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def axis(peak: int, ticks: int = 4) -> tuple[int, int]:
    """(top, step) of a value axis from 0 that holds ``peak`` in about ``ticks`` steps."""
    step = nice_step(max(peak, 1) / ticks)
    return step * max(-(-peak // step), 1), step


def grouped_bars(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    *,
    width: int = 1240,
    height: int = 280,
) -> Chart:
    """Bars for ``series`` (name, one value per group) over ``groups`` (period labels)."""
    left, top, right, bottom = 44, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value, step = axis(max((v for _, values in series for v in values), default=0))
    y_ticks = [
        Tick(round(top + plot_h - plot_h * v / top_value, 2), str(v))
        for v in range(0, top_value + 1, step)
    ]
    bars: list[Bar] = []
    x_labels: list[Tick] = []
    if groups and series:
        slot = plot_w / len(groups)
        bar_w = min(slot * 0.8 / len(series), MAX_BAR)  # a lone period: slim bars
        inner = bar_w * len(series)
        for g, group in enumerate(groups):
            x0 = left + g * slot + (slot - inner) / 2
            x_labels.append(Tick(left + g * slot + slot / 2, group))
            for s, (name, values) in enumerate(series):
                value = values[g]
                h = plot_h * value / top_value
                bars.append(
                    Bar(
                        x=round(x0 + s * bar_w, 2),
                        y=round(top + plot_h - h, 2),
                        width=round(max(bar_w - 1, 1), 2),
                        height=round(h, 2),
                        color=PALETTE[s % len(PALETTE)],
                        title=f"{name}, {group}: {value}",
                    )
                )
        # Too many periods to label each: label about a dozen, evenly spaced.
        every = max(1, len(x_labels) // 12 + (1 if len(x_labels) % 12 else 0))
        x_labels = x_labels[::every]
    legend = [(PALETTE[s % len(PALETTE)], name) for s, (name, _) in enumerate(series)]
    return Chart(width, height, left, top, plot_w, plot_h, bars, x_labels, y_ticks, legend)


def usage_chart(rows: list[dict[str, Any]], metric: str, period: str) -> Chart:
    """One group per period, one bar per organisation: the selected metric."""
    starts = sorted({int(r["periodStart"]) for r in rows})
    label = {s: fmt_date(s) if period != "month" else fmt_date(s)[:7] for s in starts}
    names: dict[str, str] = {}
    for r in rows:
        names.setdefault(str(r["org"]), str(r.get("orgName") or r["org"]))
    values: dict[tuple[str, int], int] = {
        (str(r["org"]), int(r["periodStart"])): int(r[metric]) for r in rows
    }
    series = [
        (name, [values.get((org, s), 0) for s in starts])
        for org, name in sorted(names.items(), key=lambda item: item[1])
    ]
    return grouped_bars([label[s] for s in starts], series)
