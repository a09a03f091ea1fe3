"""The SVG bar charts' geometry: round axis tops, stacked heights in proportion, exact labels."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from console import charts


@pytest.mark.parametrize(
    ("value", "top"),
    [
        (0, 4),
        (3, 4),
        (5, 8),
        (17, 20),
        (Decimal(0), Decimal(1)),
        (Decimal("0.0123"), Decimal("0.02")),
        (Decimal("1.5"), Decimal(2)),
        (Decimal("2.3"), Decimal("2.5")),
        (Decimal("5"), Decimal(5)),
        (Decimal("730"), Decimal(1000)),
    ],
)
def test_the_axis_top_is_round_and_at_least_the_value(value, top):
    assert charts.axis_top(value) == top


def test_stacked_bars_are_proportional_and_labelled_with_exact_values():
    days = [date(2026, 1, 1), date(2026, 1, 2)]
    series = {
        "a": {days[0]: Decimal("1.5")},
        "b": {days[0]: Decimal("0.5"), days[1]: Decimal("0.000001")},
    }
    chart = charts.stacked_bars(days, series, fmt=lambda v: f"{v}")
    first_a, first_b, second_b = chart.rects
    plot_height = charts.HEIGHT - charts.TOP - charts.BOTTOM
    # The tallest day is 2.0, which is the axis top: its bar fills the plot exactly.
    assert first_a.height + first_b.height == pytest.approx(plot_height)
    assert first_a.height == pytest.approx(3 * first_b.height)
    assert first_b.y + first_b.height == pytest.approx(first_a.y)  # b is stacked on a
    assert first_a.color != first_b.color and first_b.color == second_b.color
    assert second_b.title == "2026-01-02 b: 0.000001"
    assert [t.label for t in chart.y_ticks] == ["0", "0.5", "1", "1.5", "2"]
    assert [item.label for item in chart.legend] == ["a", "b"]


def test_an_empty_range_draws_no_bars_but_keeps_its_axes():
    days = [date(2026, 1, d) for d in range(1, 32)]
    chart = charts.stacked_bars(days, {"": {}}, fmt=str)
    assert chart.empty and chart.legend == []
    assert [t.label for t in chart.y_ticks] == ["0", "1", "2", "3", "4"]
    assert len(chart.x_ticks) == 16  # every other day of 31 labelled
