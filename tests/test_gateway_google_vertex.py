"""Gemini on Vertex AI through the gateway's real surface: uvicorn, the official `openai` SDK and raw
HTTP, against tests/mocks/vertex_upstream.py (strict like the real API: an OpenAI-only field sent to
Google fails there with a 400)."""

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
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.mocks.upstream import Scenario
from tests.mocks.vertex_upstream import VertexScenario, sign_call, vertex_upstream  # noqa: F401

MODEL = "gemini-2.5-flash"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Return order status by ID.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
                "additionalProperties": False,
            },
        },
    }
]
# Flash's price card: $0.30 input, $0.03 cached input, $2.50 output (thinking included) per 1M tokens.
USAGE = {
    "promptTokenCount": 1200,
    "cachedContentTokenCount": 1000,
    "candidatesTokenCount": 300,
    "thoughtsTokenCount": 500,
    "totalTokenCount": 2000,
    "trafficType": "ON_DEMAND",
}
EXPECTED_COST = (Decimal(200) * Decimal("0.30") + Decimal(1000) * Decimal("0.03") + Decimal(800) * Decimal("2.50")) / (
    Decimal(1_000_000)
)


def add_vertex_route(mock, *, priority: int = 10, name: str | None = None, **fields) -> ProviderKey:
    return provider_key_add(
        model_slug=MODEL,
        provider="google-vertex",
        base_url=mock.url,
        api_key=fields.pop("api_key", mock.api_key),
        deployment=fields.pop("deployment", MODEL),
        priority=priority,
        name=name,
        **fields,
    )


@pytest.fixture
def vertex_route(world, gateway, vertex_upstream):
    row = add_vertex_route(vertex_upstream)
    gateway.refresh()
    return row


@pytest.fixture
def client(gateway, world):
    gateway.refresh()
    return openai.OpenAI(base_url=gateway.api, api_key=world.key, max_retries=0, timeout=20)


def post(gateway, world, body) -> httpx.Response:
    return httpx.post(
        gateway.api + "/chat/completions", headers={"Authorization": f"Bearer {world.key}"}, json=body, timeout=20
    )


def hi(**extra):
    return {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], **extra}


# -- the happy paths -----------------------------------------------------------------------------------


def test_plain_chat_goes_out_in_gemini_shape_and_comes_back_in_openai_shape(client, vertex_route, vertex_upstream):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=500, temperature=0.4, top_p=0.9
    )
    answer = raw.parse()
    assert raw.headers["x-omixa-route"] == str(vertex_route.pk)
    assert answer.object == "chat.completion" and answer.model == MODEL
    assert answer.choices[0].message.content == "Hello from Gemini on Vertex. This is the mock's answer."
    assert answer.choices[0].finish_reason == "stop"
    sent = vertex_upstream.last
    assert sent.path == f"/v1/publishers/google/models/{MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == vertex_upstream.api_key and "authorization" not in sent.headers
    assert sent.json == {
        "contents": [{"role": "user", "parts": [{"text": "Say hello."}]}],
        "generationConfig": {"maxOutputTokens": 500, "temperature": 0.4, "topP": 0.9},
    }
    usage = answer.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0


def test_system_prompt_becomes_system_instruction(client, vertex_route, vertex_upstream):
    client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "Hi"},
        ],
    )
    body = vertex_upstream.last.json
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}, {"text": "Answer in English."}]}
    assert [c["role"] for c in body["contents"]] == ["user"]


def test_multi_turn_with_tool_call_and_tool_result(client, vertex_route, vertex_upstream):
    answer = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "Where is order A-17?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_a17",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"order_id": "A-17"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_a17", "content": "shipped"},
        ],
        tools=TOOLS,
    )
    assert answer.choices[0].message.content == 'The tool said: {"output":"shipped"}'
    contents = vertex_upstream.last.json["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "lookup_order", "args": {"order_id": "A-17"}, "id": "call_a17"}}],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "lookup_order", "id": "call_a17", "response": {"output": "shipped"}}}],
    }


@pytest.mark.parametrize("stream", [False, True])
def test_thought_signatures_ride_in_the_tool_call_id_and_go_back_upstream(
    client, vertex_route, vertex_upstream, stream
):
    question = {"role": "user", "content": "Where is order A-17?"}
    vertex_upstream.script(VertexScenario(tool_calls=[("lookup_order", {"order_id": "A-17"})]))
    first = client.chat.completions.create(
        model=MODEL, messages=[question], tools=TOOLS, reasoning_effort="low", stream=stream
    )
    if stream:
        ids = [c.id for chunk in first if chunk.choices for c in chunk.choices[0].delta.tool_calls or () if c.id]
        call_id = ids[0]
    else:
        call_id = first.choices[0].message.tool_calls[0].id
    signature = sign_call("lookup_order", {"order_id": "A-17"})
    assert "+" in signature or "/" in signature  # the id carries it URL-safe, and it comes back exact
    base, marker, _ = call_id.partition("__ts__")
    assert marker and base and all(c.isalnum() or c in "-_" for c in call_id)

    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": "lookup_order", "arguments": '{"order_id": "A-17"}'},
    }
    results = {"role": "tool", "tool_call_id": call_id, "content": "shipped"}
    follow_up = client.chat.completions.create(
        model=MODEL,
        messages=[question, {"role": "assistant", "content": None, "tool_calls": [call]}, results],
        tools=TOOLS,
        reasoning_effort="low",
    )
    assert follow_up.choices[0].message.content == 'The tool said: {"output":"shipped"}'
    contents = vertex_upstream.last.json["contents"]
    assert contents[1]["parts"] == [
        {
            "functionCall": {"name": "lookup_order", "args": {"order_id": "A-17"}, "id": base},
            "thoughtSignature": signature,
        }
    ]
    assert contents[2]["parts"][0]["functionResponse"]["id"] == base

    # A signature that does not match its call is the client's fault: a 400, no failover.
    call["function"]["arguments"] = '{"order_id": "B-2"}'
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=[question, {"role": "assistant", "content": None, "tool_calls": [call]}, results],
            tools=TOOLS,
        )
    assert "thought signature" in caught.value.body["message"]


def test_streaming_with_usage(client, vertex_route, vertex_upstream, gateway):
    vertex_upstream.script(VertexScenario(usage=USAGE, chunk_chars=5))
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Stream please."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    assert vertex_upstream.last.path.endswith(":streamGenerateContent") and vertex_upstream.last.query == {"alt": "sse"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from Gemini on Vertex. This is the mock's answer."
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 5  # really streamed in pieces
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage.prompt_tokens == 1200 and last.usage.completion_tokens == 800
    assert last.usage.prompt_tokens_details.cached_tokens == 1000
    assert last.usage.completion_tokens_details.reasoning_tokens == 500
    assert Decimal(last.usage.model_extra["cost"]) == EXPECTED_COST
    assert len({c.id for c in chunks}) == 1
    gateway.flush_usage()
    event = UsageEvent.objects.get(request_id=raw.headers["x-request-id"])
    assert event.stream and event.outcome == "completed" and not event.estimated
    assert event.input_tokens + event.cached_input_tokens + event.output_tokens == USAGE["totalTokenCount"]


def test_tools_non_stream_and_stream_parallel_same_name_calls_get_distinct_ids(client, vertex_route, vertex_upstream):
    calls = [("lookup_order", {"order_id": "A"}), ("lookup_order", {"order_id": "B"})]
    vertex_upstream.script(VertexScenario(tool_calls=calls), times=2)
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "A and B?"}], tools=TOOLS, tool_choice="required"
    )
    sent = vertex_upstream.last.json
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "lookup_order",
                    "description": "Return order status by ID.",
                    "parametersJsonSchema": TOOLS[0]["function"]["parameters"],
                }
            ]
        }
    ]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    message = answer.choices[0].message
    assert answer.choices[0].finish_reason == "tool_calls" and message.content is None
    assert [orjson.loads(c.function.arguments) for c in message.tool_calls] == [{"order_id": "A"}, {"order_id": "B"}]
    assert len({c.id for c in message.tool_calls}) == 2

    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "A and B?"}], tools=TOOLS, stream=True
    )
    by_index: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for call in chunk.choices[0].delta.tool_calls or ():
            entry = by_index.setdefault(call.index, {"id": call.id, "name": "", "arguments": ""})
            entry["name"] += call.function.name or ""
            entry["arguments"] += call.function.arguments or ""
    assert finish == "tool_calls"
    assert sorted(by_index) == [0, 1]
    assert {e["name"] for e in by_index.values()} == {"lookup_order"}
    assert by_index[0]["id"] != by_index[1]["id"]
    assert [orjson.loads(by_index[i]["arguments"]) for i in (0, 1)] == [{"order_id": "A"}, {"order_id": "B"}]


def test_named_tool_choice_and_google_ids_are_kept(client, vertex_route, vertex_upstream):
    vertex_upstream.script(VertexScenario(call_ids=True))
    answer = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "A?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "lookup_order"}},
    )
    assert vertex_upstream.last.json["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup_order"]}
    }
    assert answer.choices[0].message.tool_calls[0].id.startswith("fc-")


def test_reasoning_effort_and_thinking_output(client, vertex_route, vertex_upstream):
    answer = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Think first."}],
        reasoning_effort="low",
        extra_body={"show_thinking": True},
    )
    assert vertex_upstream.last.json["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}
    }
    assert "Weighing the request" in answer.choices[0].message.model_extra["reasoning_content"]
    assert answer.usage.completion_tokens_details.reasoning_tokens == 48

    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Think first."}],
        reasoning_effort="high",
        stream=True,
        extra_body={"show_thinking": True},
    )
    thoughts = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in stream if c.choices
    )
    assert thoughts.startswith("**Weighing the request**")
    assert vertex_upstream.last.json["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 24576

    plain = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "No thinking."}], reasoning_effort="none"
    )
    assert vertex_upstream.last.json["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 0}}
    assert "reasoning_content" not in (plain.choices[0].message.model_extra or {})
    assert plain.usage.completion_tokens_details.reasoning_tokens == 0


def test_image_data_url_part_is_sent_inline(client, vertex_route, vertex_upstream):
    client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ],
    )
    assert vertex_upstream.last.json["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
    ]


def test_remote_image_url_is_a_400_naming_the_part_and_nothing_is_sent(gateway, world, vertex_route, vertex_upstream):
    body = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Describe images."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            },
        ],
    }
    response = post(gateway, world, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages[1].content[1].image_url.url"
    assert "not fetched" in error["message"]
    time.sleep(0.1)
    assert vertex_upstream.requests == []


def test_json_mode_and_json_schema(client, vertex_route, vertex_upstream):
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "JSON please"}], response_format={"type": "json_object"}
    )
    assert orjson.loads(answer.choices[0].message.content) == {"answer": "Hello from Gemini on Vertex."}
    assert vertex_upstream.last.json["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "JSON please"}],
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    )
    assert vertex_upstream.last.json["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }


def test_stop_sequences(client, vertex_route, vertex_upstream):
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], stop=["mock", "zzz"]
    )
    assert vertex_upstream.last.json["generationConfig"] == {"stopSequences": ["mock", "zzz"]}
    assert answer.choices[0].message.content == "Hello from Gemini on Vertex. This is the "


def test_blocked_prompt_is_a_content_filter_answer(client, vertex_route, vertex_upstream):
    vertex_upstream.script(VertexScenario(block_reason="SAFETY"))
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "bad"}])
    assert answer.choices[0].finish_reason == "content_filter"
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens == 0


def test_usage_priced_exactly_and_event_buckets_add_up(client, vertex_route, vertex_upstream, gateway):
    vertex_upstream.script(VertexScenario(usage=USAGE))
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    answer = raw.parse()
    assert answer.usage.prompt_tokens == 1200 and answer.usage.completion_tokens == 800
    assert answer.usage.prompt_tokens_details.cached_tokens == 1000
    assert Decimal(answer.usage.model_extra["cost"]) == EXPECTED_COST == Decimal("0.00209")
    gateway.flush_usage()
    event = UsageEvent.objects.get(request_id=raw.headers["x-request-id"])
    assert (event.input_tokens, event.cached_input_tokens, event.cache_write_tokens) == (200, 1000, 0)
    assert (event.output_tokens, event.reasoning_tokens) == (800, 500)
    assert event.input_tokens + event.cached_input_tokens + event.output_tokens == USAGE["totalTokenCount"]
    assert event.provider == "google-vertex" and event.endpoint_type == "google_vertex"


# -- errors and failover --------------------------------------------------------------------------------


@pytest.fixture
def two_vertex_routes(world, gateway, vertex_upstream):
    vertex_upstream.add_model("gemini-2.5-flash-backup")
    first = add_vertex_route(vertex_upstream, priority=1, name="vertex-primary")
    second = add_vertex_route(vertex_upstream, priority=2, name="vertex-backup", deployment="gemini-2.5-flash-backup")
    gateway.refresh()
    return first, second


def test_upstream_400_is_passed_on_without_failover(gateway, world, two_vertex_routes, vertex_upstream):
    first, _ = two_vertex_routes
    vertex_upstream.script(VertexScenario(status=400))
    response = post(gateway, world, hi())
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Request contains an invalid argument."
    assert response.headers["x-omixa-attempts"] == f"{first.pk}:client"
    assert len(vertex_upstream.requests) == 1


@pytest.mark.parametrize(("status", "outcome"), [(429, "rate_limited"), (503, "server"), (500, "server")])
def test_429_and_5xx_fail_over_to_the_second_route(gateway, world, two_vertex_routes, vertex_upstream, status, outcome):
    first, second = two_vertex_routes
    vertex_upstream.script(VertexScenario(status=status, retry_delay=2 if status == 429 else None))
    response = post(gateway, world, hi())
    assert response.status_code == 200
    assert response.headers["x-omixa-attempts"] == f"{first.pk}:{outcome},{second.pk}:ok"
    assert [r.model for r in vertex_upstream.requests] == [MODEL, "gemini-2.5-flash-backup"]


def test_stream_429_fails_over(gateway, world, two_vertex_routes, vertex_upstream):
    _first, second = two_vertex_routes
    vertex_upstream.script(VertexScenario(status=429))
    response = post(gateway, world, hi(stream=True))
    assert response.status_code == 200 and response.headers["x-omixa-route"] == str(second.pk)
    assert response.content.rstrip().endswith(b"data: [DONE]")


@pytest.mark.parametrize("scenario", [VertexScenario(status=403), VertexScenario(status=401)])
def test_403_takes_the_key_out_of_rotation(gateway, world, two_vertex_routes, vertex_upstream, scenario):
    first, second = two_vertex_routes
    vertex_upstream.script(scenario, model=MODEL)
    response = post(gateway, world, hi())
    assert response.status_code == 200 and response.headers["x-omixa-route"] == str(second.pk)
    deadline = time.monotonic() + 5
    while not ProviderKey.objects.get(pk=first.pk).disabled_reason:
        assert time.monotonic() < deadline, "the key was not taken out of rotation"
        time.sleep(0.05)
    gateway.refresh()
    before = len(vertex_upstream.requests_for(MODEL))
    for _ in range(2):
        assert post(gateway, world, hi()).headers["x-omixa-route"] == str(second.pk)
    assert len(vertex_upstream.requests_for(MODEL)) == before


def test_a_wrong_api_key_is_auth_not_a_client_error(gateway, world, vertex_upstream):
    bad = add_vertex_route(vertex_upstream, priority=1, name="bad-key", api_key="AQ.wrong-key")
    good = add_vertex_route(vertex_upstream, priority=2, name="good-key")
    gateway.refresh()
    response = post(gateway, world, hi())
    assert response.status_code == 200
    assert response.headers["x-omixa-attempts"] == f"{bad.pk}:auth,{good.pk}:ok"


def test_cross_family_failover_azure_503_then_google(gateway, world, vertex_upstream, mock_upstream):
    azure = provider_key_add(
        model_slug=MODEL,
        provider="azure-openai",
        base_url=mock_upstream.url,
        api_key=mock_upstream.azure_key,
        deployment="gpt-4.1-mini",
        priority=1,
        name="azure-first",
    )
    google = add_vertex_route(vertex_upstream, priority=2, name="google-second")
    gateway.refresh()
    mock_upstream.script(Scenario(status=503), deployment="gpt-4.1-mini")
    response = post(gateway, world, hi())
    assert response.status_code == 200
    assert response.headers["x-omixa-attempts"] == f"{azure.pk}:server,{google.pk}:ok"
    assert response.json()["choices"][0]["message"]["content"].startswith("Hello from Gemini")
    assert len(mock_upstream.requests) == 1 and len(vertex_upstream.requests) == 1


def test_first_byte_timeout_fails_over(gateway, world, vertex_upstream):
    slow = add_vertex_route(vertex_upstream, priority=1, name="slow", first_byte_timeout=0.3)
    fast = add_vertex_route(vertex_upstream, priority=2, name="fast")
    gateway.refresh()
    vertex_upstream.script(VertexScenario(delay=1.5))
    response = post(gateway, world, hi())
    assert response.status_code == 200
    assert response.headers["x-omixa-attempts"].startswith(f"{slow.pk}:timeout,{fast.pk}:ok")


def test_stream_broken_after_commit_ends_with_an_error_event_and_is_recorded(
    gateway, world, vertex_route, vertex_upstream
):
    vertex_upstream.script(VertexScenario(break_after=3, chunk_chars=4))
    response = post(gateway, world, hi(stream=True))
    assert response.status_code == 200
    events = [block[6:] for block in response.content.split(b"\n\n") if block.startswith(b"data: ")]
    assert b"[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_stream_broken"
    gateway.flush_usage()
    event = UsageEvent.objects.get(request_id=response.headers["x-request-id"])
    assert event.outcome == "broken_stream" and event.input_tokens > 0


# -- the mock is as strict as the real API ------------------------------------------------------------


def _raw_call(mock, body, *, key: str | None = "default", path: str | None = None) -> httpx.Response:
    headers = {} if key is None else {"x-goog-api-key": mock.api_key if key == "default" else key}
    url = mock.url + (path or f"/v1/publishers/google/models/{MODEL}:generateContent")
    return httpx.post(url, json=body, headers=headers, timeout=10)


GOOD = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, 'Unknown name "model"'),
        ({**GOOD, "max_tokens": 5}, 'Unknown name "max_tokens"'),
        ({**GOOD, "generationConfig": {"max_tokens": 5}}, "at 'generation_config'"),
        ({**GOOD, "response_format": {"type": "json_object"}}, 'Unknown name "response_format"'),
        ({**GOOD, "tools": TOOLS}, "at 'tools[0]'"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role: user, model"),
        ({"contents": [{"role": "user", "parts": [{"text": ""}]}]}, "empty text parameter"),
        ({"contents": [{"role": "user", "parts": []}]}, "at least one parts field"),
        ({"contents": [{"role": "user", "parts": [{"type": "text", "text": "x"}]}]}, 'Unknown name "type"'),
        ({**GOOD, "generationConfig": {"thinkingConfig": {"thinkingBudget": 99999}}}, "thinking budget"),
    ],
)
def test_mock_rejects_what_google_rejects(vertex_upstream, body, needle):
    response = _raw_call(vertex_upstream, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["code"] == 400 and needle in error["message"]


def test_mock_auth_model_and_pro_budget(vertex_upstream):
    missing = _raw_call(vertex_upstream, GOOD, key=None)
    assert missing.status_code == 401 and missing.json()["error"]["status"] == "UNAUTHENTICATED"
    wrong = _raw_call(vertex_upstream, GOOD, key="AQ.nope")
    assert wrong.status_code == 400 and wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    unknown = _raw_call(vertex_upstream, GOOD, path="/v1/publishers/google/models/gemini-9:generateContent")
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"
    pro = "/v1/publishers/google/models/gemini-2.5-pro:generateContent"
    off = {**GOOD, "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}
    response = _raw_call(vertex_upstream, off, path=pro)
    assert response.status_code == 400 and "only works in thinking mode" in response.json()["error"]["message"]
    assert _raw_call(vertex_upstream, off).status_code == 200  # Flash can turn thinking off
    project = "/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
    assert _raw_call(vertex_upstream, GOOD, path=project).status_code == 200


def test_mock_sse_shape(vertex_upstream):
    vertex_upstream.script(VertexScenario(usage=USAGE))
    response = httpx.post(
        vertex_upstream.url + f"/v1/publishers/google/models/{MODEL}:streamGenerateContent?alt=sse",
        json=GOOD,
        headers={"x-goog-api-key": vertex_upstream.api_key},
        timeout=10,
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in response.content.split(b"\r\n\r\n") if b]
    events = [orjson.loads(b[len(b"data: ") :]) for b in blocks]
    assert len(events) > 3 and all(set(e) >= {"candidates", "usageMetadata", "responseId"} for e in events)
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])
    assert events[-1]["candidates"][0]["finishReason"] == "STOP" and events[-1]["usageMetadata"] == USAGE
    assert events[0]["usageMetadata"] == {"promptTokenCount": 1200, "totalTokenCount": 1200, "trafficType": "ON_DEMAND"}
