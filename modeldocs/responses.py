"""The response shapes a model page shows: real gateway answers, recorded, not written by hand.

`recorded_responses.json` holds, per endpoint type, what Omixa answered to a catalog model's example payload
through a mock upstream of that family: the non-stream `chat.completion` body, the first stream event that
carries content, and the usage event (`stream_options.include_usage`). tests/test_modeldocs_responses.py sends
the same requests to a live gateway and fails when a fresh answer no longer has the recorded shape (every key,
every value's JSON type); `OMIXA_RECORD_DOCS_RESPONSES=1` re-records the file.

A page shows its route family's recording with `model` set to its slug and `usage.cost` recomputed from its
price card in effect now, by the same function the gateway uses (billing.pricing).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from billing.models import PriceCard
from billing.pricing import Rates, format_cost, usage_cost

RECORDINGS = Path(__file__).resolve().parent / "recorded_responses.json"
# Responses-API routes answer the chat client in the chat shape: they share their family's recording.
FALLBACK = {
    "azure_openai_v1_responses": "azure_openai_v1_chat",
    "openai_responses": "openai_chat",
}


@cache
def recordings() -> dict[str, Any]:
    return json.loads(RECORDINGS.read_text(encoding="utf-8"))


def recording_for(endpoint_type: str) -> dict[str, Any] | None:
    found = recordings().get(endpoint_type) or recordings().get(FALLBACK.get(endpoint_type, ""))
    return copy.deepcopy(found) if found else None


def usage_cost_text(usage: dict[str, Any], card: PriceCard | None) -> str | None:
    """`usage.cost` as the gateway computes it for these OpenAI-shaped usage numbers (None: unpriced)."""
    if card is None:
        return None
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    rates = Rates.of(card)
    return format_cost(
        usage_cost(
            rates,
            input_tokens=usage["prompt_tokens"] - cached,
            cached_input_tokens=cached,
            output_tokens=usage["completion_tokens"],
        )
    )


def shapes_for(*, slug: str, endpoint_type: str, card: PriceCard | None) -> dict[str, Any] | None:
    """{"completion", "chunk", "usage_chunk"} for a model's page, or None when its family has no recording."""
    found = recording_for(endpoint_type)
    if found is None:
        return None
    shapes = {name: found[name] for name in ("completion", "chunk", "usage_chunk")}
    for body in shapes.values():
        body["model"] = slug
        if isinstance(body.get("usage"), dict):
            body["usage"]["cost"] = usage_cost_text(body["usage"], card)
    return shapes
