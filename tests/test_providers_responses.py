"""The Responses adapters (openai_responses, azure_openai_v1_responses): the translation in, pure; and the
adapters' upstream requests sent to the mock Responses API (which refuses what the real one refuses), with
its non-stream answers and streams normalized back to chat shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.providers import get_adapter
from gateway.spec import ModelSpec, validate_chat
from gateway.types import ChatRequest, ErrorKind, RequestRejected, Route, UpstreamError
from tests.mocks.responses_upstream import DEFAULT_SUMMARY, DEFAULT_TEXT, Scenario, responses_upstream  # noqa: F401

AZURE = get_adapter("azure_openai_v1_responses")
OPENAI = get_adapter("openai_responses")
PNG = "data:image/png;base64,iVBORw0KGgo="
PDF = "JVBERi0xLjQK"
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
CATALOG = {m["slug"]: m for m in json.loads(Path("billing/catalog/models.json").read_text())["models"]}


def spec(slug: str = "codex-mini") -> ModelSpec:
    entry = CATALOG[slug]
    return ModelSpec.from_catalog(
        slug=slug,
        reasoning=entry["reasoning"],
        context_window=entry["context_window"],
        max_output_tokens=entry["max_output_tokens"],
        capabilities=entry["capabilities"],
        spec=entry["spec"],
    )


def chat(slug: str = "codex-mini", **body: Any) -> ChatRequest:
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return validate_chat({"model": slug, **body}, spec(slug))


def route(mock=None, *, azure: bool = True, **kw: Any) -> Route:
    fields: dict[str, Any] = {
        "id": 7,
        "name": "responses",
        "model_slug": "codex-mini",
        "provider": "azure-openai" if azure else "openai",
        "endpoint_type": "azure_openai_v1_responses" if azure else "openai_responses",
        "base_url": mock.url if mock else "https://res.openai.azure.com/openai/v1/",
        "deployment": "codex-mini",
        "api_key": (mock.azure_key if azure else mock.openai_key) if mock else "route-secret-0123456789",
        "reasoning": True,
    }
    fields.update(kw)
    return Route(**fields)


def prepared(request: ChatRequest, r: Route | None = None, adapter=AZURE) -> dict[str, Any]:
    return orjson.loads(adapter.prepare(request, r or route()).body)


def send(mock, request: ChatRequest, *, azure: bool = True, **route_kw: Any):
    adapter = AZURE if azure else OPENAI
    r = route(mock, azure=azure, **route_kw)
    up = adapter.prepare(request, r)
    answer = httpx.post(up.url, headers=up.headers, content=up.body, timeout=10)
    return adapter, r, answer


# ------------------------------------------------------------------------------------------------
# translate in (pure)


def test_urls_and_auth_headers_per_family():
    up = AZURE.prepare(chat(), route())
    assert up.url == "https://res.openai.azure.com/openai/v1/responses"
    assert up.headers["api-key"] == "route-secret-0123456789" and "authorization" not in up.headers
    assert AZURE.prepare(chat(), route(api_version="preview")).url.endswith("/openai/v1/responses?api-version=preview")
    up = OPENAI.prepare(chat(), route(azure=False, base_url="https://api.openai.com/v1"))
    assert up.url == "https://api.openai.com/v1/responses"
    assert up.headers["authorization"] == "Bearer route-secret-0123456789" and "api-key" not in up.headers


def test_messages_become_instructions_and_input_items_with_call_ids():
    body = prepared(
        chat(
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this image and file?"},
                        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                        {"type": "file", "file": {"filename": "a.pdf", "file_data": PDF}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "shipped"},
                {"role": "system", "content": "Answer in one line."},
            ],
            tools=TOOLS,
        )
    )
    assert body["model"] == "codex-mini"
    assert body["instructions"] == "Be brief.\n\nUse metric units."
    assert "messages" not in body
    assert body["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is in this image and file?"},
                {"type": "input_image", "image_url": PNG, "detail": "low"},
                {"type": "input_file", "file_data": "data:application/pdf;base64," + PDF, "filename": "a.pdf"},
            ],
        },
        {"type": "message", "role": "assistant", "content": "Checking."},
        {"type": "function_call", "call_id": "call_1", "name": "lookup_order", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "shipped"},
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Answer in one line."}]},
    ]


def test_fields_map_to_their_responses_names():
    body = prepared(
        chat(
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "lookup_order"}},
            max_tokens=300,
            reasoning_effort="high",
            show_thinking=True,
            response_format={"type": "json_schema", "json_schema": {"name": "order", "schema": {"type": "object"}}},
            temperature=0.2,
            metadata={"team": "a"},
            parallel_tool_calls=False,
            stream=True,
        )
    )
    assert body["tools"] == [
        {
            "type": "function",
            "name": "lookup_order",
            "parameters": TOOLS[0]["function"]["parameters"],
            "strict": False,  # chat's default; the Responses API would enforce strict schemas if left out
            "description": "Return order status by ID.",
        }
    ]
    assert body["tool_choice"] == {"type": "function", "name": "lookup_order"}
    assert body["max_output_tokens"] == 300
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["text"] == {"format": {"type": "json_schema", "name": "order", "schema": {"type": "object"}}}
    assert body["metadata"] == {"team": "a"} and body["parallel_tool_calls"] is False
    assert body["stream"] is True and "stream_options" not in body
    for chat_only in ("temperature", "max_tokens", "max_completion_tokens", "reasoning_effort", "response_format"):
        assert chat_only not in body
    assert body["store"] is False


def test_store_is_false_unless_the_route_retains_and_the_client_did_not_opt_out():
    assert prepared(chat())["store"] is False
    assert prepared(chat(store=True))["store"] is False
    assert prepared(chat(), route(store=True))["store"] is True
    assert prepared(chat(store=False), route(store=True))["store"] is False


def test_service_tier_only_on_routes_with_priority_processing():
    assert "service_tier" not in prepared(chat(service_tier="priority"))
    assert prepared(chat(service_tier="priority"), route(supports_priority=True))["service_tier"] == "priority"


def test_non_reasoning_route_takes_sampling_and_refuses_effort():
    r = route(model_slug="gpt-4.1-mini", deployment="gpt-4.1-mini", reasoning=False)
    body = prepared(chat("gpt-4.1-mini", temperature=0.3), r)
    assert body["temperature"] == 0.3 and "reasoning" not in body
    request = ChatRequest(
        model="gpt-4.1-mini", body={"messages": [{"role": "user", "content": "hi"}]}, reasoning_effort="low"
    )
    with pytest.raises(RequestRejected) as info:
        AZURE.prepare(request, r)
    assert info.value.param == "reasoning_effort"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"stop": ["END"]}, "stop"),
        ({"seed": 7}, "seed"),
        ({"n": 2}, "n"),
        ({"max_tokens": 8}, "max_tokens"),
        ({"max_completion_tokens": 15}, "max_completion_tokens"),
    ],
)
def test_fields_the_responses_api_lacks_are_a_400_naming_them(fields, param):
    with pytest.raises(RequestRejected) as info:
        AZURE.prepare(chat(**fields), route())
    assert info.value.param == param and info.value.status == 400 and param in info.value.message


# ------------------------------------------------------------------------------------------------
# against the mock Responses API


def test_mock_refuses_chat_shaped_requests_as_the_service_does(responses_upstream):
    url = responses_upstream.url + "/openai/v1/responses"
    headers = {"api-key": responses_upstream.azure_key}
    cases = [
        ({"messages": [{"role": "user", "content": "hi"}]}, None, "moved to 'input'"),
        ({"input": "hi", "max_tokens": 50}, "max_tokens", "Unknown parameter: 'max_tokens'."),
        ({"input": "hi", "stop": ["x"]}, "stop", "Did you mean 'store'?"),
        ({"input": "hi", "response_format": {"type": "json_object"}}, "response_format", "'text.format'"),
        ({"input": "hi", "max_output_tokens": 8}, "max_output_tokens", "Expected a value >= 16"),
        ({"input": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}, "input[0].content[0].type", ""),
        ({"input": "hi", "tools": TOOLS}, "tools[0].name", "Missing required parameter"),
        ({"input": "hi", "temperature": 0.2}, "temperature", "not supported with this model"),
        (
            {
                "input": "hi",
                "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
            },
            "tools[0].parameters",
            "'additionalProperties' is required",
        ),
    ]
    for extra, param, words in cases:
        answer = httpx.post(url, headers=headers, json={"model": "codex-mini", **extra}, timeout=10)
        assert answer.status_code == 400, extra
        error = answer.json()["error"]
        assert error["param"] == param and words in error["message"], (extra, error)
    assert (
        httpx.post(responses_upstream.url + "/openai/v1/chat/completions", headers=headers, json={}).status_code == 404
    )


def test_plain_answer_is_normalized_with_usage_buckets(responses_upstream):
    responses_upstream.always(Scenario(usage={"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024}}))
    request = chat(messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    adapter, r, answer = send(responses_upstream, request)
    assert answer.status_code == 200, answer.text
    completion, usage = adapter.parse_completion(request, r, answer.content)
    assert completion["object"] == "chat.completion" and completion["model"] == "codex-mini"
    message = completion["choices"][0]["message"]
    assert message["content"] == DEFAULT_TEXT and "reasoning_content" not in message
    assert completion["choices"][0]["finish_reason"] == "stop"
    raw = answer.json()["usage"]
    assert usage.input_tokens == 1200 - 1024 and usage.cached_input_tokens == 1024
    assert usage.output_tokens == raw["output_tokens"] and usage.reasoning_tokens == 192
    assert usage.total_tokens == raw["total_tokens"]
    sent = responses_upstream.last.json
    assert sent["instructions"] == "Be brief." and sent["store"] is False


def test_tool_round_trip_keeps_call_ids(responses_upstream):
    request = chat(tools=TOOLS, tool_choice="required", messages=[{"role": "user", "content": "Order A-17?"}])
    adapter, r, answer = send(responses_upstream, request, azure=False)
    assert answer.status_code == 200, answer.text
    completion, _ = adapter.parse_completion(request, r, answer.content)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"] == {"name": "lookup_order", "arguments": '{"order_id":"A-17"}'}
    follow_up = chat(
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Order A-17?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "shipped"},
        ],
    )
    adapter, r, answer = send(responses_upstream, follow_up, azure=False)
    assert answer.status_code == 200, answer.text
    assert adapter.parse_completion(follow_up, r, answer.content)[0]["choices"][0]["message"]["content"] == DEFAULT_TEXT
    # A result whose call the input does not carry is refused upstream, as the service does.
    orphan = chat(tools=TOOLS, messages=[{"role": "tool", "tool_call_id": "call_x", "content": "?"}])
    assert send(responses_upstream, orphan)[2].status_code == 400


def test_incomplete_for_the_output_limit_is_finish_reason_length(responses_upstream):
    request = chat(max_tokens=200, reasoning_effort="low", messages=[{"role": "user", "content": "Write a lot."}])
    responses_upstream.script(Scenario(text="word " * 400))
    adapter, r, answer = send(responses_upstream, request)
    assert answer.json()["status"] == "incomplete"
    completion, usage = adapter.parse_completion(request, r, answer.content)
    assert completion["choices"][0]["finish_reason"] == "length"
    assert usage.output_tokens == answer.json()["usage"]["output_tokens"]


def test_reasoning_summary_is_reasoning_content_only_when_asked(responses_upstream):
    request = chat(reasoning_effort="medium", show_thinking=True)
    adapter, r, answer = send(responses_upstream, request)
    assert responses_upstream.last.json["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert adapter.parse_completion(request, r, answer.content)[0]["choices"][0]["message"]["reasoning_content"] == (
        DEFAULT_SUMMARY
    )


def _stream(mock, request: ChatRequest, *, one_byte: bool = False):
    adapter, r, answer = send(mock, request)
    assert answer.status_code == 200, answer.text
    decoder = adapter.stream_decoder(request, r)
    data = answer.content
    pieces = [data[i : i + 1] for i in range(len(data))] if one_byte else [data]
    chunks = [c for piece in pieces for c in decoder.feed(piece)]
    return decoder, chunks, data


def test_stream_becomes_chat_chunks_with_usage_whatever_the_byte_split(responses_upstream):
    request = chat(stream=True, show_thinking=True, reasoning_effort="low")
    decoder, chunks, raw = _stream(responses_upstream, request)
    _, again, _ = _stream(responses_upstream, request, one_byte=True)
    assert [c["choices"] for c in chunks] == [c["choices"] for c in again]
    assert b"[DONE]" not in raw and b"sequence_number" in raw
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "codex-mini" for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant"
    assert "".join(d.get("reasoning_content", "") for d in deltas) == DEFAULT_SUMMARY
    assert "".join(d.get("content", "") for d in deltas) == DEFAULT_TEXT
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert decoder.finished and decoder.usage is not None and decoder.usage.reasoning_tokens == 64
    assert responses_upstream.last.json["stream"] is True


def test_stream_tool_calls_arrive_as_indexed_deltas(responses_upstream):
    request = chat(stream=True, tools=TOOLS, tool_choice="required")
    responses_upstream.script(Scenario(tool_calls=[("lookup_order", {"order_id": "A-1"}), ("lookup_order", {})]))
    decoder, chunks, _ = _stream(responses_upstream, request, one_byte=True)
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for call in chunk["choices"][0]["delta"].get("tool_calls") or ():
            slot = calls.setdefault(call["index"], {"id": call.get("id"), "name": None, "arguments": ""})
            slot["name"] = slot["name"] or call.get("function", {}).get("name")
            slot["arguments"] += call.get("function", {}).get("arguments") or ""
    assert [calls[0]["arguments"], calls[1]["arguments"]] == ['{"order_id":"A-1"}', "{}"]
    assert calls[0]["id"].startswith("call_") and calls[0]["id"] != calls[1]["id"]
    assert decoder.finish_reason == "tool_calls"


def test_created_and_in_progress_are_annotations_only():
    decoder = AZURE.stream_decoder(chat(stream=True), route())
    created = {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "created_at": 5}}
    assert decoder.feed(b"event: response.created\ndata: " + orjson.dumps(created) + b"\n\n") == []
    delta = {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "delta": "Hi"}
    (chunk,) = decoder.feed(b"data: " + orjson.dumps(delta) + b"\n\n")
    assert (
        chunk["id"] == "chatcmpl-resp_1" and chunk["created"] == 5 and chunk["choices"][0]["delta"]["content"] == "Hi"
    )


@pytest.mark.parametrize("scenario", [Scenario(error_after=3), Scenario(fail_after=3)])
def test_failed_and_error_events_raise_upstream_errors(responses_upstream, scenario):
    responses_upstream.script(scenario)
    request = chat(stream=True)
    adapter, r, answer = send(responses_upstream, request)
    decoder = adapter.stream_decoder(request, r)
    with pytest.raises(UpstreamError) as info:
        decoder.feed(answer.content)
    assert info.value.kind == ErrorKind.SERVER and info.value.code == "server_error"


def test_errors_classify_like_the_openai_family(responses_upstream):
    for status, kind in ((401, ErrorKind.AUTH), (429, ErrorKind.RATE_LIMITED), (500, ErrorKind.SERVER)):
        responses_upstream.script(Scenario(status=status, retry_after=2))
        adapter, _, answer = send(responses_upstream, chat())
        error = adapter.parse_error(answer.status_code, answer.headers, answer.content)
        assert error.kind == kind
    adapter, _, answer = send(responses_upstream, chat(), deployment="missing")
    assert adapter.parse_error(answer.status_code, answer.headers, answer.content).kind == ErrorKind.NOT_FOUND
    adapter, _, answer = send(responses_upstream, chat(), api_key="wrong")
    assert adapter.parse_error(answer.status_code, answer.headers, answer.content).kind == ErrorKind.AUTH
