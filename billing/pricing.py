"""Usage buckets times a price card gives a cost. Pure: no ORM, no floats, no rounding.

Rates are per 1M tokens. Buckets are disjoint: uncached input, cached input read, cache write and
output (reasoning is inside output, never on top). A card without a cache-write rate prices cache
writes at the input rate. The result keeps full precision; invoices round per line, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

ONE_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Rates:
    input_per_1m: Decimal
    cached_input_per_1m: Decimal
    output_per_1m: Decimal
    cache_write_per_1m: Decimal | None = None
    currency: str = "USD"

    @classmethod
    def of(cls, card: Any) -> Rates:
        """A price card's rates: a PriceCard, or a mapping with its fields (a `.values()` row)."""
        get = card.get if isinstance(card, Mapping) else card.__getattribute__
        return cls(**{name: get(name) for name in _FIELDS})


_FIELDS = ("input_per_1m", "cached_input_per_1m", "output_per_1m", "cache_write_per_1m", "currency")


def usage_cost(
    rates: Rates,
    *,
    input_tokens: int,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    output_tokens: int = 0,
) -> Decimal:
    """The exact cost of one request's tokens (uncached input, cached read, cache write, output)."""
    for name, value in (
        ("input_tokens", input_tokens),
        ("cached_input_tokens", cached_input_tokens),
        ("cache_write_tokens", cache_write_tokens),
        ("output_tokens", output_tokens),
    ):
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")
    cache_write_rate = rates.input_per_1m if rates.cache_write_per_1m is None else rates.cache_write_per_1m
    micro = (
        input_tokens * rates.input_per_1m
        + cached_input_tokens * rates.cached_input_per_1m
        + cache_write_tokens * cache_write_rate
        + output_tokens * rates.output_per_1m
    )
    return micro / ONE_MILLION


def format_cost(amount: Decimal) -> str:
    """The exact decimal as a plain string (no exponent, no trailing zeros beyond the integer)."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
