"""Bar charts as plain geometry for an inline SVG the template draws: no JavaScript, no CDN.

Pure: takes values per day and per series (one series, or one per model for stacked bars) and
returns rectangles, axis ticks and a legend. Floats are used for pixel positions only; the values
in the labels are the exact ones, formatted by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

Number = int | Decimal

# Distinguishable with common colour-vision deficiencies (Okabe & Ito), dark enough on white.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C6D1F", "#333333"]

WIDTH = 720
HEIGHT = 240
LEFT = 72  # room for the value axis labels
BOTTOM = 24  # room for the day labels
TOP = 10
RIGHT = 8
TICKS = 4


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True, slots=True)
class LegendItem:
    color: str
    label: str


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_bottom: float
    rects: list[Rect]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    legend: list[LegendItem]

    @property
    def empty(self) -> bool:
        return not self.rects


def axis_top(value: Number) -> Number:
    """A round top for the value axis at or above `value`: for counts a multiple of 4 (whole
    ticks), for money 1, 2, 2.5 or 5 x 10^n."""
    if isinstance(value, int):
        return max(TICKS, math.ceil(value / TICKS) * TICKS)
    if value <= 0:
        return Decimal(1)
    exponent = Decimal(1).scaleb(math.floor(math.log10(value)))
    for step in ("1", "2", "2.5", "5", "10"):
        if Decimal(step) * exponent >= value:
            return (Decimal(step) * exponent).normalize()
    raise AssertionError("unreachable: 10 x 10^floor(log10(v)) exceeds v")


def stacked_bars(
    days: Sequence[date], series: Mapping[str, Mapping[date, Number]], *, fmt: Callable[[Number], str] = str
) -> BarChart:
    """One bar per day, stacked by series in the mapping's order; a series named "" has no legend."""
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    bottom = float(TOP + plot_height)
    money = any(isinstance(v, Decimal) for values in series.values() for v in values.values())
    zero: Number = Decimal(0) if money else 0
    totals = [sum((values.get(day, zero) for values in series.values()), zero) for day in days]
    top = axis_top(max(totals, default=zero))
    slot = plot_width / max(len(days), 1)
    bar_width = max(slot * 0.7, 1.0)
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    rects: list[Rect] = []
    for index, day in enumerate(days):
        x = LEFT + index * slot + (slot - bar_width) / 2
        y = bottom
        for name, values in series.items():
            value = values.get(day, zero)
            if not value:
                continue
            height = float(value) / float(top) * plot_height
            y -= height
            title = f"{day:%Y-%m-%d}" + (f" {name}" if name else "") + f": {fmt(value)}"
            rects.append(Rect(round(x, 2), round(y, 2), round(bar_width, 2), round(height, 2), colors[name], title))
    y_ticks = [
        Tick(
            round(bottom - plot_height * i / TICKS, 2),
            fmt(top * i // TICKS if isinstance(top, int) else top * i / TICKS),
        )
        for i in range(TICKS + 1)
    ]
    every = max(1, math.ceil(len(days) / 16))
    x_ticks = [
        Tick(round(LEFT + i * slot + slot / 2, 2), f"{day:%d}" if len(days) <= 31 else f"{day:%m-%d}")
        for i, day in enumerate(days)
        if i % every == 0
    ]
    return BarChart(
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        plot_bottom=bottom,
        rects=rects,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        legend=[LegendItem(colors[name], name) for name in series if name],
    )
