"""The chat endpoint through its real surface: uvicorn, the official `openai` SDK and raw HTTP,
against a mock upstream that speaks Azure OpenAI's and OpenAI's wire formats."""

from __future__ import annotations

import copy
from decimal import Decimal

import httpx
import openai
import orjson
import pytest

from billing.models import UsageEvent
from gateway.services import provider_key_add
from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.mocks.upstream import Scenario
from tests.reference import REFERENCE_PAYLOAD


@pytest.fixture
def azure_route(world, gateway, mock_upstream):
    return mock_route(gateway, mock_upstream)


@pytest.fixture
def client(gateway, world):
    gateway.refresh()
    return openai.OpenAI(base_url=gateway.api, api_key=world.key, max_retries=0, timeout=20)


def _sse_events(body: bytes) -> list:
    events = []
    for block in body.split(b"\n\n"):
        block = block.strip()
        if block.startswith(b"data: "):
            data = block[len(b"data: ") :]
            events.append(data if data == b"[DONE]" else orjson.loads(data))
    return events


def test_sdk_non_stream_answer_has_openai_shape_usage_and_exact_cost(client, azure_route, mock_upstream, gateway):
    answer = client.chat.completions.create(
        model="codex-mini",
        messages=[{"role": "user", "content": "Say hello in five words."}],
        reasoning_effort="medium",
    )
    assert answer.object == "chat.completion"
    assert answer.model == "codex-mini"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content
    usage = answer.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # Exact cost from the page's prices: $1.50 in, $0.375 cached, $6.00 out per 1M.
    cached = usage.prompt_tokens_details.cached_tokens
    expected = (
        Decimal(usage.prompt_tokens - cached) * Decimal("1.50")
        + Decimal(cached) * Decimal("0.375")
        + Decimal(usage.completion_tokens) * Decimal("6.00")
    ) / Decimal(1_000_000)
    assert Decimal(answer.model_extra["usage"]["cost"] if "usage" in answer.model_extra else usage.cost) == expected


def test_upstream_gets_deployment_name_route_secret_and_reasoning_mapping(client, world, azure_route, mock_upstream):
    client.chat.completions.create(
        model="codex-mini",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=300,
        temperature=0.3,
        top_p=0.5,
        reasoning_effort="high",
        service_tier="priority",
    )
    sent = mock_upstream.last
    assert sent.path == "/openai/v1/chat/completions"
    assert sent.headers["api-key"] == mock_upstream.azure_key
    # The client's Omixa key never goes upstream, in any header.
    assert world.key not in orjson.dumps(sent.headers).decode()
    assert "authorization" not in sent.headers
    body = sent.json
    assert body["model"] == "codex-mini"
    assert body["max_completion_tokens"] == 300 and "max_tokens" not in body
    assert "temperature" not in body and "top_p" not in body  # stripped for reasoning models
    assert body["reasoning_effort"] == "high"
    assert "service_tier" not in body  # the route has no priority processing
    assert "show_thinking" not in body


def test_service_tier_sent_where_the_route_supports_priority(client, world, gateway, mock_upstream):
    from gateway.models import ProviderKey

    route = provider_key_add(
        model_slug="codex-mini",
        provider="azure-openai",
        base_url=mock_upstream.url,
        api_key=mock_upstream.azure_key,
        deployment="codex-mini",
        supports_priority=True,
    )
    assert ProviderKey.objects.get(pk=route.pk).supports_priority
    gateway.refresh()
    client.chat.completions.create(
        model="codex-mini", messages=[{"role": "user", "content": "hi"}], service_tier="priority"
    )
    assert mock_upstream.last.json["service_tier"] == "priority"


def test_reference_payload_streams_over_raw_http(gateway, world, azure_route, mock_upstream):
    response = httpx.post(
        gateway.api + "/chat/completions",
        headers={"Authorization": f"Bearer {world.key}"},
        json=REFERENCE_PAYLOAD,
        timeout=20,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-omixa-route"] == str(azure_route.pk)
    assert response.headers["x-request-id"]
    events = _sse_events(response.content)
    assert events[-1] == b"[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "codex-mini" for c in chunks)
    # The client did not ask for usage: no usage chunk, and no null usage keys.
    assert all("usage" not in c for c in chunks)
    assert any(c["choices"] and c["choices"][0].get("finish_reason") for c in chunks)
    # Upstream, usage was asked for anyway (so the request can be billed).
    assert mock_upstream.last.json["stream_options"] == {"include_usage": True}
    assert mock_upstream.last.json["max_completion_tokens"] == 2048
    assert mock_upstream.last.json["tools"] == REFERENCE_PAYLOAD["tools"]
    gateway.flush_usage()
    event = UsageEvent.objects.get(request_id=response.headers["x-request-id"])
    assert event.outcome == "completed" and event.stream and event.output_tokens > 0 and not event.estimated


def test_sdk_stream_with_include_usage_ends_with_usage_chunk_and_cost(client, azure_route, gateway):
    stream = client.chat.completions.create(
        model="codex-mini",
        messages=[{"role": "user", "content": "Stream me something."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert Decimal(last.usage.model_extra["cost"]) > 0
    assert len({c.id for c in chunks}) == 1  # Omixa's usage chunk keeps the stream's id


def test_show_thinking_surfaces_reasoning_content_only_when_asked(gateway, world, azure_route, mock_upstream):
    mock_upstream.always(Scenario(reasoning_text="Thinking about bullets."))
    payload = copy.deepcopy(REFERENCE_PAYLOAD)
    with_thinking = httpx.post(
        gateway.api + "/chat/completions", headers={"Authorization": f"Bearer {world.key}"}, json=payload, timeout=20
    )
    deltas = [c["choices"][0]["delta"] for c in _sse_events(with_thinking.content)[:-1] if c["choices"]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Thinking about bullets."
    payload["show_thinking"] = False
    without = httpx.post(
        gateway.api + "/chat/completions", headers={"Authorization": f"Bearer {world.key}"}, json=payload, timeout=20
    )
    deltas = [c["choices"][0]["delta"] for c in _sse_events(without.content)[:-1] if c["choices"]]
    assert not any("reasoning_content" in d for d in deltas)


def test_tool_calls_round_trip_non_stream_and_stream(client, azure_route, mock_upstream):
    tools = REFERENCE_PAYLOAD["tools"]
    mock_upstream.script(Scenario(tool_calls=[("lookup_order", {"order_id": "A-17"})]), times=2)
    answer = client.chat.completions.create(
        model="codex-mini",
        messages=[{"role": "user", "content": "Where is order A-17?"}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "lookup_order"}},
    )
    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "lookup_order"
    assert orjson.loads(call.function.arguments) == {"order_id": "A-17"}
    assert mock_upstream.last.json["tool_choice"] == {"type": "function", "function": {"name": "lookup_order"}}

    stream = client.chat.completions.create(
        model="codex-mini",
        messages=[{"role": "user", "content": "Where is order A-17?"}],
        tools=tools,
        stream=True,
    )
    arguments = ""
    names = set()
    for chunk in stream:
        for delta_call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments += delta_call.function.arguments or ""
            if delta_call.function.name:
                names.add(delta_call.function.name)
    assert names == {"lookup_order"}
    assert orjson.loads(arguments) == {"order_id": "A-17"}

    # The tool result goes back with the same id.
    follow_up = client.chat.completions.create(
        model="codex-mini",
        messages=[
            {"role": "user", "content": "Where is order A-17?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'},
        ],
        tools=tools,
    )
    assert follow_up.choices[0].message.content
    assert mock_upstream.last.json["messages"][2]["tool_call_id"] == call.id


def test_openai_route_uses_bearer_and_max_completion_tokens(client, world, gateway, mock_upstream):
    provider_key_add(
        model_slug="gpt-4.1-mini",
        provider="openai",
        base_url=mock_upstream.url + "/v1",  # typed with /v1: normalized away
        api_key=mock_upstream.openai_key,
        deployment="gpt-4.1-mini",
    )
    gateway.refresh()
    answer = client.chat.completions.create(
        model="gpt-4.1-mini",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            },
        ],
        max_tokens=50,
        temperature=0.2,
        response_format={"type": "json_object"},
        stop=["\n\n"],
    )
    assert answer.choices[0].message.content is not None
    sent = mock_upstream.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {mock_upstream.openai_key}"
    assert sent.json["temperature"] == 0.2  # kept for a non-reasoning model
    assert sent.json["response_format"] == {"type": "json_object"}
    assert sent.json["stop"] == ["\n\n"]
    assert sent.json["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png")
    assert sent.json.get("max_completion_tokens") == 50


def test_models_list_and_detail_carry_pricing_and_limits(client, world):
    models = {m.id: m for m in client.models.list()}
    assert {"codex-mini", "gpt-4.1-mini", "gemini-2.5-flash"} <= set(models)
    codex = client.models.retrieve("codex-mini")
    extra = codex.model_extra
    assert extra["context_window"] == 200_000 and extra["max_output_tokens"] == 100_000
    assert extra["pricing"] == {
        "currency": "USD",
        "unit": "per_1m_tokens",
        "input": "1.5",
        "cached_input": "0.375",
        "cache_write": None,
        "output": "6",
    }
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_client_request_id_is_kept_on_the_usage_record(gateway, world, azure_route):
    response = httpx.post(
        gateway.api + "/chat/completions",
        headers={"Authorization": f"Bearer {world.key}", "x-request-id": "client-abc-123"},
        json={"model": "codex-mini", "messages": [{"role": "user", "content": "hi"}]},
        timeout=20,
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] != "client-abc-123"
    gateway.flush_usage()
    event = UsageEvent.objects.get(request_id=response.headers["x-request-id"])
    assert event.client_request_id == "client-abc-123"
    assert event.workspace_id == world.workspace.id and event.api_key_id == world.key_row.id
    assert event.route_id == azure_route.pk and event.route_name == azure_route.name
    assert event.attempts[0]["outcome"] == "ok"


def test_a_model_with_a_broken_spec_is_skipped_not_the_whole_catalog(gateway, world, client):
    from billing.models import Model

    Model.objects.filter(slug="gpt-4.1-mini").update(spec={"fields": []})  # no model/messages rows
    gateway.refresh()
    served = {m.id for m in client.models.list()}
    assert "codex-mini" in served and "gpt-4.1-mini" not in served


def test_the_catalogs_example_request_is_the_reference_pages_payload():
    import json
    from pathlib import Path

    catalog = json.loads((Path(__file__).resolve().parents[1] / "billing/catalog/models.json").read_text())
    codex = next(m for m in catalog["models"] if m["slug"] == "codex-mini")
    assert codex["spec"]["example"] == REFERENCE_PAYLOAD
