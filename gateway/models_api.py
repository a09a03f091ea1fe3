"""OpenAI's model object, with Omixa's extra fields (pricing, limits, capabilities)."""

from __future__ import annotations

import time
from typing import Any

from billing.pricing import format_cost
from gateway.snapshot import ModelEntry


def model_object(model: ModelEntry) -> dict[str, Any]:
    rates = model.rates_at(time.time())
    pricing = None
    if rates is not None:
        pricing = {
            "currency": rates.currency,
            "unit": "per_1m_tokens",
            "input": format_cost(rates.input_per_1m),
            "cached_input": format_cost(rates.cached_input_per_1m),
            "cache_write": format_cost(rates.cache_write_per_1m) if rates.cache_write_per_1m is not None else None,
            "output": format_cost(rates.output_per_1m),
        }
    return {
        "id": model.slug,
        "object": "model",
        "created": model.created,
        "owned_by": model.provider,
        "name": model.name,
        "description": model.description,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "capabilities": list(model.capabilities),
        "reasoning": model.reasoning,
        "pricing": pricing,
    }
