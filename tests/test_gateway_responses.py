"""codex-mini served by a Responses-only route, through Omixa's real surface (uvicorn, the official `openai` SDK's
chat completions, raw HTTP) against the mock Responses API (tests/mocks/responses_upstream.py), which refuses
chat-shaped requests as the service does. Also: failover from a chat route to a Responses route."""

from __future__ import annotations

import json
import time

import httpx
import openai
import orjson
import pytest
from django.urls import reverse

from billing.models import LedgerEntry, Model, PriceCard, UsageEvent
from billing.pricing import Rates, format_cost, usage_cost
from billing.services import usage_price
from gateway.models import ProviderKey
from gateway.services import provider_key_add
from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.mocks.responses_upstream import DEFAULT_SUMMARY, DEFAULT_TEXT, Scenario, responses_upstream  # noqa: F401
from tests.mocks.upstream import Scenario as ChatScenario
from tests.test_admin import provider_form, staff  # noqa: F401
from tests.test_gateway_streams import usage_event

PNG = "data:image/png;base64,iVBORw0KGgo="
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Return order status by ID.",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        },
    }
]
CACHED = {"input_tokens": 2100, "input_tokens_details": {"cached_tokens": 1536}}


@pytest.fixture
def responses_route(world, gateway, responses_upstream):
    return mock_route(gateway, responses_upstream, endpoint_type="azure_openai_v1_responses", name="responses-only")


@pytest.fixture
def client(gateway, world):
    return openai.OpenAI(base_url=gateway.api, api_key=world.key, max_retries=0, timeout=20)


def priced_exactly(gateway, request_id: str, cost: str) -> UsageEvent:
    """The usage event's buckets priced by billing/pricing.py give the answer's `usage.cost`, and the ledger
    entry the billing worker writes for it holds the same amount."""
    event = usage_event(gateway, request_id, timeout=20)  # a loaded machine may be slow to write it
    card = PriceCard.objects.get(model__slug="codex-mini", service_tier="")
    rates = Rates(card.input_per_1m, card.cached_input_per_1m, card.output_per_1m, card.cache_write_per_1m)
    expected = usage_cost(
        rates,
        input_tokens=event.input_tokens,
        cached_input_tokens=event.cached_input_tokens,
        cache_write_tokens=event.cache_write_tokens,
        output_tokens=event.output_tokens,
    )
    assert cost == format_cost(expected)
    # The gateway's writer prices it too (eagerly); a run that finds the row locked by it skips it, so
    # wait for whichever commits.
    usage_price(request_ids=[request_id])
    deadline = time.monotonic() + 20
    while not LedgerEntry.objects.filter(usage_event=event).exists():
        assert time.monotonic() < deadline, "the usage event was never priced"
        time.sleep(0.05)
    assert LedgerEntry.objects.get(usage_event=event).amount == expected
    return event


# ------------------------------------------------------------------------------------------------
# chat completions served by a Responses-only route


def test_plain_chat_is_served_through_the_responses_api_and_priced_exactly(
    client, gateway, responses_route, responses_upstream
):
    responses_upstream.always(Scenario(usage=CACHED))
    raw = client.chat.completions.with_raw_response.create(
        model="codex-mini", messages=[{"role": "user", "content": "Say hello."}], reasoning_effort="low"
    )
    answer = raw.parse()
    assert answer.object == "chat.completion" and answer.model == "codex-mini"
    assert answer.choices[0].message.content == DEFAULT_TEXT and answer.choices[0].finish_reason == "stop"
    upstream = responses_upstream.last
    assert upstream.path == "/openai/v1/responses"
    assert upstream.headers["api-key"] == responses_upstream.azure_key and "authorization" not in upstream.headers
    sent = upstream.json
    assert "messages" not in sent and sent["input"][0]["content"] == [{"type": "input_text", "text": "Say hello."}]
    assert sent["store"] is False and sent["reasoning"] == {"effort": "low"}

    usage = answer.usage
    assert usage.prompt_tokens == 2100 and usage.prompt_tokens_details.cached_tokens == 1536
    assert usage.completion_tokens_details.reasoning_tokens == 64
    request_id = raw.headers["x-request-id"]
    assert raw.headers["x-omixa-route"] == str(responses_route.id)
    event = priced_exactly(gateway, request_id, usage.model_extra["cost"])
    assert (event.input_tokens, event.cached_input_tokens, event.reasoning_tokens) == (2100 - 1536, 1536, 64)
    assert event.output_tokens == usage.completion_tokens
    assert event.endpoint_type == "azure_openai_v1_responses" and event.route_id == responses_route.id


def test_system_prompt_becomes_instructions(client, responses_route, responses_upstream):
    client.chat.completions.create(
        model="codex-mini",
        messages=[{"role": "system", "content": "You are a concise API assistant."}, {"role": "user", "content": "Hi"}],
    )
    sent = responses_upstream.last.json
    assert sent["instructions"] == "You are a concise API assistant."
    assert [item["role"] for item in sent["input"]] == ["user"]


def test_stream_with_usage_arrives_as_chat_chunks(client, gateway, responses_route, responses_upstream):
    responses_upstream.always(Scenario(usage=CACHED))
    with client.chat.completions.with_streaming_response.create(
        model="codex-mini",
        messages=[{"role": "user", "content": "Stream please."}],
        stream=True,
        stream_options={"include_usage": True},
    ) as raw:
        request_id = raw.headers["x-request-id"]
        chunks = list(raw.parse())
    assert all(chunk.object == "chat.completion.chunk" and chunk.model == "codex-mini" for chunk in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.prompt_tokens == 2100
    assert responses_upstream.last.json["stream"] is True
    event = priced_exactly(gateway, request_id, usage.model_extra["cost"])
    assert event.stream and event.outcome == "completed"


def test_tools_round_trip_pairs_call_ids(client, responses_route, responses_upstream):
    first = client.chat.completions.create(
        model="codex-mini",
        messages=[{"role": "user", "content": "Where is order A-17?"}],
        tools=TOOLS,
        tool_choice="required",
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "lookup_order" and json.loads(call.function.arguments) == {"order_id": "A-17"}
    tools_sent = responses_upstream.last.json["tools"]
    assert tools_sent[0]["name"] == "lookup_order" and tools_sent[0]["strict"] is False

    second = client.chat.completions.create(
        model="codex-mini",
        messages=[
            {"role": "user", "content": "Where is order A-17?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'},
        ],
        tools=TOOLS,
    )
    assert second.choices[0].message.content == DEFAULT_TEXT
    items = responses_upstream.last.json["input"]
    assert items[1] == {
        "type": "function_call",
        "call_id": call.id,
        "name": "lookup_order",
        "arguments": call.function.arguments,
    }
    assert items[2] == {"type": "function_call_output", "call_id": call.id, "output": '{"status": "shipped"}'}


def test_stream_tool_calls(client, responses_route, responses_upstream):
    stream = client.chat.completions.create(
        model="codex-mini",
        messages=[{"role": "user", "content": "Order A-17?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "lookup_order"}},
        stream=True,
    )
    arguments, ids, finish = "", set(), None
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or ():
            ids.add(call.id) if call.id else None
            arguments += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert json.loads(arguments) == {"order_id": "A-17"} and len(ids) == 1 and finish == "tool_calls"
    assert responses_upstream.last.json["tool_choice"] == {"type": "function", "name": "lookup_order"}


def test_reasoning_summary_is_reasoning_content(client, responses_route, responses_upstream):
    answer = client.chat.completions.create(
        model="codex-mini",
        messages=[{"role": "user", "content": "Think, then answer."}],
        reasoning_effort="high",
        extra_body={"show_thinking": True},
    )
    assert answer.choices[0].message.model_extra["reasoning_content"] == DEFAULT_SUMMARY
    assert responses_upstream.last.json["reasoning"] == {"effort": "high", "summary": "auto"}
    stream = client.chat.completions.create(
        model="codex-mini",
        messages=[{"role": "user", "content": "Think, then answer."}],
        stream=True,
        extra_body={"show_thinking": True},
    )
    deltas = [c.choices[0].delta for c in stream if c.choices]
    assert "".join(d.model_extra.get("reasoning_content") or "" for d in deltas) == DEFAULT_SUMMARY
    assert "".join(d.content or "" for d in deltas) == DEFAULT_TEXT
    # Without show_thinking the summary is neither asked nor shown.
    plain = client.chat.completions.create(model="codex-mini", messages=[{"role": "user", "content": "Hi"}])
    assert "reasoning_content" not in (plain.choices[0].message.model_extra or {})
    assert "summary" not in (responses_upstream.last.json.get("reasoning") or {})


def test_image_part_becomes_input_image(client, responses_route, responses_upstream):
    client.chat.completions.create(
        model="codex-mini",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}},
                ],
            }
        ],
    )
    assert responses_upstream.last.json["input"][0]["content"][1] == {
        "type": "input_image",
        "image_url": PNG,
        "detail": "high",
    }


def test_json_mode_becomes_text_format(client, responses_route, responses_upstream):
    answer = client.chat.completions.create(
        model="codex-mini",
        messages=[{"role": "user", "content": "Reply in JSON with an answer field."}],
        response_format={"type": "json_object"},
    )
    assert json.loads(answer.choices[0].message.content)["answer"] == "ok"
    assert responses_upstream.last.json["text"] == {"format": {"type": "json_object"}}
    schema = {
        "name": "order",
        "schema": {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]},
    }
    answer = client.chat.completions.create(
        model="codex-mini",
        messages=[{"role": "user", "content": "Status of A-17?"}],
        response_format={"type": "json_schema", "json_schema": schema},
    )
    assert json.loads(answer.choices[0].message.content) == {"status": "ok"}
    assert responses_upstream.last.json["text"]["format"] == {"type": "json_schema", **schema}


def test_output_limit_is_finish_reason_length(client, responses_route, responses_upstream):
    responses_upstream.script(Scenario(text="word " * 500))
    answer = client.chat.completions.create(
        model="codex-mini", messages=[{"role": "user", "content": "Long."}], max_tokens=100, reasoning_effort="low"
    )
    assert answer.choices[0].finish_reason == "length"
    assert responses_upstream.last.json["max_output_tokens"] == 100


def test_stop_on_a_responses_only_model_is_a_400_naming_it_with_nothing_sent(
    gateway, world, responses_route, responses_upstream
):
    answer = httpx.post(
        gateway.api + "/chat/completions",
        headers={"Authorization": f"Bearer {world.key}"},
        json={"model": "codex-mini", "messages": [{"role": "user", "content": "Hi"}], "stop": ["END"]},
        timeout=20,
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "stop" and error["type"] == "invalid_request_error" and "'stop'" in error["message"]
    assert responses_upstream.requests == []


def test_openai_responses_route_uses_bearer_and_v1_path(client, world, gateway, responses_upstream):
    provider_key_add(
        model_slug="codex-mini",
        provider="openai",
        endpoint_type="openai_responses",
        base_url=responses_upstream.url + "/v1",
        api_key=responses_upstream.openai_key,
        deployment="codex-mini",
        priority=10,
    )
    gateway.refresh()
    answer = client.chat.completions.create(model="codex-mini", messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content == DEFAULT_TEXT
    sent = responses_upstream.last
    assert sent.path == "/v1/responses" and sent.headers["authorization"] == f"Bearer {responses_upstream.openai_key}"
    assert world.key not in orjson.dumps(sent.headers).decode()


def test_retention_follows_the_route_flag(client, gateway, world, responses_upstream):
    mock_route(gateway, responses_upstream, endpoint_type="azure_openai_v1_responses", store=True)
    client.chat.completions.create(model="codex-mini", messages=[{"role": "user", "content": "Hi"}])
    assert responses_upstream.last.json["store"] is True


# ------------------------------------------------------------------------------------------------
# failover between route kinds


@pytest.fixture
def chat_then_responses(world, gateway, mock_upstream, responses_upstream):
    chat = mock_route(gateway, mock_upstream, priority=1, name="chat-first")
    responses = mock_route(
        gateway, responses_upstream, priority=2, name="responses-second", endpoint_type="azure_openai_v1_responses"
    )
    return chat, responses


def test_failover_from_a_chat_route_to_a_responses_route_in_one_request(
    client, gateway, chat_then_responses, mock_upstream, responses_upstream
):
    chat, responses = chat_then_responses
    mock_upstream.script(ChatScenario(status=503))
    raw = client.chat.completions.with_raw_response.create(
        model="codex-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == DEFAULT_TEXT
    assert raw.headers["x-omixa-attempts"] == f"{chat.id}:server,{responses.id}:ok"
    assert raw.headers["x-omixa-route"] == str(responses.id)
    assert mock_upstream.last.path == "/openai/v1/chat/completions"
    assert responses_upstream.last.path == "/openai/v1/responses"
    event = priced_exactly(gateway, raw.headers["x-request-id"], answer.usage.model_extra["cost"])
    assert event.route_id == responses.id and event.endpoint_type == "azure_openai_v1_responses"


def test_a_chat_route_on_a_responses_only_deployment_fails_over_to_the_responses_route(
    client, gateway, chat_then_responses, mock_upstream, responses_upstream
):
    # What Azure answers when chat completions reach a Responses-only deployment: the route's fault.
    chat, responses = chat_then_responses
    refused = {
        "error": {
            "code": "OperationNotSupported",
            "message": "The chatCompletion operation does not work with the specified model, codex-mini. "
            "Please choose different model and try again.",
        }
    }
    mock_upstream.script(ChatScenario(status=400, body=refused))
    raw = client.chat.completions.with_raw_response.create(
        model="codex-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    assert raw.parse().choices[0].message.content == DEFAULT_TEXT
    assert raw.headers["x-omixa-attempts"] == f"{chat.id}:not_found,{responses.id}:ok"


def test_stream_fails_over_before_the_first_event(
    client, gateway, chat_then_responses, mock_upstream, responses_upstream
):
    _chat, responses = chat_then_responses
    mock_upstream.script(ChatScenario(status=429, retry_after=1))
    with client.chat.completions.with_streaming_response.create(
        model="codex-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
    ) as raw:
        assert raw.headers["x-omixa-route"] == str(responses.id)
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == DEFAULT_TEXT


def test_a_stop_request_skips_the_responses_route_and_is_served_by_chat(
    client, gateway, world, mock_upstream, responses_upstream
):
    """`stop` cannot go to the Responses API: the chat route of the same model serves it, nothing is dropped."""
    first = mock_route(
        gateway, responses_upstream, priority=1, name="responses-first", endpoint_type="azure_openai_v1_responses"
    )
    second = mock_route(gateway, mock_upstream, priority=2, name="chat-second")
    raw = client.chat.completions.with_raw_response.create(
        model="codex-mini", messages=[{"role": "user", "content": "Hi"}], stop=["x"]
    )
    assert raw.headers["x-omixa-attempts"] == f"{first.id}:rejected,{second.id}:ok"
    assert mock_upstream.last.json["stop"] == ["x"] and responses_upstream.requests == []


def test_a_failed_response_mid_stream_ends_with_an_error_event(gateway, world, responses_route, responses_upstream):
    responses_upstream.script(Scenario(fail_after=8, chunk_delay=0.02))
    body = {"model": "codex-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    answer = httpx.post(
        gateway.api + "/chat/completions", headers={"Authorization": f"Bearer {world.key}"}, json=body, timeout=20
    )
    assert answer.status_code == 200
    events = [orjson.loads(b[6:]) for b in answer.content.split(b"\n\n") if b.startswith(b"data: {")]
    assert events[-1]["error"]["code"] == "upstream_stream_broken" and b"[DONE]" not in answer.content
    event = usage_event(gateway, answer.headers["x-request-id"])
    assert event.outcome == "broken_stream"


def test_a_failed_response_before_content_fails_over(client, gateway, world, responses_upstream, mock_upstream):
    first = mock_route(
        gateway, responses_upstream, priority=1, name="responses-first", endpoint_type="azure_openai_v1_responses"
    )
    second = mock_route(gateway, mock_upstream, priority=2, name="chat-second")
    responses_upstream.script(Scenario(fail_after=2))  # response.created, in_progress, then response.failed
    with client.chat.completions.with_streaming_response.create(
        model="codex-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
    ) as raw:
        assert raw.headers["x-omixa-attempts"] == f"{first.id}:server,{second.id}:ok"
        chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_operators_choose_the_responses_type_and_retention_in_the_admin(staff, catalog):
    codex = Model.objects.get(slug="codex-mini")
    form = provider_form(codex, endpoint_type="azure_openai_v1_responses", store="on")
    assert staff.post(reverse("admin:gateway_providerkey_add"), form, follow=True).status_code == 200
    key = ProviderKey.objects.get()
    assert key.endpoint_type == "azure_openai_v1_responses" and key.store is True


def test_a_refused_key_on_the_responses_route_leaves_rotation_and_chat_serves(
    client, gateway, world, mock_upstream, responses_upstream
):
    first = provider_key_add(
        model_slug="codex-mini",
        provider="azure-openai",
        endpoint_type="azure_openai_v1_responses",
        base_url=responses_upstream.url,
        api_key="wrong-key",
        priority=1,
        name="responses-bad-key",
    )
    second = mock_route(gateway, mock_upstream, priority=2, name="chat-second")
    raw = client.chat.completions.with_raw_response.create(
        model="codex-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    assert raw.headers["x-omixa-attempts"] == f"{first.id}:auth,{second.id}:ok"
    deadline = time.monotonic() + 10  # the gateway writes the reason off the request's path
    while not ProviderKey.objects.get(pk=first.pk).disabled_reason and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ProviderKey.objects.get(pk=first.pk).disabled_reason.startswith("auth: upstream answered 401")


def test_a_rate_limited_responses_only_model_is_a_503_with_retry_after(client, responses_route, responses_upstream):
    responses_upstream.script(Scenario(status=429, retry_after=7))
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="codex-mini", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.status_code == 503 and info.value.response.headers["retry-after"] == "7"
