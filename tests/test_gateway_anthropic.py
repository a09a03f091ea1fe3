"""claude-sonnet-4-5 through Omixa's real surface (uvicorn, the official `openai` SDK, raw HTTP) against a mock
of Anthropic's Messages API (tests/mocks/anthropic_upstream.py) that rejects what the real API rejects."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import openai
import orjson
import pytest

from billing.models import UsageEvent
from gateway.models import ProviderKey
from gateway.services import provider_key_add
from tests.gateway_fixtures import gateway, world  # noqa: F401
from tests.mocks.anthropic_upstream import DEFAULT_TEXT, DEFAULT_THINKING, Scenario, anthropic_upstream  # noqa: F401

MODEL = "claude-sonnet-4-5"
DEPLOYMENT = "claude-sonnet-4-5-20250929"
BACKUP = "claude-sonnet-4-5"  # the alias: a second route to the same model
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
CACHED_USAGE = {
    "input_tokens": 21,
    "cache_read_input_tokens": 1800,
    "cache_creation_input_tokens": 1200,
    "output_tokens": 35,
}


def add_route(mock, *, priority: int = 10, deployment: str = DEPLOYMENT, name: str | None = None, **kw) -> ProviderKey:
    return provider_key_add(
        model_slug=MODEL,
        provider="anthropic",
        base_url=mock.url,
        api_key=kw.pop("api_key", mock.api_key),
        deployment=deployment,
        priority=priority,
        name=name,
        **kw,
    )


@pytest.fixture
def claude_route(world, gateway, anthropic_upstream):
    row = add_route(anthropic_upstream)
    gateway.refresh()
    return row


@pytest.fixture
def two_routes(world, gateway, anthropic_upstream):
    first = add_route(anthropic_upstream, priority=1, name="primary")
    second = add_route(anthropic_upstream, priority=2, deployment=BACKUP, name="backup")
    gateway.refresh()
    return first, second


@pytest.fixture
def client(gateway, world):
    return openai.OpenAI(base_url=gateway.api, api_key=world.key, max_retries=0, timeout=20)


def expected_cost(usage: dict[str, int]) -> Decimal:
    """By hand, from the catalog's card: $3 input, $0.30 cache read, $3.75 cache write, $15 output per 1M."""
    return (
        Decimal(usage["input_tokens"]) * Decimal("3")
        + Decimal(usage["cache_read_input_tokens"]) * Decimal("0.30")
        + Decimal(usage["cache_creation_input_tokens"]) * Decimal("3.75")
        + Decimal(usage["output_tokens"]) * Decimal("15")
    ) / Decimal(1_000_000)


def event_for(gateway, request_id: str) -> UsageEvent:
    gateway.flush_usage()
    return UsageEvent.objects.get(request_id=request_id)


def post(gateway, world, body: dict) -> httpx.Response:
    return httpx.post(
        gateway.api + "/chat/completions", headers={"Authorization": f"Bearer {world.key}"}, json=body, timeout=20
    )


# ------------------------------------------------------------------------------------------------
# answers


def test_plain_chat_is_priced_exactly_with_cache_read_and_write(client, gateway, claude_route, anthropic_upstream):
    anthropic_upstream.always(Scenario(usage=CACHED_USAGE))
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}]
    )
    answer = raw.parse()
    assert answer.object == "chat.completion" and answer.model == MODEL
    assert answer.id.startswith("chatcmpl-msg_")
    choice = answer.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == DEFAULT_TEXT
    assert choice.finish_reason == "stop"
    usage = answer.usage
    assert usage.prompt_tokens == 21 + 1800 + 1200 and usage.completion_tokens == 35
    assert usage.prompt_tokens_details.cached_tokens == 1800
    assert usage.total_tokens == usage.prompt_tokens + 35
    assert Decimal(usage.model_extra["cost"]) == expected_cost(CACHED_USAGE) == Decimal("0.005628")

    sent = anthropic_upstream.last
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == anthropic_upstream.api_key
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.json["model"] == DEPLOYMENT and sent.json["max_tokens"] == 8192  # the model's default

    event = event_for(gateway, raw.headers["x-request-id"])
    assert (event.input_tokens, event.cached_input_tokens, event.cache_write_tokens, event.output_tokens) == (
        21,
        1800,
        1200,
        35,
    )
    assert event.outcome == "completed" and not event.estimated and event.endpoint_type == "anthropic_messages"
    assert event.route_id == claude_route.pk


def test_system_prompt_goes_top_level(client, claude_route, anthropic_upstream):
    client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are a concise API assistant."},
            {"role": "user", "content": "Explain this model."},
        ],
        max_tokens=300,
        temperature=0.3,
        user="customer-7",
    )
    body = anthropic_upstream.last.json
    assert body["system"] == [{"type": "text", "text": "You are a concise API assistant."}]
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["max_tokens"] == 300 and body["temperature"] == 0.3
    assert body["metadata"] == {"user_id": "customer-7"}


def test_multi_turn_with_tool_call_and_tool_result(client, claude_route, anthropic_upstream):
    question = {"role": "user", "content": "Where is order A-17?"}
    first = client.chat.completions.create(model=MODEL, messages=[question], tools=TOOLS, tool_choice="required")
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.id.startswith("toolu_") and call.function.name == "lookup_order"
    assert orjson.loads(call.function.arguments) == {"order_id": "A-17"}
    assert anthropic_upstream.last.json["tool_choice"] == {"type": "any"}
    assert anthropic_upstream.last.json["tools"][0]["input_schema"] == TOOLS[0]["function"]["parameters"]

    follow_up = client.chat.completions.create(
        model=MODEL,
        messages=[
            question,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'},
            {"role": "user", "content": "And in one word?"},
        ],
        tools=TOOLS,
        parallel_tool_calls=False,
    )
    assert follow_up.choices[0].message.content == DEFAULT_TEXT
    turns = anthropic_upstream.last.json["messages"]
    assert turns[1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": call.id, "name": "lookup_order", "input": {"order_id": "A-17"}}],
    }
    assert turns[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": '{"status": "shipped"}'},
            {"type": "text", "text": "And in one word?"},
        ],
    }
    assert anthropic_upstream.last.json["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_stream_with_include_usage_bills_the_cumulative_usage(client, gateway, claude_route, anthropic_upstream):
    anthropic_upstream.always(Scenario(usage=CACHED_USAGE))
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Stream me something."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    # message_delta's cumulative counts, not message_start's snapshot added to them
    assert last.usage.completion_tokens == 35 and last.usage.prompt_tokens == 3021
    assert Decimal(last.usage.model_extra["cost"]) == expected_cost(CACHED_USAGE)
    assert len({c.id for c in chunks}) == 1
    assert anthropic_upstream.last.json["stream"] is True
    assert "stream_options" not in anthropic_upstream.last.json
    event = event_for(gateway, raw.headers["x-request-id"])
    assert (event.input_tokens, event.cached_input_tokens, event.cache_write_tokens, event.output_tokens) == (
        21,
        1800,
        1200,
        35,
    )
    assert event.stream and event.outcome == "completed" and not event.estimated


def test_tool_calls_stream(client, claude_route, anthropic_upstream):
    anthropic_upstream.always(Scenario(text="Let me check.", tool_calls=[("lookup_order", {"order_id": "A-17"})]))
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Where is order A-17?"}], tools=TOOLS, stream=True
    )
    arguments, names, ids, finish = "", set(), set(), None
    text = ""
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text += delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
        for call in delta.tool_calls or ():
            assert call.index == 0
            arguments += call.function.arguments or ""
            if call.function.name:
                names.add(call.function.name)
            if call.id:
                ids.add(call.id)
    assert text == "Let me check." and names == {"lookup_order"} and len(ids) == 1
    assert orjson.loads(arguments) == {"order_id": "A-17"}
    assert finish == "tool_calls"


def test_reasoning_effort_maps_to_thinking_and_shows_it_when_asked(client, claude_route, anthropic_upstream):
    answer = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Think, then answer."}],
        reasoning_effort="low",
        temperature=0.5,
        extra_body={"show_thinking": True},
    )
    body = anthropic_upstream.last.json
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}  # the catalog's budget for low
    assert body["max_tokens"] == 2048 + 8192 and "temperature" not in body
    assert answer.choices[0].message.content == DEFAULT_TEXT
    assert answer.choices[0].message.model_extra["reasoning_content"] == DEFAULT_THINKING

    hidden = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Think, then answer."}], reasoning_effort="medium"
    )
    assert "reasoning_content" not in (hidden.choices[0].message.model_extra or {})
    assert anthropic_upstream.last.json["thinking"]["budget_tokens"] == 8192

    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Think, then answer."}],
        reasoning_effort="high",
        max_completion_tokens=30000,
        stream=True,
        extra_body={"show_thinking": True},
    )
    thinking = text = ""
    for chunk in stream:
        if chunk.choices:
            thinking += (chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
            text += chunk.choices[0].delta.content or ""
    assert thinking == DEFAULT_THINKING and text == DEFAULT_TEXT
    assert anthropic_upstream.last.json["thinking"]["budget_tokens"] == 24576
    assert anthropic_upstream.last.json["max_tokens"] == 30000


def test_tool_loop_keeps_thinking_when_the_client_sends_the_signed_blocks_back(
    client, claude_route, anthropic_upstream
):
    question = {"role": "user", "content": "Where is order A-17?"}
    anthropic_upstream.script(Scenario(tool_calls=[("lookup_order", {"order_id": "A-17"})]))
    first = client.chat.completions.create(model=MODEL, messages=[question], tools=TOOLS, reasoning_effort="low")
    assert "thinking" in anthropic_upstream.last.json
    assistant = first.choices[0].message.model_dump(exclude_none=True)
    # the signed thinking comes back verbatim (shown or not: the next turn needs it)
    assert assistant["thinking_blocks"][0]["thinking"] == DEFAULT_THINKING
    assert "reasoning_content" not in assistant
    call = first.choices[0].message.tool_calls[0]
    results = {"role": "tool", "tool_call_id": call.id, "content": "shipped"}
    follow_up = client.chat.completions.create(
        model=MODEL, messages=[question, assistant, results], tools=TOOLS, reasoning_effort="low"
    )
    assert follow_up.choices[0].message.content == DEFAULT_TEXT
    sent = anthropic_upstream.last.json
    assert sent["thinking"]["type"] == "enabled"  # the mock, like Anthropic, checks the block and its signature
    assert sent["messages"][1]["content"][0] == assistant["thinking_blocks"][0]

    # A client that drops them (or any OpenAI-shaped client) still gets its answer, without thinking.
    bare = {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]}
    again = client.chat.completions.create(
        model=MODEL, messages=[question, bare, results], tools=TOOLS, reasoning_effort="low"
    )
    assert again.choices[0].message.content == DEFAULT_TEXT
    assert "thinking" not in anthropic_upstream.last.json  # the real API would refuse it without the signed block


def test_tampered_thinking_blocks_are_the_clients_fault_and_malformed_ones_a_400(
    client, claude_route, anthropic_upstream
):
    question = {"role": "user", "content": "Where is order A-17?"}
    anthropic_upstream.script(Scenario(tool_calls=[("lookup_order", {"order_id": "A-17"})]))
    first = client.chat.completions.create(model=MODEL, messages=[question], tools=TOOLS, reasoning_effort="low")
    assistant = first.choices[0].message.model_dump(exclude_none=True)
    results = {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": "shipped"}
    assistant["thinking_blocks"][0]["thinking"] += " (edited)"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=[question, assistant, results], tools=TOOLS, reasoning_effort="low"
        )
    assert "signature" in caught.value.body["message"]
    assistant["thinking_blocks"] = [{"type": "thinking", "thinking": "no signature"}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=[question, assistant, results], tools=TOOLS, reasoning_effort="low"
        )
    assert caught.value.body["param"] == "messages[1].thinking_blocks[0]"


def test_a_streamed_tool_call_carries_its_signed_thinking_for_the_next_turn(client, claude_route, anthropic_upstream):
    question = {"role": "user", "content": "Where is order A-17?"}
    anthropic_upstream.script(Scenario(tool_calls=[("lookup_order", {"order_id": "A-17"})], text_chunk_chars=7))
    stream = client.chat.completions.create(
        model=MODEL, messages=[question], tools=TOOLS, reasoning_effort="low", stream=True
    )
    blocks, calls, finish = None, {}, None
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        blocks = (delta.model_extra or {}).get("thinking_blocks") or blocks
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": call.id, "name": "", "arguments": ""})
            entry["name"] += call.function.name or ""
            entry["arguments"] += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert blocks and blocks[0]["thinking"] == DEFAULT_THINKING  # joined from the thinking deltas
    call = calls[0]
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
        ],
        "thinking_blocks": blocks,
    }
    results = {"role": "tool", "tool_call_id": call["id"], "content": "shipped"}
    follow_up = client.chat.completions.create(
        model=MODEL, messages=[question, assistant, results], tools=TOOLS, reasoning_effort="low"
    )
    assert follow_up.choices[0].message.content == DEFAULT_TEXT
    assert anthropic_upstream.last.json["thinking"]["type"] == "enabled"


def test_forced_tool_use_with_reasoning_is_a_400_before_anything_is_sent(client, claude_route, anthropic_upstream):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            tools=TOOLS,
            tool_choice="required",
            reasoning_effort="low",
        )
    assert info.value.body["param"] == "tool_choice"
    assert anthropic_upstream.requests == []


def test_image_data_url_part(client, claude_route, anthropic_upstream):
    client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": PNG}},
                ],
            }
        ],
    )
    content = anthropic_upstream.last.json["messages"][0]["content"]
    assert content[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }


def test_pdf_file_part_becomes_a_document_block(client, claude_route, anthropic_upstream):
    client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Summarize."},
                    {
                        "type": "file",
                        "file": {"filename": "q3.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
                    },
                ],
            }
        ],
    )
    assert anthropic_upstream.last.json["messages"][0]["content"][1] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        "title": "q3.pdf",
    }


def test_stop_sequences(client, claude_route, anthropic_upstream):
    anthropic_upstream.always(Scenario(text="one two STOP three"))
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count."}], stop=["STOP"]
    )
    assert anthropic_upstream.last.json["stop_sequences"] == ["STOP"]
    assert answer.choices[0].message.content == "one two " and answer.choices[0].finish_reason == "stop"


def test_json_schema_mode_and_json_object_refused(client, claude_route, anthropic_upstream):
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    anthropic_upstream.always(Scenario(text='{"a": "b"}'))
    answer = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "JSON please."}],
        response_format={"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}},
    )
    assert orjson.loads(answer.choices[0].message.content) == {"a": "b"}
    assert anthropic_upstream.last.json["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "JSON"}], response_format={"type": "json_object"}
        )
    assert info.value.body["param"] == "response_format.type"


# ------------------------------------------------------------------------------------------------
# upstream errors


def test_upstream_400_is_passed_on_without_failover(gateway, world, two_routes, anthropic_upstream):
    first, _ = two_routes
    # Claude Sonnet 4.5 refuses temperature together with top_p: the provider's own 400, passed on.
    response = post(
        gateway,
        world,
        {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "temperature": 0.2, "top_p": 0.5},
    )
    assert response.status_code == 400
    assert "cannot both be specified" in response.json()["error"]["message"]
    assert response.headers["x-omixa-attempts"] == f"{first.pk}:client"
    assert len(anthropic_upstream.requests) == 1


@pytest.mark.parametrize(
    ("scenario", "outcome"),
    [
        (Scenario(status=429, retry_after=3), "rate_limited"),
        (Scenario(status=529), "server"),
        (Scenario(status=500), "server"),
    ],
)
def test_429_and_529_fail_over_to_the_second_route(gateway, world, two_routes, anthropic_upstream, scenario, outcome):
    first, second = two_routes
    anthropic_upstream.script(scenario, model=DEPLOYMENT)
    response = post(gateway, world, {"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    assert response.headers["x-omixa-route"] == str(second.pk)
    assert response.headers["x-omixa-attempts"] == f"{first.pk}:{outcome},{second.pk}:ok"
    assert [r.model for r in anthropic_upstream.requests] == [DEPLOYMENT, BACKUP]


def test_every_route_overloaded_is_502_and_rate_limited_is_503(gateway, world, two_routes, anthropic_upstream):
    anthropic_upstream.script(Scenario(status=529), times=2)
    response = post(gateway, world, {"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 502 and "Overloaded" in response.json()["error"]["message"]
    anthropic_upstream.script(Scenario(status=429, retry_after=7), times=2)
    response = post(gateway, world, {"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 503 and response.headers["Retry-After"] == "7"


def test_401_takes_the_key_out_of_rotation(gateway, world, anthropic_upstream):
    bad = add_route(anthropic_upstream, priority=1, name="revoked", api_key="sk-ant-api03-revoked-key-000000000000")
    good = add_route(anthropic_upstream, priority=2, deployment=BACKUP, name="good")
    gateway.refresh()
    response = post(gateway, world, {"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200 and response.headers["x-omixa-route"] == str(good.pk)
    assert response.headers["x-omixa-attempts"] == f"{bad.pk}:auth,{good.pk}:ok"
    deadline = time.monotonic() + 5
    while not ProviderKey.objects.get(pk=bad.pk).disabled_reason:
        assert time.monotonic() < deadline, "the key was not taken out of rotation"
        time.sleep(0.05)
    gateway.refresh()
    before = len(anthropic_upstream.requests_for(DEPLOYMENT))
    for _ in range(2):
        assert post(gateway, world, {"model": MODEL, "messages": [{"role": "user", "content": "y"}]}).headers[
            "x-omixa-route"
        ] == str(good.pk)
    assert len(anthropic_upstream.requests_for(DEPLOYMENT)) == before


def test_drained_credit_balance_400_is_quota_and_fails_over(gateway, world, two_routes, anthropic_upstream):
    first, second = two_routes
    # Anthropic answers a drained prepaid balance with a 400 invalid_request_error, not a 402 or 429.
    message = "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade."
    anthropic_upstream.script(Scenario(status=400, message=message), model=DEPLOYMENT)
    response = post(gateway, world, {"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200 and response.headers["x-omixa-route"] == str(second.pk)
    assert response.headers["x-omixa-attempts"] == f"{first.pk}:quota,{second.pk}:ok"


def test_stream_broken_before_content_fails_over(gateway, world, two_routes, anthropic_upstream):
    first, second = two_routes
    anthropic_upstream.script(Scenario(break_after=2), model=DEPLOYMENT)  # message_start, ping, then gone
    response = post(gateway, world, {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True})
    assert response.status_code == 200 and response.headers["x-omixa-route"] == str(second.pk)
    # the cut connection surfaces as a reset (connect) or an early end (server): both fail over
    assert response.headers["x-omixa-attempts"] in (
        f"{first.pk}:server,{second.pk}:ok",
        f"{first.pk}:connect,{second.pk}:ok",
    )
    assert b"data: [DONE]" in response.content


def test_error_event_mid_stream_ends_the_stream_with_an_error(gateway, world, claude_route, anthropic_upstream):
    # after two text deltas (spaced, so the first one commits the stream): an overloaded_error event
    anthropic_upstream.script(Scenario(error_after=5, chunk_delay=0.05))
    response = post(gateway, world, {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True})
    assert response.status_code == 200
    assert b"Overloaded" in response.content and b"data: [DONE]" not in response.content
    event = event_for(gateway, response.headers["x-request-id"])
    assert event.outcome == "broken_stream"
    assert event.input_tokens > 0 and event.output_tokens > 0  # message_start's input, an estimate of the output
    assert event.estimated


# ------------------------------------------------------------------------------------------------
# the mock is faithful: it refuses what the real API refuses


def _direct(mock, body: dict, **headers: str) -> httpx.Response:
    base = {"x-api-key": mock.api_key, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    base.update(headers)
    return httpx.post(mock.url + "/v1/messages", headers=base, content=orjson.dumps(body), timeout=10)


OK = {"model": DEPLOYMENT, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"max_completion_tokens": 10}, "max_completion_tokens: Extra inputs are not permitted"),
        ({"response_format": {"type": "json_object"}}, "response_format: Extra inputs"),
        ({"stream_options": {"include_usage": True}}, "stream_options: Extra inputs"),
        ({"n": 1}, "n: Extra inputs"),
        ({"frequency_penalty": 0.1}, "frequency_penalty: Extra inputs"),
        (
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]},
            'Unexpected role "system"',
        ),
        ({"max_tokens": None}, "max_tokens"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, "must be non-empty"),
        ({"tool_choice": "auto", "tools": [{"name": "f", "input_schema": {"type": "object"}}]}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools.0"),
        ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
        ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "greater than or equal to 1024"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "`max_tokens` must be greater than"),
        (
            {"max_tokens": 5000, "thinking": {"type": "enabled", "budget_tokens": 2048}, "temperature": 0.3},
            "temperature",
        ),
        (
            {
                "max_tokens": 5000,
                "thinking": {"type": "enabled", "budget_tokens": 2048},
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
                ],
            },
            "must start with a thinking block",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {"role": "user", "content": "no result"},
                ]
            },
            "without `tool_result` blocks immediately after",
        ),
    ],
)
def test_mock_rejects_what_the_api_rejects(anthropic_upstream, change, fragment):
    body = {**OK, **change}
    if change.get("max_tokens", 0) is None:
        del body["max_tokens"]
    response = _direct(anthropic_upstream, body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert fragment in error["error"]["message"] and error["request_id"].startswith("req_")


def test_mock_auth_version_and_model_checks(anthropic_upstream):
    assert _direct(anthropic_upstream, OK, **{"x-api-key": "nope"}).json()["error"] == {
        "type": "authentication_error",
        "message": "invalid x-api-key",
    }
    response = httpx.post(
        anthropic_upstream.url + "/v1/messages", json=OK, headers={"x-api-key": anthropic_upstream.api_key}
    )
    assert response.status_code == 400 and "anthropic-version" in response.json()["error"]["message"]
    missing = _direct(anthropic_upstream, {**OK, "model": "claude-nope"})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    ok = _direct(anthropic_upstream, OK)
    assert ok.status_code == 200 and ok.json()["type"] == "message" and ok.headers["request-id"]


def test_mock_stream_is_the_real_event_sequence(anthropic_upstream):
    anthropic_upstream.script(Scenario(tool_calls=[("f", {"q": "a long enough argument"})]))
    body = {
        **OK,
        "max_tokens": 5000,
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}],
    }
    response = _direct(anthropic_upstream, body)
    names = [line[7:] for line in response.text.split("\n") if line.startswith("event: ")]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    data = [orjson.loads(line[6:]) for line in response.text.split("\n") if line.startswith("data: ")]
    deltas = [d["delta"]["type"] for d in data if d["type"] == "content_block_delta"]
    assert {"thinking_delta", "signature_delta", "text_delta", "input_json_delta"} <= set(deltas)
    assert deltas.count("input_json_delta") > 2  # split across deltas
    assert data[-2]["usage"]["output_tokens"] > data[0]["message"]["usage"]["output_tokens"]
