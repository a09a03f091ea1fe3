"""The response shapes the model pages show are real gateway answers: for each route family, a live gateway (uvicorn)
answers a catalog model's example payload through that family's mock upstream, and the fresh answer must have
exactly the recorded shape (every key, every value's JSON type) of modeldocs/recorded_responses.json.

Re-record after a deliberate change of the answer's shape:
    OMIXA_RECORD_DOCS_RESPONSES=1 .venv/bin/python -m pytest -q tests/test_modeldocs_responses.py
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import httpx
import orjson
import pytest

from billing.models import Model
from billing.selectors import price_card_for
from gateway.services import provider_key_add
from modeldocs import responses
from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.anthropic_upstream import anthropic_upstream  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.mocks.vertex_upstream import vertex_upstream  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

RECORD = os.environ.get("OMIXA_RECORD_DOCS_RESPONSES") == "1"

# endpoint type → (catalog model, mock fixture name)
FAMILIES = {
    "azure_openai_v1_chat": ("codex-mini", "mock_upstream"),
    "openai_chat": ("gpt-4.1-mini", "mock_upstream"),
    "google_vertex": ("gemini-2.5-flash", "vertex_upstream"),
    "anthropic_messages": ("claude-sonnet-4-5", "anthropic_upstream"),
}


def shape(value: Any) -> Any:
    """Keys and JSON types, not values: {"a": [1]} → {"a": ["int"]}."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


def add_route(family: str, slug: str, mock, gateway) -> None:
    if family == "azure_openai_v1_chat":
        mock_route(gateway, mock, model_slug=slug, deployment=slug)
        return
    provider, key = {
        "openai_chat": ("openai", getattr(mock, "openai_key", None)),
        "google_vertex": ("google-vertex", getattr(mock, "api_key", None)),
        "anthropic_messages": ("anthropic", getattr(mock, "api_key", None)),
    }[family]
    provider_key_add(model_slug=slug, provider=provider, base_url=mock.url, api_key=key, deployment=slug, priority=10)
    gateway.refresh()


def sse_events(body: bytes) -> list[dict[str, Any]]:
    events = []
    for block in body.split(b"\n\n"):
        block = block.strip()
        if block.startswith(b"data: ") and block != b"data: [DONE]":
            events.append(orjson.loads(block[len(b"data: ") :]))
    return events


def live_answers(gateway, world, slug: str) -> dict[str, Any]:
    example = Model.objects.get(slug=slug).spec["example"]
    headers = {"Authorization": f"Bearer {world.key}"}
    url = gateway.api + "/chat/completions"
    plain = httpx.post(url, headers=headers, json={**example, "stream": False}, timeout=30)
    assert plain.status_code == 200, plain.text
    streamed = httpx.post(
        url, headers=headers, json={**example, "stream": True, "stream_options": {"include_usage": True}}, timeout=30
    )
    assert streamed.status_code == 200, streamed.text
    events = sse_events(streamed.content)
    chunk = next(e for e in events if e.get("choices") and (e["choices"][0].get("delta") or {}).get("content"))
    usage_chunk = next(e for e in events if e.get("usage"))
    return {"model": slug, "completion": plain.json(), "chunk": chunk, "usage_chunk": usage_chunk}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_recorded_response_shape_is_what_the_gateway_answers_now(family, request, gateway, world):
    slug, fixture = FAMILIES[family]
    mock = request.getfixturevalue(fixture)
    add_route(family, slug, mock, gateway)
    fresh = live_answers(gateway, world, slug)
    if RECORD:
        recorded = json.loads(responses.RECORDINGS.read_text(encoding="utf-8")) if responses.RECORDINGS.exists() else {}
        recorded[family] = fresh
        responses.RECORDINGS.write_text(json.dumps(recorded, indent=2) + "\n", encoding="utf-8")
        responses.recordings.cache_clear()
    stored = responses.recordings()[family]
    for name in ("completion", "chunk", "usage_chunk"):
        assert shape(fresh[name]) == shape(stored[name]), f"{family} {name}: the gateway's answer changed shape"
    assert stored["completion"]["object"] == "chat.completion"
    assert stored["chunk"]["object"] == "chat.completion.chunk"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_page_shapes_recompute_cost_like_the_gateway(family, world):
    """For the recorded model itself, the page's recomputed `usage.cost` equals what the gateway answered."""
    from django.utils import timezone

    slug, _ = FAMILIES[family]
    model = Model.objects.get(slug=slug)
    card = price_card_for(model=model, at=timezone.now())
    stored = copy.deepcopy(responses.recordings()[family])
    shown = responses.shapes_for(slug=slug, endpoint_type=model.endpoint_type, card=card)
    assert shown["completion"] == stored["completion"]
    assert shown["usage_chunk"] == stored["usage_chunk"]
    other = responses.shapes_for(slug="renamed", endpoint_type=family, card=None)
    assert other["completion"]["model"] == "renamed" and other["completion"]["usage"]["cost"] is None
