"""Unit tests of the `google_vertex` adapter (Gemini on Vertex AI, express mode): pure, no network."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.providers import get_adapter, google_vertex
from gateway.types import ChatRequest, ErrorKind, RequestRejected, Route, UpstreamError

# Discovery first: gateway/providers/__init__.py loads every adapter only while its registry is empty,
# so importing one adapter module before the first lookup would leave the others unregistered.
VERTEX = get_adapter("google_vertex")
from gateway.providers.google_vertex import GeminiStreamDecoder, normalize_usage, upstream_url  # noqa: E402

SECRET = "AQ.vertex-express-key-0123456789abcdef"
PNG = "iVBORw0KGgo="
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


def route(**kw: Any) -> Route:
    fields: dict[str, Any] = {
        "id": 3,
        "name": "vertex",
        "model_slug": "gemini-2.5-flash",
        "provider": "google-vertex",
        "endpoint_type": "google_vertex",
        "base_url": "https://aiplatform.googleapis.com",
        "deployment": "gemini-2.5-flash",
        "api_key": SECRET,
        "reasoning": True,
    }
    fields.update(kw)
    return Route(**fields)


def chat(body: dict[str, Any] | None = None, **kw: Any) -> ChatRequest:
    body = body or {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}
    body.setdefault("model", "gemini-2.5-flash")
    mx = body.get("max_completion_tokens", body.get("max_tokens"))
    kw.setdefault("max_output_tokens", mx)
    kw.setdefault("reasoning_effort", body.get("reasoning_effort"))
    return ChatRequest(model="gemini-2.5-flash", body=body, stream=bool(body.get("stream")), **kw)


def sent(request: ChatRequest, r: Route | None = None) -> tuple[str, dict[str, str], dict[str, Any]]:
    up = VERTEX.prepare(request, r or route())
    return up.url, up.headers, orjson.loads(up.body)


# -- translate in -------------------------------------------------------------------------------------


def test_url_and_auth_header_express_mode_and_project_form():
    url, headers, _ = sent(chat())
    assert url == "https://aiplatform.googleapis.com/v1/publishers/google/models/gemini-2.5-flash:generateContent"
    assert headers["x-goog-api-key"] == SECRET and "authorization" not in headers
    stream = chat({"messages": [{"role": "user", "content": "hi"}], "stream": True})
    assert VERTEX.prepare(stream, route()).url.endswith(":streamGenerateContent?alt=sse")
    project = route(base_url="https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1")
    assert upstream_url(project, stream=False) == (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1"
        "/publishers/google/models/gemini-2.5-flash:generateContent"
    )
    assert upstream_url(route(base_url="https://aiplatform.googleapis.com/v1/"), stream=False).startswith(
        "https://aiplatform.googleapis.com/v1/publishers/"
    )


def test_system_roles_merge_and_no_openai_fields_upstream():
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use English."}]},
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "two"}]},
            {"role": "assistant", "content": ""},
            {"role": "assistant", "content": "reply"},
            {"role": "user", "content": "three"},
        ],
        "max_tokens": 100,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "n": 2,
        "seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "service_tier": "priority",
    }
    _, _, out = sent(chat(body))
    assert out["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Use English."}]}
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"text": "reply"}]},
        {"role": "user", "parts": [{"text": "three"}]},
    ]
    assert out["generationConfig"] == {
        "maxOutputTokens": 100,
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.2,
    }
    assert set(out) == {"contents", "systemInstruction", "generationConfig"}


def test_tool_calls_and_results_use_names_from_the_matching_call_id():
    body = {
        "messages": [
            {"role": "user", "content": "status of A and B?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"order_id":"A"}'},
                    },
                    {"id": "c2", "type": "function", "function": {"name": "other", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "c2", "content": "nothing"},
            {"role": "tool", "tool_call_id": "c1", "content": '{"status":"shipped"}'},
        ],
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "lookup_order"}},
    }
    _, _, out = sent(chat(body))
    assert out["contents"][1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "lookup_order", "args": {"order_id": "A"}, "id": "c1"}},
            {"functionCall": {"name": "other", "args": {}, "id": "c2"}},
        ],
    }
    assert out["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "other", "id": "c2", "response": {"output": "nothing"}}},
            {"functionResponse": {"name": "lookup_order", "id": "c1", "response": {"output": '{"status":"shipped"}'}}},
        ],
    }
    decl = out["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "lookup_order" and decl["parametersJsonSchema"] == TOOLS[0]["function"]["parameters"]
    assert "type" not in out["tools"][0]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup_order"]}}


@pytest.mark.parametrize(("choice", "mode"), [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")])
def test_tool_choice_modes(choice, mode):
    _, _, out = sent(chat({"messages": [{"role": "user", "content": "x"}], "tools": TOOLS, "tool_choice": choice}))
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_tool_result_without_a_matching_call_is_rejected():
    body = {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "r"}]}
    with pytest.raises(RequestRejected) as exc:
        VERTEX.prepare(chat(body), route())
    assert exc.value.param == "messages[1].tool_call_id"


def test_inline_image_and_file_become_inline_data_remote_url_is_rejected():
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{PNG}"}},
                    {
                        "type": "file",
                        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
                    },
                ],
            }
        ]
    }
    _, _, out = sent(chat(body))
    assert out["contents"][0]["parts"][1:] == [
        {"inlineData": {"mimeType": "image/jpeg", "data": PNG}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]
    remote = {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
        ]
    }
    with pytest.raises(RequestRejected) as exc:
        VERTEX.prepare(chat(remote), route())
    assert exc.value.param == "messages[1].content[0].image_url.url" and exc.value.status == 400


def test_response_format_json_object_and_schema():
    _, _, out = sent(chat({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}))
    assert out["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    _, _, out = sent(chat({"messages": [{"role": "user", "content": "x"}], "response_format": fmt}))
    assert out["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_reasoning_effort_uses_the_spec_budget_then_the_fallback_and_show_thinking():
    body = {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "medium"}
    _, _, out = sent(chat(dict(body), reasoning_budget=4000, show_thinking=True))
    assert out["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 4000, "includeThoughts": True}
    _, _, out = sent(chat(dict(body)))
    assert out["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 8192}
    _, _, out = sent(chat({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "none"}))
    assert out["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}


def test_unknown_field_is_rejected_before_sending():
    with pytest.raises(RequestRejected) as exc:
        VERTEX.prepare(chat({"messages": [{"role": "user", "content": "x"}], "logit_bias": {}}), route())
    assert exc.value.param == "logit_bias"


# -- normalize out ------------------------------------------------------------------------------------

USAGE = {
    "promptTokenCount": 120,
    "cachedContentTokenCount": 100,
    "candidatesTokenCount": 30,
    "thoughtsTokenCount": 50,
    "toolUsePromptTokenCount": 5,
    "totalTokenCount": 205,
}


def test_usage_buckets_are_disjoint_and_add_up():
    usage = normalize_usage(USAGE)
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens, usage.reasoning_tokens) == (
        25,
        100,
        80,
        50,
    )
    assert usage.total_tokens == USAGE["totalTokenCount"]


def test_completion_text_thoughts_calls_and_finish_reason():
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "pondering", "thought": True},
                        {"text": "Checking."},
                        {"functionCall": {"name": "lookup_order", "args": {"order_id": "A"}}},
                        {"functionCall": {"name": "lookup_order", "args": {"order_id": "B"}}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": USAGE,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp42",
    }
    req = chat(show_thinking=True)
    completion, usage = VERTEX.parse_completion(req, route(), orjson.dumps(body))
    choice = completion["choices"][0]
    assert completion["object"] == "chat.completion" and completion["model"] == "gemini-2.5-flash"
    assert choice["finish_reason"] == "tool_calls"
    msg = choice["message"]
    assert msg["content"] == "Checking." and msg["reasoning_content"] == "pondering"
    ids = [c["id"] for c in msg["tool_calls"]]
    assert len(set(ids)) == 2 and ids == ["call_resp42_0_0", "call_resp42_0_1"]
    assert orjson.loads(msg["tool_calls"][1]["function"]["arguments"]) == {"order_id": "B"}
    assert usage.output_tokens == 80
    hidden, _ = VERTEX.parse_completion(chat(), route(), orjson.dumps(body))
    assert "reasoning_content" not in hidden["choices"][0]["message"]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"), ("STOP", "stop")],
)
def test_finish_reasons(reason, expected):
    body = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}], "usageMetadata": USAGE}
    completion, _ = VERTEX.parse_completion(chat(), route(), orjson.dumps(body))
    assert completion["choices"][0]["finish_reason"] == expected


def test_blocked_prompt_is_an_answer_with_content_filter():
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}
    completion, usage = VERTEX.parse_completion(chat(), route(), orjson.dumps(body))
    assert completion["choices"][0]["finish_reason"] == "content_filter"
    assert usage.input_tokens == 9


# -- errors ---------------------------------------------------------------------------------------------


def _err(code: int, status: str, message: str = "m", details: list | None = None) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "status": status, "details": details or []}})


@pytest.mark.parametrize(
    ("status", "gstatus", "message", "kind"),
    [
        (400, "INVALID_ARGUMENT", "bad", ErrorKind.CLIENT),
        (400, "FAILED_PRECONDITION", "User location is not supported", ErrorKind.CLIENT),
        (400, "FAILED_PRECONDITION", "Please enable billing for the project.", ErrorKind.QUOTA),
        (401, "UNAUTHENTICATED", "no key", ErrorKind.AUTH),
        (403, "PERMISSION_DENIED", "denied", ErrorKind.AUTH),
        (404, "NOT_FOUND", "no model", ErrorKind.NOT_FOUND),
        (429, "RESOURCE_EXHAUSTED", "slow down", ErrorKind.RATE_LIMITED),
        (500, "INTERNAL", "oops", ErrorKind.SERVER),
        (503, "UNAVAILABLE", "overloaded", ErrorKind.SERVER),
        (504, "DEADLINE_EXCEEDED", "late", ErrorKind.TIMEOUT),
    ],
)
def test_error_classification(status, gstatus, message, kind):
    err = VERTEX.parse_error(status, {}, _err(status, gstatus, message))
    assert err.kind == kind and err.status == status and err.message == message
    assert err.code == gstatus.lower()


def test_invalid_api_key_400_is_auth_and_retry_info_is_read():
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
    err = VERTEX.parse_error(400, {}, _err(400, "INVALID_ARGUMENT", "API key not valid.", details))
    assert err.kind == ErrorKind.AUTH
    retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}]
    err = VERTEX.parse_error(429, {}, _err(429, "RESOURCE_EXHAUSTED", "quota", retry))
    assert err.retry_after == 17.0
    assert VERTEX.parse_error(502, {}, b"<html>bad gateway</html>").kind == ErrorKind.SERVER


# -- streaming --------------------------------------------------------------------------------------------


def _sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in events)


STREAM_EVENTS = [
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "hmm ", "thought": True}]}}],
        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
        "responseId": "r1",
    },
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Hél"}]}}],
        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 14},
        "responseId": "r1",
    },
    {
        "candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]}}],
        "responseId": "r1",
    },
    {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 2}}}]},
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 7,
            "totalTokenCount": 39,
        },
        "responseId": "r1",
    },
]


def _collect(decoder: GeminiStreamDecoder, pieces: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for piece in pieces:
        out.extend(decoder.feed(piece))
    return out


def test_stream_decodes_text_thoughts_parallel_calls_usage_snapshot():
    decoder = GeminiStreamDecoder("gemini-2.5-flash", show_thinking=True)
    chunks = _collect(decoder, [_sse(STREAM_EVENTS)])
    assert decoder.finished and decoder.finish_reason == "tool_calls"
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-r1" for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "reasoning_content": "hmm "}
    assert deltas[1] == {"content": "Hél"}
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert [c["index"] for c in calls] == [0, 1]
    assert calls[0]["id"] != calls[1]["id"] and all(c["function"]["name"] == "f" for c in calls)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    usage = decoder.usage
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (12, 27, 7)
    assert usage.total_tokens == 39


def test_stream_hides_thoughts_without_show_thinking():
    decoder = GeminiStreamDecoder("gemini-2.5-flash")
    chunks = _collect(decoder, [_sse(STREAM_EVENTS)])
    assert not any("reasoning_content" in c["choices"][0]["delta"] for c in chunks)


def test_stream_survives_a_split_at_every_byte_offset():
    data = _sse(STREAM_EVENTS)
    whole = _collect(GeminiStreamDecoder("m", show_thinking=True), [data])
    for cut in range(1, len(data)):
        decoder = GeminiStreamDecoder("m", show_thinking=True)
        got = _collect(decoder, [data[:cut], data[cut:]])
        for c in got:
            c["created"] = whole[0]["created"]
        assert got == [dict(w, created=whole[0]["created"]) for w in whole], cut
        assert decoder.finished and decoder.usage == normalize_usage(STREAM_EVENTS[-1]["usageMetadata"])


def test_stream_one_byte_at_a_time():
    data = _sse(STREAM_EVENTS)
    decoder = GeminiStreamDecoder("m")
    chunks = _collect(decoder, [data[i : i + 1] for i in range(len(data))])
    assert decoder.finished and sum(1 for c in chunks if "tool_calls" in c["choices"][0]["delta"]) == 2


def test_stream_blocked_prompt_and_error_event():
    decoder = GeminiStreamDecoder("m")
    chunks = decoder.feed(_sse([{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}]))
    assert decoder.finished and chunks[0]["choices"][0]["finish_reason"] == "content_filter"
    decoder = GeminiStreamDecoder("m")
    with pytest.raises(UpstreamError) as exc:
        decoder.feed(_sse([{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}]))
    assert exc.value.kind == ErrorKind.SERVER


def test_stream_waits_for_every_candidate():
    decoder = GeminiStreamDecoder("m", candidates=2)
    decoder.feed(_sse([{"candidates": [{"index": 0, "content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"}]}]))
    assert not decoder.finished
    decoder.feed(_sse([{"candidates": [{"index": 1, "content": {"parts": [{"text": "b"}]}, "finishReason": "STOP"}]}]))
    assert decoder.finished


@given(st.binary(min_size=1, max_size=300), st.sampled_from(["call_x_0_0", "fc-abc-1", "call_a17"]))
def test_a_thought_signature_survives_the_round_trip_through_a_tool_call_id(raw, base):
    signature = base64.b64encode(raw).decode()
    call_id = google_vertex._signed_id(base, {"thoughtSignature": signature})
    assert all(c.isalnum() or c in "-_" for c in call_id)
    assert google_vertex.split_call_id(call_id) == (base, signature)
    assert google_vertex.split_call_id(base) == (base, None)
