"""Filters for the pages: exact money, money to the cent, token counts, UTC times."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from django import template

from billing.pricing import format_cost

register = template.Library()

CENT = Decimal("0.01")


@register.filter
def exact(amount: Decimal | None) -> str:
    """The exact decimal, no exponent, no trailing zeros (`0.0045`)."""
    return "—" if amount is None else format_cost(Decimal(amount))


@register.filter
def cents(amount: Decimal | None) -> str:
    """Rounded half up to the cent, with thousands separators (`1,234.57`)."""
    if amount is None:
        return "—"
    return f"{Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP):,}"


@register.filter
def count(value: int | None) -> str:
    """A whole number with thousands separators."""
    return "—" if value is None else f"{int(value):,}"


@register.filter
def utc(value: datetime | None) -> str:
    """A moment as `2026-01-31 23:59 UTC`."""
    if value is None:
        return "—"
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
