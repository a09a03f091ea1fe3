"""What the model docs pages show, read from the catalog (billing.Model), its price card in effect now and the
gateway's own request spec (gateway.spec.ModelSpec, built by the same constructor the gateway's snapshot uses),
so the page's fields table and the gateway's validation come from one object and cannot disagree."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.models import Model, PriceCard
from billing.selectors import price_card_for
from gateway.spec import FieldSpec, ModelSpec
from modeldocs.examples import PLACEHOLDER_KEY, Example, build_examples, payload_json
from modeldocs.responses import shapes_for

logger = logging.getLogger(__name__)

ENDPOINT_PATH = "/api/v1/chat/completions"

CAPABILITY_LABELS = {
    "chat": "Chat",
    "streaming": "Streaming",
    "tools": "Tools",
    "vision": "Vision",
    "reasoning": "Reasoning",
    "json_mode": "JSON mode",
}


def capability_label(name: str) -> str:
    return CAPABILITY_LABELS.get(name) or name.replace("_", " ").capitalize()


def format_rate(value: Decimal) -> str:
    """A per-1M rate as the page shows it: at least 6 decimal places (the reference page's $1.500000), more
    when the card has them. Never rounded: Decimal(format_rate(x)) == x."""
    exponent = value.normalize().as_tuple().exponent
    places = max(6, -exponent if isinstance(exponent, int) and exponent < 0 else 0)
    return f"{value:.{places}f}"


@dataclass(frozen=True, slots=True)
class Price:
    label: str  # "input", "cached input", "output", "cache write"
    per_1m: Decimal
    currency: str

    @property
    def shown(self) -> str:
        symbol = "$" if self.currency == "USD" else f"{self.currency} "
        return f"{symbol}{format_rate(self.per_1m)}"


def prices_of(card: PriceCard | None) -> tuple[Price, ...]:
    if card is None:
        return ()
    rows = [
        ("input", card.input_per_1m),
        ("cached input", card.cached_input_per_1m),
        ("output", card.output_per_1m),
    ]
    if card.cache_write_per_1m is not None:
        rows.append(("cache write", card.cache_write_per_1m))
    return tuple(Price(label, value, card.currency) for label, value in rows)


@dataclass(frozen=True, slots=True)
class FieldRow:
    """One row of the "Request fields" table, straight from a FieldSpec."""

    field: str
    type: str
    required: str
    accepted: str
    description: str

    @classmethod
    def of(cls, row: FieldSpec) -> FieldRow:
        return cls(row.name, row.type, row.required_label, row.accepted_label, row.description)


def fields_table(spec: ModelSpec) -> tuple[FieldRow, ...]:
    return tuple(FieldRow.of(row) for row in spec.fields)


def spec_of(model: Model) -> ModelSpec | None:
    """The gateway's spec for this catalog row, or None when the gateway would refuse to serve it."""
    try:
        return ModelSpec.from_model(model)
    except (ValueError, TypeError, KeyError) as exc:
        logger.warning("model %s has an invalid spec: its docs page is not shown: %s", model.slug, exc)
        return None


def example_payload(model: Model) -> dict[str, Any]:
    """The catalog's example payload (spec.example), or the smallest valid one."""
    example = (model.spec or {}).get("example")
    if isinstance(example, dict) and example:
        return example
    return {
        "model": model.slug,
        "messages": [{"role": "user", "content": "Explain this model in three practical bullet points."}],
        "stream": True,
    }


def integration_notes(model: Model, spec: ModelSpec) -> tuple[str, ...]:
    """The "Connect" list, in the reference page's order, from the catalog row and its spec."""
    notes = [
        f"Provider: {model.provider}",
        f"Endpoint type: {model.endpoint_type}",
        f"Context window: {spec.context_window:,} tokens",
        f"Max output: {spec.max_output_tokens:,} tokens",
    ]
    capabilities = spec.capabilities
    if "streaming" in capabilities:
        notes.append("Streaming supported")
    if spec.has_tools:
        notes.append("Tool/function calling supported")
    if "vision" in capabilities or "file" in spec.content_parts:
        notes.append("Inline images/documents supported through message parts")
    if "json_mode" in capabilities:
        notes.append("JSON mode supported through `response_format`")
    effort = spec.row("reasoning_effort")
    if effort is not None and effort.accepted:
        notes.append(f"Reasoning controls: {', '.join(effort.accepted)}")
    others = [t for t in model.endpoint_types or () if t != model.endpoint_type]
    if others:
        # e.g. a Responses-only deployment: the request above does not change, Omixa translates
        notes.append(f"Routes may also use: {', '.join(others)} (same request; Omixa translates)")
    return tuple(notes)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    model: Model
    spec: ModelSpec
    prices: tuple[Price, ...]

    @property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(capability_label(c) for c in self.model.capabilities or ())

    def price(self, label: str) -> Price | None:
        return next((p for p in self.prices if p.label == label), None)

    @property
    def input_price(self) -> Price | None:
        return self.price("input")

    @property
    def cached_input_price(self) -> Price | None:
        return self.price("cached input")

    @property
    def output_price(self) -> Price | None:
        return self.price("output")

    @property
    def cache_write_price(self) -> Price | None:
        return self.price("cache write")


def catalog(*, at: datetime) -> list[CatalogEntry]:
    """Every active model the gateway can serve, with its prices in effect at `at`."""
    out = []
    for model in Model.objects.filter(is_active=True).order_by("category", "name"):
        spec = spec_of(model)
        if spec is not None:
            out.append(CatalogEntry(model, spec, prices_of(price_card_for(model=model, at=at))))
    return out


@dataclass(frozen=True, slots=True)
class ModelDoc:
    model: Model
    spec: ModelSpec
    card: PriceCard | None
    prices: tuple[Price, ...]
    endpoint: str
    fields: tuple[FieldRow, ...]
    notes: tuple[str, ...]
    payload: dict[str, Any]
    payload_json: str
    response: dict[str, Any] | None  # {"completion", "chunk", "usage_chunk"}
    examples: tuple[Example, ...]
    api_key_placeholder: str = PLACEHOLDER_KEY

    @property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(capability_label(c) for c in self.model.capabilities or ())

    def response_json(self, name: str) -> str:
        return "" if self.response is None else json.dumps(self.response[name], indent=4, ensure_ascii=False)

    @property
    def completion_json(self) -> str:
        return self.response_json("completion")

    @property
    def chunk_line(self) -> str:
        return "" if self.response is None else _sse_line(self.response["chunk"])

    @property
    def usage_chunk_line(self) -> str:
        return "" if self.response is None else _sse_line(self.response["usage_chunk"])


def _sse_line(event: dict[str, Any]) -> str:
    """An event as the gateway writes it on the wire: compact JSON after `data: `."""
    return "data: " + json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def model_doc(*, slug: str, at: datetime, base_url: str) -> ModelDoc | None:
    """The page of an active, servable model; None for anything else (the view answers 404).

    `base_url` is the scheme and host the page is served on (no trailing slash): the examples call it.
    """
    model = Model.objects.filter(slug=slug, is_active=True).first()
    if model is None:
        return None
    spec = spec_of(model)
    if spec is None:
        return None
    card = price_card_for(model=model, at=at)
    endpoint = base_url.rstrip("/") + ENDPOINT_PATH
    payload = example_payload(model)
    return ModelDoc(
        model=model,
        spec=spec,
        card=card,
        prices=prices_of(card),
        endpoint=endpoint,
        fields=fields_table(spec),
        notes=integration_notes(model, spec),
        payload=payload,
        payload_json=payload_json(payload),
        response=shapes_for(slug=model.slug, endpoint_type=model.endpoint_type, card=card),
        examples=build_examples(payload=payload, endpoint=endpoint),
    )
