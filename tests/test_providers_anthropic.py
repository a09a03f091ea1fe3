"""Unit tests of the Anthropic Messages adapter: pure, no network."""

from __future__ import annotations

import copy
import sys
from typing import Any

import orjson
import pytest

from gateway.providers import get_adapter
from gateway.types import ChatRequest, ErrorKind, RequestRejected, Route, UpstreamError

# Through the registry first: importing an adapter module directly registers it alone, and the registry
# loads the other families only while it is empty (gateway/providers/__init__.py), so a direct import here
# would hide azure/openai from every later test in the process.
ADAPTER = get_adapter("anthropic_messages")
_module = sys.modules[type(ADAPTER).__module__]
FALLBACK_BUDGETS = _module.FALLBACK_BUDGETS
AnthropicStreamDecoder = _module.AnthropicStreamDecoder
normalize_usage = _module.normalize_usage
SECRET = "sk-ant-api03-route-secret-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
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


def route(**kw: Any) -> Route:
    fields: dict[str, Any] = {
        "id": 3,
        "name": "claude",
        "model_slug": "claude-sonnet-4-5",
        "provider": "anthropic",
        "endpoint_type": "anthropic_messages",
        "base_url": "https://api.anthropic.com",
        "deployment": "claude-sonnet-4-5-20250929",
        "api_key": SECRET,
    }
    fields.update(kw)
    return Route(**fields)


def chat(body: dict[str, Any] | None = None, **kw: Any) -> ChatRequest:
    base: dict[str, Any] = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
    base.update(body or {})
    kw.setdefault("default_max_output_tokens", 8192)
    if "max_output_tokens" not in kw:
        kw["max_output_tokens"] = base.get("max_completion_tokens", base.get("max_tokens"))
    if "reasoning_effort" not in kw and base.get("reasoning_effort"):
        kw["reasoning_effort"] = base["reasoning_effort"]
    return ChatRequest(model="claude-sonnet-4-5", body=base, **kw)


def sent(request: ChatRequest, r: Route | None = None) -> dict[str, Any]:
    return orjson.loads(ADAPTER.prepare(request, r or route()).body)


def rejected(request: ChatRequest) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        ADAPTER.prepare(request, route())
    return info.value


# ------------------------------------------------------------------------------------------------
# prepare


def test_url_headers_model_and_required_max_tokens():
    up = ADAPTER.prepare(chat(), route(base_url="https://api.anthropic.com/v1/"))
    assert up.url == "https://api.anthropic.com/v1/messages"
    assert up.headers["x-api-key"] == SECRET
    assert up.headers["anthropic-version"] == "2023-06-01"
    assert up.headers["content-type"] == "application/json"
    assert "authorization" not in up.headers
    body = orjson.loads(up.body)
    assert body == {
        "model": "claude-sonnet-4-5-20250929",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": 8192,  # the model's default: required upstream
    }
    assert SECRET.encode() not in up.body


def test_client_limit_becomes_max_tokens_either_field():
    assert sent(chat({"max_tokens": 300}))["max_tokens"] == 300
    assert sent(chat({"max_completion_tokens": 301}))["max_tokens"] == 301


def test_system_and_developer_become_top_level_system_in_order():
    body = sent(
        chat(
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "developer", "content": [{"type": "text", "text": "Use bullets."}]},
                    {"role": "user", "content": "hi"},
                    {"role": "system", "content": ""},
                ]
            }
        )
    )
    assert body["system"] == [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use bullets."}]
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_tool_round_trip_merges_turns_and_orders_results_first():
    messages = [
        {"role": "user", "content": "Where are A-1 and A-2?"},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "Quickly."}]},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"order_id":"A-1"}'},
                },
                {"id": "toolu_2", "type": "function", "function": {"name": "lookup_order", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": '{"status":"shipped"}'},
        {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "lost"}]},
        {"role": "user", "content": "Thanks"},
    ]
    body = sent(chat({"messages": messages, "tools": TOOLS}))
    turns = body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[0]["content"] == [
        {"type": "text", "text": "Where are A-1 and A-2?"},
        {"type": "text", "text": "Quickly."},
    ]
    assert turns[1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "lookup_order", "input": {"order_id": "A-1"}},
        {"type": "tool_use", "id": "toolu_2", "name": "lookup_order", "input": {}},
    ]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"status":"shipped"}'},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "lost"}]},
        {"type": "text", "text": "Thanks"},
    ]
    assert body["tools"] == [
        {
            "name": "lookup_order",
            "input_schema": TOOLS[0]["function"]["parameters"],
            "description": "Return order status by ID.",
        }
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_bad_tool_call_arguments_are_a_400_naming_them(arguments):
    messages = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": arguments}}],
        },
    ]
    err = rejected(chat({"messages": messages}))
    assert err.param == "messages[1].tool_calls[0].function.arguments"


def test_content_parts_image_data_url_remote_url_and_pdf():
    content = [
        {"type": "text", "text": "Look."},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    ]
    body = sent(chat({"messages": [{"role": "user", "content": content}]}))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Look."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "a.pdf",
        },
    ]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}},
            "messages[0].content[0].image_url.url",
        ),
        ({"type": "file", "file": {"file_id": "file-1"}}, "messages[0].content[0].file"),
        (
            {"type": "file", "file": {"file_data": "data:text/plain;base64,aGk="}},
            "messages[0].content[0].file.file_data",
        ),
        ({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}, "messages[0].content[0].type"),
    ],
)
def test_unsupported_parts_are_400s_naming_them(part, param):
    assert rejected(chat({"messages": [{"role": "user", "content": [part]}]})).param == param


def test_sampling_stop_user_and_parallel_tool_calls():
    body = sent(
        chat(
            {
                "temperature": 0.4,
                "top_p": 0.9,
                "stop": "END",
                "user": "user-42",
                "tools": TOOLS,
                "parallel_tool_calls": False,
            }
        )
    )
    assert body["temperature"] == 0.4 and body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-42"}
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert sent(chat({"stop": ["a", "b"]}))["stop_sequences"] == ["a", "b"]


def test_temperature_above_one_is_a_400_naming_it():
    err = rejected(chat({"temperature": 1.5}))
    assert err.param == "temperature" and "0 to 1" in err.message


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "lookup_order"}}, {"type": "tool", "name": "lookup_order"}),
    ],
)
def test_tool_choice_mapping(choice, expected):
    assert sent(chat({"tools": TOOLS, "tool_choice": choice}))["tool_choice"] == expected


def test_reasoning_effort_uses_the_specs_budget_and_raises_max_tokens():
    body = sent(chat({"reasoning_effort": "high", "temperature": 0.2, "top_p": 0.5}, reasoning_budget=20000))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 20000}
    assert body["max_tokens"] == 20000 + 8192  # budget + the model's default answer room
    assert "temperature" not in body and "top_p" not in body  # thinking: no temperature, top_p only 0.95-1
    assert sent(chat({"reasoning_effort": "low", "top_p": 0.97}, reasoning_budget=2048))["top_p"] == 0.97


def test_reasoning_effort_fallback_budgets_and_client_limits():
    for effort, budget in FALLBACK_BUDGETS.items():
        body = sent(chat({"reasoning_effort": effort}))
        assert body["thinking"]["budget_tokens"] == budget
        assert body["max_tokens"] > budget
    # a client limit above the budget is kept as is
    body = sent(chat({"reasoning_effort": "low", "max_tokens": 5000}, reasoning_budget=2048))
    assert body["max_tokens"] == 5000 and body["thinking"]["budget_tokens"] == 2048
    # a smaller client limit covers thinking and answer: the budget shrinks to fit
    body = sent(chat({"reasoning_effort": "high", "max_tokens": 4000}, reasoning_budget=24576))
    assert body["max_tokens"] == 4000 and 1024 <= body["thinking"]["budget_tokens"] < 4000
    err = rejected(chat({"reasoning_effort": "high", "max_completion_tokens": 1000}, reasoning_budget=24576))
    assert err.param == "max_completion_tokens"


def test_a_turn_continuing_a_tool_loop_goes_without_thinking():
    messages = [
        {"role": "user", "content": "Where is A-1?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "lookup_order", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "shipped"},
    ]
    body = sent(chat({"messages": messages, "tools": TOOLS, "reasoning_effort": "low", "temperature": 0.2}))
    assert "thinking" not in body and body["temperature"] == 0.2 and body["max_tokens"] == 8192
    # a fresh user turn after the loop thinks again
    messages = [*messages, {"role": "assistant", "content": "Shipped."}, {"role": "user", "content": "And A-2?"}]
    assert (
        sent(chat({"messages": messages, "tools": TOOLS, "reasoning_effort": "low"}))["thinking"]["budget_tokens"]
        == 2048
    )


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "lookup_order"}}])
def test_forced_tool_use_with_thinking_is_a_400(choice):
    err = rejected(chat({"reasoning_effort": "low", "tools": TOOLS, "tool_choice": choice}))
    assert err.param == "tool_choice"


def test_response_format():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    body = sent(chat({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}))
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "output_config" not in sent(chat({"response_format": {"type": "text"}}))
    assert rejected(chat({"response_format": {"type": "json_object"}})).param == "response_format.type"


def test_fields_the_provider_cannot_take_are_400s():
    assert rejected(chat({"seed": 3})).param == "seed"
    assert rejected(chat({"n": 2})).param == "n"
    assert rejected(chat({"metadata": {"team": "a"}})).param == "metadata.team"
    assert sent(chat({"metadata": {"user_id": "u1"}}))["metadata"] == {"user_id": "u1"}


def test_stream_flag_and_no_openai_only_fields_upstream():
    request = chat({"stream": True, "max_tokens": 50}, stream=True, include_usage=True)
    up = ADAPTER.prepare(request, route())
    body = orjson.loads(up.body)
    assert body["stream"] is True and up.headers["accept"] == "text/event-stream"
    for name in ("stream_options", "max_completion_tokens", "show_thinking", "n", "response_format", "user"):
        assert name not in body


def test_service_tier_only_on_routes_that_support_it():
    assert "service_tier" not in sent(chat(), route())
    assert sent(chat(service_tier="default"), route(supports_priority=True))["service_tier"] == "standard_only"
    assert sent(chat(service_tier="auto"), route(supports_priority=True))["service_tier"] == "auto"


# ------------------------------------------------------------------------------------------------
# parse_completion

MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "Let me look it up.", "signature": "EqQBCgIYAhIM"},
        {"type": "text", "text": "Checking "},
        {"type": "text", "text": "now."},
        {"type": "tool_use", "id": "toolu_01A", "name": "lookup_order", "input": {"order_id": "A-17"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 120,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 3000,
        "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 80,
        "service_tier": "standard",
    },
}


def test_parse_completion_normalizes_blocks_and_usage():
    completion, usage = ADAPTER.parse_completion(chat(), route(), orjson.dumps(MESSAGE))
    assert completion["object"] == "chat.completion" and completion["model"] == "claude-sonnet-4-5"
    assert completion["id"] == "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL"
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] == "Checking now." and "reasoning_content" not in message
    assert message["tool_calls"] == [
        {
            "id": "toolu_01A",
            "type": "function",
            "function": {"name": "lookup_order", "arguments": '{"order_id":"A-17"}'},
        }
    ]
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens, usage.output_tokens) == (
        120,
        3000,
        2000,
        80,
    )
    assert usage.prompt_tokens == 5120 and usage.reasoning_tokens == 0 and not usage.estimated
    shown, _ = ADAPTER.parse_completion(chat(show_thinking=True), route(), orjson.dumps(MESSAGE))
    assert shown["choices"][0]["message"]["reasoning_content"] == "Let me look it up."


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_stop_reason_mapping(stop, finish):
    message = {**MESSAGE, "content": [{"type": "text", "text": "x"}], "stop_reason": stop}
    completion, _ = ADAPTER.parse_completion(chat(), route(), orjson.dumps(message))
    assert completion["choices"][0]["finish_reason"] == finish


def test_usage_thinking_tokens_and_null_cache_fields():
    usage = normalize_usage(
        {
            "input_tokens": 5,
            "cache_read_input_tokens": None,
            "cache_creation_input_tokens": None,
            "output_tokens": 40,
            "output_tokens_details": {"thinking_tokens": 30},
        }
    )
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens) == (5, 0, 0)
    assert usage.output_tokens == 40 and usage.reasoning_tokens == 30


@pytest.mark.parametrize("data", [b"not json", b"[]", b'{"type":"message"}'])
def test_malformed_answers_are_server_errors(data):
    with pytest.raises(UpstreamError) as info:
        ADAPTER.parse_completion(chat(), route(), data)
    assert info.value.kind == ErrorKind.SERVER


# ------------------------------------------------------------------------------------------------
# errors


def _err(etype: str, message: str = "boom") -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": etype, "message": message}, "request_id": "req_011"})


@pytest.mark.parametrize(
    ("status", "data", "kind"),
    [
        (
            400,
            _err("invalid_request_error", "messages.0.content: text content blocks must be non-empty"),
            ErrorKind.CLIENT,
        ),
        (
            400,
            _err("invalid_request_error", "Your credit balance is too low to access the Anthropic API."),
            ErrorKind.QUOTA,
        ),
        (401, _err("authentication_error", "invalid x-api-key"), ErrorKind.AUTH),
        (403, _err("permission_error"), ErrorKind.AUTH),
        (404, _err("not_found_error", "model: claude-x"), ErrorKind.NOT_FOUND),
        (413, _err("request_too_large"), ErrorKind.CLIENT),
        (413, b"<html>413 Request Entity Too Large</html>", ErrorKind.CLIENT),
        (429, _err("rate_limit_error"), ErrorKind.RATE_LIMITED),
        (500, _err("api_error"), ErrorKind.SERVER),
        (529, _err("overloaded_error", "Overloaded"), ErrorKind.SERVER),
        (402, _err("billing_error"), ErrorKind.QUOTA),
        (502, b"", ErrorKind.SERVER),
    ],
)
def test_error_classification(status, data, kind):
    error = ADAPTER.parse_error(status, {"retry-after": "7"}, data)
    assert error.kind == kind and error.status == status
    assert error.message
    if kind in (ErrorKind.RATE_LIMITED, ErrorKind.SERVER):
        assert error.retry_after == 7
    if data.startswith(b"{"):
        assert error.code == orjson.loads(data)["error"]["type"]


def test_client_error_keeps_the_providers_message():
    error = ADAPTER.parse_error(400, {}, _err("invalid_request_error", "max_tokens: Field required"))
    assert error.message == "max_tokens: Field required" and error.param is None


def test_errors_never_echo_secrets():
    error = ADAPTER.parse_error(401, {}, _err("authentication_error", f"invalid x-api-key {SECRET}"))
    assert SECRET not in error.message


# ------------------------------------------------------------------------------------------------
# streaming


def sse(events: list[dict[str, Any]], *, ping: bool = True) -> bytes:
    out = []
    for i, event in enumerate(events):
        out.append(b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n")
        if ping and i == 0:
            out.append(b'event: ping\ndata: {"type": "ping"}\n\n')
    return b"".join(out)


def stream_events(text: str = "Hello, ünïcödé 🚀 world.", *, thinking: str | None = None) -> list[dict[str, Any]]:
    start_usage = {
        "input_tokens": 472,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 2000,
        "output_tokens": 2,
        "service_tier": "standard",
    }
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_stream_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        }
    ]
    index = 0
    if thinking is not None:
        events += [
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
            {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": thinking[:5]}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": thinking[5:]}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCg=="}},
            {"type": "content_block_stop", "index": 0},
        ]
        index = 1
    events += [
        {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text[:9]}},
        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text[9:]}},
        {"type": "content_block_stop", "index": index},
        {
            "type": "content_block_start",
            "index": index + 1,
            "content_block": {"type": "tool_use", "id": "toolu_9", "name": "lookup_order", "input": {}},
        },
        {"type": "content_block_delta", "index": index + 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {
            "type": "content_block_delta",
            "index": index + 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"order_'},
        },
        {
            "type": "content_block_delta",
            "index": index + 1,
            "delta": {"type": "input_json_delta", "partial_json": 'id": "A-17"}'},
        },
        {"type": "content_block_stop", "index": index + 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {
                "input_tokens": 472,
                "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 2000,
                "output_tokens": 89,
            },
        },
        {"type": "message_stop"},
    ]
    return events


def decode(data: bytes, pieces: list[bytes], **req: Any) -> tuple[list[dict], AnthropicStreamDecoder]:
    dec = ADAPTER.stream_decoder(chat(stream=True, **req), route())
    out: list[dict] = []
    for piece in pieces:
        out.extend(dec.feed(piece))
    return out, dec


def test_stream_decoder_output_shape_usage_and_tools():
    data = sse(stream_events())
    out, dec = decode(data, [data])
    assert dec.finished and dec.finish_reason == "tool_calls"
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "claude-sonnet-4-5" for c in out)
    assert {c["id"] for c in out} == {"chatcmpl-msg_stream_1"}
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in out)
    assert text == "Hello, ünïcödé 🚀 world."
    calls = [tc for c in out for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_9",
        "type": "function",
        "function": {"name": "lookup_order", "arguments": ""},
    }
    assert all(set(tc) == {"index", "function"} for tc in calls[1:])
    assert orjson.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"order_id": "A-17"}
    assert out[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}
    usage = dec.usage
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens, usage.output_tokens) == (
        472,
        2000,
        100,
        89,  # message_delta's cumulative count overwrites message_start's 2: never 91
    )
    assert not usage.estimated and usage.service_tier == "standard"


def test_stream_usage_is_none_until_content_then_provisional_then_final():
    events = stream_events()
    dec = AnthropicStreamDecoder("claude-sonnet-4-5")
    dec.feed(sse(events[:2], ping=True))  # message_start + ping + empty text block start
    assert dec.usage is None  # message_start alone must not commit the stream
    dec.feed(sse(events[2:3], ping=False))
    provisional = dec.usage
    assert provisional is not None and provisional.estimated and provisional.input_tokens == 472
    dec.feed(sse(events[3:], ping=False))
    assert dec.usage.output_tokens == 89 and not dec.usage.estimated


def test_stream_message_delta_without_input_fields_keeps_the_snapshot():
    events = stream_events()
    events[-2]["usage"] = {"output_tokens": 15}
    _, dec = decode(sse(events), [sse(events)])
    assert (dec.usage.input_tokens, dec.usage.cached_input_tokens, dec.usage.output_tokens) == (472, 2000, 15)


@pytest.mark.parametrize("crlf", [False, True])
def test_stream_decoder_split_at_every_offset(crlf):
    data = sse(stream_events(thinking="Thinking hard: ü 🚀."))
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    reference, ref_dec = decode(data, [data], show_thinking=True)
    assert ref_dec.finished
    for cut in range(1, len(data)):
        out, dec = decode(data, [data[:cut], data[cut:]], show_thinking=True)
        for a, b in zip(out, reference, strict=True):
            assert {**a, "created": 0} == {**b, "created": 0}, cut
        assert dec.finished and dec.usage == ref_dec.usage
    out, dec = decode(data, [data[i : i + 1] for i in range(len(data))], show_thinking=True)
    assert [{**c, "created": 0} for c in out] == [{**c, "created": 0} for c in reference] and dec.finished


def test_stream_thinking_only_when_show_thinking():
    data = sse(stream_events(thinking="Weighing options."))
    shown, _ = decode(data, [data], show_thinking=True)
    assert "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in shown) == "Weighing options."
    hidden, _ = decode(data, [data])
    assert not any("reasoning_content" in c["choices"][0]["delta"] for c in hidden)
    assert len(hidden) == len(shown) - 2


def test_stream_error_event_raises_server_error():
    events = [*stream_events()[:3], {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
    dec = AnthropicStreamDecoder("claude-sonnet-4-5")
    with pytest.raises(UpstreamError) as info:
        dec.feed(sse(events))
    assert info.value.kind == ErrorKind.SERVER and info.value.code == "overloaded_error"


def test_stream_tool_without_arguments_gets_an_empty_object():
    events = copy.deepcopy(stream_events())
    events = [e for e in events if not (e.get("delta", {}).get("type") == "input_json_delta")]
    out, _ = decode(sse(events), [sse(events)])
    calls = [tc for c in out for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert "".join(tc["function"]["arguments"] for tc in calls) == "{}"
