"""Unit tests of the OpenAI-family adapters (openai_chat, azure_openai_v1_chat): pure, no network."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from gateway.providers import get_adapter
from gateway.providers._openai_family import OpenAIStreamDecoder, normalize_base_url, normalize_usage, redact
from gateway.simulator import simulate
from gateway.types import ChatRequest, ErrorKind, RequestRejected, Route, UpstreamError

AZURE = get_adapter("azure_openai_v1_chat")
OPENAI = get_adapter("openai_chat")
SECRET = "route-secret-9f8e7d6c5b4a39281706f5e4d3c2b1a0"

MESSAGES = [
    {"role": "system", "content": "You are a concise API assistant."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Look at this."},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
        ],
    },
]
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


def route(family: str = "azure", *, reasoning: bool = True, priority: bool = False, **kw: Any) -> Route:
    fields: dict[str, Any] = {
        "id": 7,
        "name": "r7",
        "model_slug": "codex-mini",
        "provider": "azure-openai" if family == "azure" else "openai",
        "endpoint_type": "azure_openai_v1_chat" if family == "azure" else "openai_chat",
        "base_url": "https://res.openai.azure.com" if family == "azure" else "https://api.openai.com",
        "deployment": "codex-mini-prod",
        "api_key": SECRET,
        "reasoning": reasoning,
        "supports_priority": priority,
    }
    fields.update(kw)
    return Route(**fields)


def chat(body: dict[str, Any] | None = None, **kw: Any) -> ChatRequest:
    base = {"model": "codex-mini", "messages": copy.deepcopy(MESSAGES)}
    base.update(body or {})
    return ChatRequest(model="codex-mini", body=base, **kw)


def sent(adapter: Any, request: ChatRequest, r: Route) -> tuple[Any, dict[str, Any]]:
    up = adapter.prepare(request, r)
    return up, orjson.loads(up.body)


# ------------------------------------------------------------------------------------------------
# prepare


def test_registry_has_both_families():
    assert AZURE.endpoint_type == "azure_openai_v1_chat"
    assert OPENAI.endpoint_type == "openai_chat"


def test_azure_url_headers_and_model():
    up, body = sent(AZURE, chat(), route("azure"))
    assert up.url == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert up.headers == {"content-type": "application/json", "accept": "application/json", "api-key": SECRET}
    assert body["model"] == "codex-mini-prod"
    assert "authorization" not in up.headers


def test_azure_api_version_only_when_set():
    up, _ = sent(AZURE, chat(), route("azure", api_version="2025-04-01-preview"))
    assert up.url == "https://res.openai.azure.com/openai/v1/chat/completions?api-version=2025-04-01-preview"


def test_openai_url_and_bearer():
    up, body = sent(OPENAI, chat(), route("openai", deployment="o4-mini"))
    assert up.url == "https://api.openai.com/v1/chat/completions"
    assert up.headers["authorization"] == "Bearer " + SECRET
    assert "api-key" not in up.headers
    assert body["model"] == "o4-mini"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("https://res.openai.azure.com/", "https://res.openai.azure.com"),
        ("https://res.openai.azure.com/openai/v1", "https://res.openai.azure.com"),
        ("https://res.openai.azure.com/openai/v1/", "https://res.openai.azure.com"),
        ("https://api.openai.com/v1", "https://api.openai.com"),
        ("http://127.0.0.1:8000/simulator", "http://127.0.0.1:8000/simulator"),
    ],
)
def test_base_url_normalized(typed, expected):
    assert normalize_base_url(typed) == expected


def test_openai_route_without_deployment_uses_the_slug():
    _, body = sent(OPENAI, chat(), route("openai", deployment=""))
    assert body["model"] == "codex-mini"


def test_stream_asks_for_usage_and_event_stream():
    up, body = sent(AZURE, chat({"stream": True}, stream=True), route("azure"))
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert up.headers["accept"] == "text/event-stream"
    # non-stream: neither
    _, body = sent(AZURE, chat({"stream": False}), route("azure"))
    assert "stream_options" not in body and "stream" not in body


@pytest.mark.parametrize(
    ("adapter", "family", "reasoning", "field"),
    [
        (AZURE, "azure", True, "max_completion_tokens"),
        (AZURE, "azure", False, "max_tokens"),
        (OPENAI, "openai", True, "max_completion_tokens"),
        (OPENAI, "openai", False, "max_completion_tokens"),
    ],
)
def test_max_tokens_mapping(adapter, family, reasoning, field):
    req = chat({"max_tokens": 2048}, max_output_tokens=2048)
    _, body = sent(adapter, req, route(family, reasoning=reasoning))
    other = {"max_tokens", "max_completion_tokens"} - {field}
    assert body[field] == 2048
    assert not other & body.keys()


def test_no_max_tokens_when_none_given():
    _, body = sent(AZURE, chat({"max_completion_tokens": 5}), route("azure"))
    assert "max_tokens" not in body and "max_completion_tokens" not in body


@pytest.mark.parametrize("adapter,family", [(AZURE, "azure"), (OPENAI, "openai")])
def test_reasoning_effort_passed_for_reasoning_routes(adapter, family):
    _, body = sent(adapter, chat({"reasoning_effort": "low"}, reasoning_effort="low"), route(family))
    assert body["reasoning_effort"] == "low"


def test_reasoning_effort_rejected_on_non_reasoning_route():
    with pytest.raises(RequestRejected) as exc:
        AZURE.prepare(chat({"reasoning_effort": "low"}, reasoning_effort="low"), route("azure", reasoning=False))
    assert exc.value.param == "reasoning_effort"


@pytest.mark.parametrize("field", ["logprobs", "top_logprobs", "presence_penalty", "frequency_penalty", "logit_bias"])
@pytest.mark.parametrize("adapter,family", [(AZURE, "azure"), (OPENAI, "openai")])
def test_reasoning_routes_reject_sampling_fields(adapter, family, field):
    value = {"logit_bias": {"50256": -100}, "logprobs": True}.get(field, 1)
    with pytest.raises(RequestRejected) as exc:
        adapter.prepare(chat({field: value}), route(family, reasoning=True))
    assert exc.value.param == field
    # the same field goes through on a non-reasoning deployment
    _, body = sent(adapter, chat({field: value}), route(family, reasoning=False))
    assert body[field] == value


def test_reasoning_routes_strip_temperature_and_top_p():
    _, body = sent(AZURE, chat({"temperature": 0.2, "top_p": 0.5}), route("azure", reasoning=True))
    assert "temperature" not in body and "top_p" not in body
    _, body = sent(AZURE, chat({"temperature": 0.2, "top_p": 0.5}), route("azure", reasoning=False))
    assert body["temperature"] == 0.2 and body["top_p"] == 0.5


@pytest.mark.parametrize("adapter,family", [(AZURE, "azure"), (OPENAI, "openai")])
def test_service_tier_only_on_priority_routes(adapter, family):
    req = chat({"service_tier": "priority"}, service_tier="priority")
    _, body = sent(adapter, req, route(family, priority=False))
    assert "service_tier" not in body
    _, body = sent(adapter, req, route(family, priority=True))
    assert body["service_tier"] == "priority"


def test_unknown_field_rejected_and_family_specific_fields():
    with pytest.raises(RequestRejected) as exc:
        AZURE.prepare(chat({"attachments": []}), route("azure"))
    assert exc.value.param == "attachments"
    with pytest.raises(RequestRejected) as exc:
        AZURE.prepare(chat({"web_search_options": {}}), route("azure"))
    assert exc.value.param == "web_search_options"
    _, body = sent(OPENAI, chat({"web_search_options": {}}), route("openai", reasoning=False))
    assert body["web_search_options"] == {}


def test_passthrough_fields_unchanged():
    extra = {
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "lookup_order"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "stop": ["\n\n", "END"],
        "n": 2,
        "seed": 3,
        "user": "u-1",
        "parallel_tool_calls": False,
        "metadata": {"a": "b"},
        "store": False,
        "safety_identifier": "s",
        "prompt_cache_key": "k",
    }
    req = chat(copy.deepcopy(extra))
    _, body = sent(AZURE, req, route("azure"))
    for key, value in extra.items():
        assert body[key] == value, key
    assert body["messages"] == MESSAGES
    # the client's request object is not mutated
    assert req.body["model"] == "codex-mini"


def test_owned_fields_never_forwarded_as_sent():
    body_in = {
        "max_tokens": 10,
        "max_completion_tokens": 10,
        "stream_options": {"include_usage": False, "include_obfuscation": True},
        "show_thinking": True,
        "service_tier": "priority",
    }
    _, body = sent(OPENAI, chat(body_in, max_output_tokens=10), route("openai"))
    assert body.get("max_completion_tokens") == 10
    for key in ("max_tokens", "stream_options", "show_thinking", "service_tier", "stream"):
        assert key not in body, key


def test_secret_only_in_auth_header():
    for adapter, family in ((AZURE, "azure"), (OPENAI, "openai")):
        up = adapter.prepare(chat({"user": "omx_live_clientkey"}), route(family))
        assert SECRET.encode() not in up.body
        assert SECRET not in up.url


# ------------------------------------------------------------------------------------------------
# parse_completion


def _completion(flavor: str, **kw: Any) -> bytes:
    body = {"model": "codex-mini-prod", "messages": [{"role": "user", "content": "hello " * 2000}]}
    return orjson.dumps(simulate(body, flavor=flavor, reasoning=True, **kw).completion())


def test_parse_completion_azure_normalizes():
    data = _completion("azure")
    out, usage = AZURE.parse_completion(chat(), route("azure"), data)
    raw = orjson.loads(data)
    assert out["model"] == "codex-mini"
    assert out["object"] == "chat.completion"
    assert "usage" not in out
    assert "prompt_filter_results" not in out
    assert all("content_filter_results" not in c for c in out["choices"])
    assert out["choices"][0]["message"]["content"] == raw["choices"][0]["message"]["content"]
    u = raw["usage"]
    cached = u["prompt_tokens_details"]["cached_tokens"]
    assert cached > 0
    assert usage.input_tokens == u["prompt_tokens"] - cached
    assert usage.cached_input_tokens == cached
    assert usage.output_tokens == u["completion_tokens"]
    assert usage.reasoning_tokens == u["completion_tokens_details"]["reasoning_tokens"] > 0
    assert usage.total_tokens == u["total_tokens"]
    assert usage.as_openai()["prompt_tokens"] == u["prompt_tokens"]
    assert usage.service_tier == ""  # Azure: null when not priority


def test_parse_completion_service_tier_and_reasoning_content():
    data = orjson.loads(_completion("openai", reasoning_text="Thinking hard."))
    data["service_tier"] = "priority"
    raw = orjson.dumps(data)
    out, usage = OPENAI.parse_completion(chat(), route("openai"), raw)
    assert usage.service_tier == "priority"
    assert "reasoning_content" not in out["choices"][0]["message"]
    out, _ = OPENAI.parse_completion(chat(show_thinking=True), route("openai"), raw)
    assert out["choices"][0]["message"]["reasoning_content"] == "Thinking hard."


@pytest.mark.parametrize("data", [b"not json", b"[1,2]", b'{"id": "x"}', b""])
def test_parse_completion_malformed_is_server_error(data):
    with pytest.raises(UpstreamError) as exc:
        AZURE.parse_completion(chat(), route("azure"), data)
    assert exc.value.kind is ErrorKind.SERVER


def test_parse_completion_without_usage_is_estimated():
    data = orjson.loads(_completion("openai"))
    del data["usage"]
    _, usage = OPENAI.parse_completion(chat(estimated_input_tokens=42), route("openai"), orjson.dumps(data))
    assert usage.estimated and usage.input_tokens == 42 and usage.output_tokens > 0


def test_normalize_usage_disjoint_buckets():
    u = normalize_usage(
        {
            "prompt_tokens": 3000,
            "completion_tokens": 500,
            "total_tokens": 3500,
            "prompt_tokens_details": {"cached_tokens": 2048, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 320},
        },
        None,
    )
    assert (u.input_tokens, u.cached_input_tokens, u.cache_write_tokens) == (952, 2048, 0)
    assert (u.output_tokens, u.reasoning_tokens, u.service_tier) == (500, 320, "")
    assert u.prompt_tokens + u.output_tokens == 3500
    assert (
        normalize_usage({"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": None}).input_tokens == 5
    )


# ------------------------------------------------------------------------------------------------
# parse_error


AZURE_401 = b'{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}'
OPENAI_401 = (
    b'{"error":{"message":"Incorrect API key provided: sk-proj-abcd****wxyz. You can find your API key at '
    b'https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}'
)
QUOTA = b'{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}'
RATE = b'{"error":{"code":"429","message":"Requests ... Please retry after 6 seconds."}}'
FILTERED = (
    b'{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI\'s content management policy.",'
    b'"type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation"}}}'
)
UNSUPPORTED = (
    b'{"error":{"message":"Unsupported parameter: \'max_tokens\' is not supported with this model. Use \'max_completion_tokens\' '
    b'instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}'
)
NOT_FOUND = b'{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}'


@pytest.mark.parametrize(
    ("status", "data", "kind", "code"),
    [
        (400, UNSUPPORTED, ErrorKind.CLIENT, "unsupported_parameter"),
        (400, FILTERED, ErrorKind.CLIENT, "content_filter"),
        (401, AZURE_401, ErrorKind.AUTH, "401"),
        (401, OPENAI_401, ErrorKind.AUTH, "invalid_api_key"),
        (403, b'{"error":{"message":"Country not supported","type":"request_forbidden"}}', ErrorKind.AUTH, None),
        (404, NOT_FOUND, ErrorKind.NOT_FOUND, "DeploymentNotFound"),
        (408, b"", ErrorKind.TIMEOUT, None),
        (409, b'{"error":{"message":"conflict"}}', ErrorKind.CLIENT, None),
        (413, b"<html>Request Entity Too Large</html>", ErrorKind.CLIENT, None),
        (415, b"", ErrorKind.CLIENT, None),
        (
            422,
            b'{"error":{"message":"bad","type":"invalid_request_error","param":"x","code":null}}',
            ErrorKind.CLIENT,
            None,
        ),
        (429, RATE, ErrorKind.RATE_LIMITED, "429"),
        (429, QUOTA, ErrorKind.QUOTA, "insufficient_quota"),
        (429, b'{"error":{"message":"q","type":"insufficient_quota","code":null}}', ErrorKind.QUOTA, None),
        (
            500,
            b'{"error":{"code":"InternalServerError","message":"The server had an error"}}',
            ErrorKind.SERVER,
            "InternalServerError",
        ),
        (502, b"<html>Bad Gateway</html>", ErrorKind.SERVER, None),
        (
            503,
            b'{"error":{"message":"overloaded","type":"server_error","code":"server_is_overloaded"}}',
            ErrorKind.SERVER,
            "server_is_overloaded",
        ),
        (504, b"", ErrorKind.SERVER, None),
        (
            400,
            b'{"error":{"code":"OperationNotSupported","message":"The chatCompletion operation does not work with '
            b'the specified model, codex-mini. Please choose different model and try again."}}',
            ErrorKind.NOT_FOUND,
            "OperationNotSupported",
        ),
    ],
)
@pytest.mark.parametrize("adapter", [AZURE, OPENAI])
def test_error_classification(adapter, status, data, kind, code):
    err = adapter.parse_error(status, {}, data)
    assert err.kind is kind
    assert err.status == status
    assert err.code == code
    assert err.message


def test_client_error_carries_message_and_param():
    err = AZURE.parse_error(400, {}, UNSUPPORTED)
    assert err.param == "max_tokens"
    assert "max_completion_tokens" in err.message
    err = AZURE.parse_error(400, {}, FILTERED)
    assert err.param == "prompt" and err.code == "content_filter"


def test_non_json_body_message():
    err = OPENAI.parse_error(502, {}, b"<html>\n  <body>Bad   Gateway</body></html>")
    assert err.message == "<html> <body>Bad Gateway</body></html>"
    assert OPENAI.parse_error(500, {}, b"").message == "upstream answered HTTP 500"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers, expected):
    err = AZURE.parse_error(429, headers, RATE)
    assert err.retry_after == expected


def test_errors_never_echo_secrets():
    err = OPENAI.parse_error(401, {}, OPENAI_401)
    assert "sk-proj" not in err.message and "abcd" not in err.message
    leaked = orjson.dumps({"error": {"message": f"key {SECRET} rejected, Authorization: Bearer {SECRET}"}})
    err = OPENAI.parse_error(400, {}, leaked)
    assert SECRET not in err.message
    assert redact("api-key 0123456789abcdef0123456789abcdef") == "api-key [redacted]"


# ------------------------------------------------------------------------------------------------
# streaming


def _stream_bytes(flavor: str, crlf: bool = False, **kw: Any) -> tuple[bytes, Any]:
    body = {
        "model": "codex-mini-prod",
        "messages": [{"role": "user", "content": "Explain ünïcödé 🚀 streams in three words " * 300}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body.update(kw.pop("body", {}))
    answer = simulate(body, flavor=flavor, reasoning=True, **kw)
    data = b"".join(answer.sse())
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    return data, answer


def _decode_all(adapter: Any, data: bytes, pieces: list[bytes], **req: Any) -> tuple[list[dict], Any]:
    dec = adapter.stream_decoder(chat(stream=True, **req), route())
    out: list[dict] = []
    for piece in pieces:
        out.extend(dec.feed(piece))
    return out, dec


@pytest.mark.parametrize("flavor", ["azure", "openai"])
@pytest.mark.parametrize("crlf", [False, True])
def test_stream_decoder_split_at_every_offset(flavor, crlf):
    data, answer = _stream_bytes(flavor, crlf=crlf, text="Streams: ünïcödé 🚀 split anywhere, identical.")
    assert "🚀".encode() in data
    adapter = AZURE if flavor == "azure" else OPENAI
    reference, ref_dec = _decode_all(adapter, data, [data])
    assert ref_dec.finished and ref_dec.finish_reason == "stop"
    assert ref_dec.usage is not None and ref_dec.usage.cached_input_tokens > 0
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in reference) == answer.text
    for cut in range(1, len(data)):
        out, dec = _decode_all(adapter, data, [data[:cut], data[cut:]])
        assert out == reference, cut
        assert dec.finished and dec.usage == ref_dec.usage
    # and byte by byte
    out, dec = _decode_all(adapter, data, [data[i : i + 1] for i in range(len(data))])
    assert out == reference and dec.finished


def test_stream_decoder_output_shape_azure():
    data, answer = _stream_bytes("azure")
    out, dec = _decode_all(AZURE, data, [data])
    # annotation-only first event, trailing annotation and usage-only chunk are not returned
    assert len(out) == len(answer.chunks()) - 3
    for chunk in out:
        assert chunk["model"] == "codex-mini"
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["choices"]
        assert "usage" not in chunk
        assert "prompt_filter_results" not in chunk
        assert all("content_filter_results" not in c for c in chunk["choices"])
        assert all("delta" in c for c in chunk["choices"])
    assert out[0]["choices"][0]["delta"]["role"] == "assistant"
    assert out[-1]["choices"][0]["finish_reason"] == "stop"
    u = answer.usage()
    assert dec.usage.input_tokens == u["prompt_tokens"] - u["prompt_tokens_details"]["cached_tokens"]
    assert dec.usage.reasoning_tokens == u["completion_tokens_details"]["reasoning_tokens"]


def test_stream_decoder_sse_syntax():
    dec = OpenAIStreamDecoder("codex-mini")
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "a\nb"}}]}
    events = (
        b": keep-alive comment\n\n"
        b"event: message\nid: 1\nretry: 10\n: note\ndata:" + orjson.dumps(chunk) + b"\n\n"
        b"\n\n\n"
        b"id: 2\n\n"
        b"data: [DONE]\n\n"
    )
    out = dec.feed(events)
    assert out == [{**chunk, "model": "codex-mini"}]
    assert dec.finished


def test_stream_decoder_multi_data_lines():
    dec = OpenAIStreamDecoder("m")
    out = dec.feed(b'data: {"id":"c","choices":\ndata: [{"index":0,"delta":{"content":"x"}}]}\n\n')
    assert out == [{"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "x"}}]}]
    assert not dec.finished


def test_stream_decoder_reasoning_content_and_show_thinking():
    data, _ = _stream_bytes("openai", reasoning_text="Let me think about it.")
    hidden, _ = _decode_all(OPENAI, data, [data])
    shown, _ = _decode_all(OPENAI, data, [data], show_thinking=True)
    assert not any("reasoning_content" in c["choices"][0]["delta"] for c in hidden)
    thoughts = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in shown)
    assert thoughts == "Let me think about it."
    assert len(shown) - len(hidden) == len(thoughts.split(" "))


def test_stream_decoder_tool_calls():
    body = {"tools": TOOLS, "tool_choice": "required"}
    data, _ = _stream_bytes("azure", body=body, arg_chunk_chars=3)
    out, dec = _decode_all(AZURE, data, [data])
    assert dec.finish_reason == "tool_calls"
    args = "".join(
        tc["function"].get("arguments", "") for c in out for tc in c["choices"][0]["delta"].get("tool_calls", [])
    )
    assert orjson.loads(args) == {"order_id": "sim-order_id"}
    assert out[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "lookup_order"


def test_stream_decoder_error_event():
    dec = OpenAIStreamDecoder("m")
    dec.feed(b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"x"}}]}\n\n')
    with pytest.raises(UpstreamError) as exc:
        dec.feed(b'data: {"error":{"message":"The server had an error","type":"server_error","code":"boom"}}\n\n')
    assert exc.value.kind is ErrorKind.SERVER and exc.value.code == "boom"
    with pytest.raises(UpstreamError):
        OpenAIStreamDecoder("m").feed(b"data: {not json\n\n")


def test_stream_decoder_strips_usage_null_and_keeps_finish_without_delta():
    dec = OpenAIStreamDecoder("m")
    out = dec.feed(
        b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}],"usage":null}\n\n'
        b'data: {"id":"c","choices":[{"index":0,"finish_reason":"length"}]}\n\n'
        b'data: {"id":"c","choices":[{"index":0,"finish_reason":null,"content_filter_results":{}}]}\n\n'
    )
    assert "usage" not in out[0]
    assert out[1]["choices"][0] == {"index": 0, "finish_reason": "length", "delta": {}}
    assert len(out) == 2 and dec.finish_reason == "length"
    assert dec.usage is None and not dec.finished


def test_stream_decoder_bare_cr_line_endings():
    data, _ = _stream_bytes("openai")
    ref, _ = _decode_all(OPENAI, data, [data])
    cr = data.replace(b"\n", b"\r")
    for step in (1, 7):
        out, dec = _decode_all(OPENAI, cr, [cr[i : i + step] for i in range(0, len(cr), step)])
        assert out == ref and dec.finished


@pytest.mark.parametrize("adapter", [AZURE, OPENAI])
def test_anthropic_thinking_blocks_sent_back_by_a_client_are_not_forwarded(adapter):
    blocks = [{"type": "thinking", "thinking": "t", "signature": "s"}]
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": "{}"}}
    messages = [
        *copy.deepcopy(MESSAGES),
        {"role": "assistant", "content": None, "tool_calls": [call], "thinking_blocks": blocks},
        {"role": "tool", "tool_call_id": "call_1", "content": "shipped"},
    ]
    request = chat({"messages": messages, "tools": TOOLS})
    _, body = sent(adapter, request, route("azure" if adapter is AZURE else "openai"))
    assert body["messages"][2] == {"role": "assistant", "content": None, "tool_calls": [call]}
    assert request.body["messages"][2]["thinking_blocks"] == blocks  # the client's request is left as sent
