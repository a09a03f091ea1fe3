"""The mock upstream behaves like Azure OpenAI v1 chat and OpenAI chat: driven with httpx, with the official
`openai` SDK, and with Omixa's own adapters. Also the offline simulator views (same generation core)."""

from __future__ import annotations

import time

import httpx
import openai
import orjson
import pytest
from django.test import AsyncRequestFactory

from gateway import simulator_views
from gateway.providers import get_adapter
from gateway.types import ChatRequest, ErrorKind
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.mocks.upstream import (
    MockUpstream,
    Scenario,
    auth_failure,
    broken_stream,
    error_mid_stream,
    insufficient_quota,
    rate_limited,
    server_error,
    slow_stream,
    unavailable,
)

USER = [{"role": "user", "content": "Please lookup order 4711 and explain the status"}]
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


def azure_post(mock: MockUpstream, body: dict, *, key: str | None = None, **kw) -> httpx.Response:
    return httpx.post(
        mock.url + "/openai/v1/chat/completions",
        headers={"api-key": mock.azure_key if key is None else key},
        json=body,
        **kw,
    )


def openai_post(mock: MockUpstream, body: dict, *, key: str | None = None, **kw) -> httpx.Response:
    return httpx.post(
        mock.url + "/v1/chat/completions",
        headers={"authorization": "Bearer " + (mock.openai_key if key is None else key)},
        json=body,
        **kw,
    )


def sse_payloads(raw: bytes) -> list[bytes]:
    return [e[6:] for e in raw.split(b"\n\n") if e.startswith(b"data: ")]


# ------------------------------------------------------------------------------------------------
# faithful answers and rejections (httpx)


def test_azure_non_stream_shape_and_recording(mock_upstream):
    r = azure_post(mock_upstream, {"model": "codex-mini", "messages": USER, "max_completion_tokens": 2000})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert "apim-request-id" in r.headers
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["prompt_filter_results"][0]["prompt_index"] == 0
    assert "content_filter_results" in body["choices"][0]
    msg = body["choices"][0]["message"]
    assert msg["role"] == "assistant" and "order 4711" in msg["content"]
    usage = body["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert body["service_tier"] is None
    rec = mock_upstream.last
    assert rec.path == "/openai/v1/chat/completions"
    assert rec.flavor == "azure" and rec.deployment == "codex-mini"
    assert rec.headers["api-key"] == mock_upstream.azure_key
    assert rec.json["max_completion_tokens"] == 2000


def test_wrong_keys_get_the_providers_401(mock_upstream):
    r = azure_post(mock_upstream, {"model": "codex-mini", "messages": USER}, key="nope")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "401"
    assert r.json()["error"]["message"].startswith("Access denied due to invalid subscription key")
    r = openai_post(mock_upstream, {"model": "gpt-4.1-mini", "messages": USER}, key="sk-wrong")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert "sk-wrong" not in r.text
    # Azure v1 takes the key as a bearer token too (the openai SDK's OpenAI client sends it that way)
    r = httpx.post(
        mock_upstream.url + "/openai/v1/chat/completions",
        headers={"authorization": "Bearer " + mock_upstream.azure_key},
        json={"model": "codex-mini", "messages": USER},
    )
    assert r.status_code == 200


def test_azure_reasoning_rejections(mock_upstream):
    r = azure_post(mock_upstream, {"model": "codex-mini", "messages": USER, "max_tokens": 100})
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
            "type": "invalid_request_error",
            "param": "max_tokens",
            "code": "unsupported_parameter",
        }
    }
    r = azure_post(mock_upstream, {"model": "codex-mini", "messages": USER, "temperature": 0.5})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unsupported_value"
    assert r.json()["error"]["message"].endswith("Only the default (1) value is supported.")
    assert azure_post(mock_upstream, {"model": "codex-mini", "messages": USER, "temperature": 1}).status_code == 200
    for field, value in [("logprobs", True), ("presence_penalty", 0.1), ("logit_bias", {"1": 1})]:
        r = azure_post(mock_upstream, {"model": "codex-mini", "messages": USER, field: value})
        assert r.status_code == 400 and r.json()["error"]["param"] == field
    # a non-reasoning deployment takes them
    r = azure_post(mock_upstream, {"model": "gpt-4.1-mini", "messages": USER, "max_tokens": 50, "temperature": 0.2})
    assert r.status_code == 200


def test_unknown_fields_and_deployments(mock_upstream):
    r = azure_post(mock_upstream, {"model": "codex-mini", "messages": USER, "attachments": []})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Unrecognized request argument supplied: attachments"
    r = azure_post(mock_upstream, {"model": "nope", "messages": USER})
    assert r.status_code == 404 and r.json()["error"]["code"] == "DeploymentNotFound"
    r = openai_post(mock_upstream, {"model": "nope", "messages": USER})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    mock_upstream.add_deployment("nope")
    assert openai_post(mock_upstream, {"model": "nope", "messages": USER}).status_code == 200
    r = httpx.post(mock_upstream.url + "/openai/v1/responses", headers={"api-key": mock_upstream.azure_key}, json={})
    assert r.status_code == 404
    r = openai_post(
        mock_upstream, {"model": "gpt-4.1-mini", "messages": USER, "stream_options": {"include_usage": True}}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream_options"


def test_openai_stream_exact_sequence(mock_upstream):
    body = {"model": "gpt-4.1-mini", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    r = openai_post(mock_upstream, body)
    assert r.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(r.content)
    assert payloads[-1] == b"[DONE]"
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-1])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert (
        text
        == openai_post(mock_upstream, {"model": "gpt-4.1-mini", "messages": USER}).json()["choices"][0]["message"][
            "content"
        ]
    )
    # without include_usage: no usage chunk and no usage keys
    r = openai_post(mock_upstream, {"model": "gpt-4.1-mini", "messages": USER, "stream": True})
    chunks = [orjson.loads(p) for p in sse_payloads(r.content)[:-1]]
    assert all(c["choices"] and "usage" not in c for c in chunks)


def test_azure_stream_starts_with_annotation(mock_upstream):
    body = {"model": "codex-mini", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    chunks = [orjson.loads(p) for p in sse_payloads(azure_post(mock_upstream, body).content)[:-1]]
    first = chunks[0]
    assert first["choices"] == [] and first["id"] == "" and first["object"] == "" and first["created"] == 0
    assert first["model"] == "" and first["prompt_filter_results"]
    assert any("delta" not in c["choices"][0] for c in chunks if c["choices"])  # trailing annotation
    mock_upstream.script(Scenario(annotation_first=False))
    chunks = [orjson.loads(p) for p in sse_payloads(azure_post(mock_upstream, body).content)[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"


def test_long_prompt_gets_cached_tokens(mock_upstream):
    long = [{"role": "user", "content": "word " * 6000}]
    usage = openai_post(mock_upstream, {"model": "gpt-4.1-mini", "messages": long}).json()["usage"]
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    assert cached > 0 and cached % 1024 == 0 and cached < usage["prompt_tokens"]
    short = openai_post(mock_upstream, {"model": "gpt-4.1-mini", "messages": USER}).json()["usage"]
    assert short["prompt_tokens_details"]["cached_tokens"] == 0


def test_service_tier_echo(mock_upstream):
    body = {"messages": USER, "service_tier": "priority"}
    assert openai_post(mock_upstream, {"model": "gpt-4.1", **body}).json()["service_tier"] == "priority"
    assert openai_post(mock_upstream, {"model": "gpt-4.1-mini", **body}).json()["service_tier"] == "default"
    assert azure_post(mock_upstream, {"model": "gpt-4.1", **body}).json()["service_tier"] == "priority"


# ------------------------------------------------------------------------------------------------
# scripted scenarios


def test_scripted_errors_per_flavor(mock_upstream):
    mock_upstream.script(rate_limited(retry_after=2.5))
    r = azure_post(mock_upstream, {"model": "codex-mini", "messages": USER})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "3" and r.headers["retry-after-ms"] == "2500"
    assert r.json()["error"]["code"] == "429"
    mock_upstream.script(rate_limited(retry_after=1))
    r = openai_post(mock_upstream, {"model": "gpt-4.1-mini", "messages": USER})
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    mock_upstream.script(insufficient_quota())
    r = openai_post(mock_upstream, {"model": "gpt-4.1-mini", "messages": USER})
    assert r.status_code == 429 and r.json()["error"]["type"] == "insufficient_quota"
    mock_upstream.script(server_error(500))
    assert azure_post(mock_upstream, {"model": "codex-mini", "messages": USER}).status_code == 500
    mock_upstream.script(unavailable(retry_after=1))
    r = openai_post(mock_upstream, {"model": "gpt-4.1-mini", "messages": USER})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    mock_upstream.script(auth_failure(401))
    r = azure_post(mock_upstream, {"model": "codex-mini", "messages": USER})
    assert r.status_code == 401 and r.json()["error"]["code"] == "401"
    mock_upstream.script(Scenario(status=502, body="<html>bad gateway</html>"))
    r = azure_post(mock_upstream, {"model": "codex-mini", "messages": USER})
    assert r.status_code == 502 and r.text == "<html>bad gateway</html>"
    # queue consumed: back to normal
    assert azure_post(mock_upstream, {"model": "codex-mini", "messages": USER}).status_code == 200


def test_script_targeting_and_counts(mock_upstream):
    mock_upstream.script(server_error(503), deployment="gpt-4.1-mini", times=2)
    mock_upstream.script(server_error(500))
    assert azure_post(mock_upstream, {"model": "codex-mini", "messages": USER}).status_code == 500
    assert azure_post(mock_upstream, {"model": "codex-mini", "messages": USER}).status_code == 200
    statuses = [azure_post(mock_upstream, {"model": "gpt-4.1-mini", "messages": USER}).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    mock_upstream.always(rate_limited(), deployment="codex-mini")
    assert all(
        azure_post(mock_upstream, {"model": "codex-mini", "messages": USER}).status_code == 429 for _ in range(3)
    )
    assert len(mock_upstream.requests_for("codex-mini")) == 5
    mock_upstream.reset()
    assert azure_post(mock_upstream, {"model": "codex-mini", "messages": USER}).status_code == 200
    assert len(mock_upstream.requests) == 1


def test_delay_before_headers(mock_upstream):
    mock_upstream.script(Scenario(delay=0.5))
    with pytest.raises(httpx.ReadTimeout):
        azure_post(mock_upstream, {"model": "codex-mini", "messages": USER}, timeout=httpx.Timeout(5, read=0.1))
    mock_upstream.script(Scenario(delay=0.2))
    start = time.monotonic()
    assert azure_post(mock_upstream, {"model": "codex-mini", "messages": USER}).status_code == 200
    assert time.monotonic() - start >= 0.2


def test_chunk_delay(mock_upstream):
    mock_upstream.script(Scenario(chunk_delay=0.02))
    body = {"model": "gpt-4.1-mini", "messages": USER, "stream": True}
    start = time.monotonic()
    r = openai_post(mock_upstream, body)
    events = len(sse_payloads(r.content))
    assert time.monotonic() - start >= 0.02 * (events - 1)


def test_broken_stream(mock_upstream):
    mock_upstream.script(broken_stream(after=3))
    body = {"model": "codex-mini", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    got = b""
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream(
            "POST",
            mock_upstream.url + "/openai/v1/chat/completions",
            headers={"api-key": mock_upstream.azure_key},
            json=body,
        ) as r:
            assert r.status_code == 200
            for part in r.iter_raw():
                got += part
    assert len(sse_payloads(got)) == 3 and b"[DONE]" not in got


def test_error_event_after_200(mock_upstream):
    mock_upstream.script(
        error_mid_stream(after=2, error={"message": "overloaded", "type": "server_error", "code": "x"})
    )
    r = openai_post(mock_upstream, {"model": "gpt-4.1-mini", "messages": USER, "stream": True})
    assert r.status_code == 200
    payloads = sse_payloads(r.content)
    assert len(payloads) == 3 and b"[DONE]" not in payloads
    assert orjson.loads(payloads[-1]) == {"error": {"message": "overloaded", "type": "server_error", "code": "x"}}


def test_endless_slow_stream_stops_on_disconnect_and_reset(mock_upstream):
    mock_upstream.script(slow_stream(chunk_delay=0.01))
    body = {"model": "gpt-4.1-mini", "messages": USER, "stream": True}
    seen = 0
    with httpx.stream(
        "POST",
        mock_upstream.url + "/v1/chat/completions",
        headers={"authorization": "Bearer " + mock_upstream.openai_key},
        json=body,
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen += 1
            if seen >= 8:
                break
    assert seen >= 8
    mock_upstream.reset()


def test_scripted_raw_events_and_tool_call_stream(mock_upstream):
    mock_upstream.script(Scenario(events=[b": ping\n\n", {"choices": []}, b"data: [DONE]\n\n"]))
    r = openai_post(mock_upstream, {"model": "gpt-4.1-mini", "messages": USER, "stream": True})
    assert r.content == b': ping\n\ndata: {"choices":[]}\n\ndata: [DONE]\n\n'
    mock_upstream.script(Scenario(tool_calls=[("lookup_order", {"order_id": "4711"})], arg_chunk_chars=2))
    r = openai_post(mock_upstream, {"model": "gpt-4.1-mini", "messages": USER, "tools": TOOLS, "stream": True})
    chunks = [orjson.loads(p) for p in sse_payloads(r.content)[:-1]]
    first = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first["id"].startswith("call_") and first["function"] == {"name": "lookup_order", "arguments": ""}
    frags = [c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[1:-1]]
    assert len(frags) > 5 and orjson.loads("".join(frags)) == {"order_id": "4711"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


# ------------------------------------------------------------------------------------------------
# the official openai SDK


def test_openai_sdk_against_openai_flavor(mock_upstream):
    client = openai.OpenAI(base_url=mock_upstream.url + "/v1", api_key=mock_upstream.openai_key, max_retries=0)
    resp = client.chat.completions.create(model="gpt-4.1-mini", messages=USER)
    assert resp.choices[0].message.content and resp.usage.total_tokens > 0
    stream = client.chat.completions.create(
        model="gpt-4.1-mini", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == resp.choices[0].message.content
    # tool call: auto + the user names the tool
    resp = client.chat.completions.create(model="gpt-4.1-mini", messages=USER, tools=TOOLS, tool_choice="auto")
    call = resp.choices[0].message.tool_calls[0]
    assert resp.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "lookup_order" and orjson.loads(call.function.arguments) == {"order_id": "4711"}


def test_openai_sdk_against_azure_v1(mock_upstream):
    client = openai.OpenAI(base_url=mock_upstream.url + "/openai/v1/", api_key=mock_upstream.azure_key, max_retries=0)
    resp = client.chat.completions.create(model="codex-mini", messages=USER, reasoning_effort="high")
    assert resp.usage.completion_tokens_details.reasoning_tokens == 512
    stream = client.chat.completions.create(
        model="codex-mini", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices == []  # Azure's annotation chunk reaches SDK users as-is
    assert chunks[-1].usage is not None
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="codex-mini", messages=USER, max_tokens=10)
    assert exc.value.code == "unsupported_parameter"


def test_azure_openai_sdk_client(mock_upstream):
    client = openai.AzureOpenAI(
        azure_endpoint=mock_upstream.url,
        api_key=mock_upstream.azure_key,
        api_version="2025-04-01-preview",
        max_retries=0,
    )
    resp = client.chat.completions.create(model="codex-mini", messages=USER, max_completion_tokens=4000)
    assert resp.choices[0].message.content
    rec = mock_upstream.last
    assert rec.path == "/openai/deployments/codex-mini/chat/completions"
    assert rec.query == {"api-version": "2025-04-01-preview"} and rec.headers["api-key"] == mock_upstream.azure_key
    tool_stream = client.chat.completions.create(
        model="codex-mini", messages=USER, tools=TOOLS, tool_choice="required", stream=True
    )
    args = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in tool_stream
        if c.choices and c.choices[0].delta and c.choices[0].delta.tool_calls
    )
    assert orjson.loads(args) == {"order_id": "4711"}


def test_openai_sdk_sees_scripted_failures(mock_upstream):
    client = openai.OpenAI(base_url=mock_upstream.url + "/v1", api_key=mock_upstream.openai_key, max_retries=0)
    mock_upstream.script(rate_limited(retry_after=1))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4.1-mini", messages=USER)
    mock_upstream.script(insufficient_quota())
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="gpt-4.1-mini", messages=USER)
    assert exc.value.code == "insufficient_quota"
    mock_upstream.script(server_error(500))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4.1-mini", messages=USER)
    mock_upstream.script(error_mid_stream(after=2))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="gpt-4.1-mini", messages=USER, stream=True))
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=mock_upstream.url + "/v1", api_key="sk-bad", max_retries=0).chat.completions.create(
            model="gpt-4.1-mini", messages=USER
        )


# ------------------------------------------------------------------------------------------------
# Omixa's adapters against the mock (the mock rejects what the real services reject)


@pytest.mark.parametrize(
    ("family", "deployment"),
    [("azure", "codex-mini"), ("azure", "gpt-4.1-mini"), ("openai", "o4-mini"), ("openai", "gpt-4.1-mini")],
)
@pytest.mark.parametrize("stream", [False, True])
def test_adapters_round_trip(mock_upstream, family, deployment, stream):
    route = mock_upstream.route(family, deployment)
    adapter = get_adapter(route.endpoint_type)
    body = {"model": "codex-mini", "messages": USER, "max_tokens": 3000, "service_tier": "priority", "tools": TOOLS}
    if route.reasoning:
        body |= {"reasoning_effort": "low", "temperature": 0.3}
    request = ChatRequest(
        model="codex-mini",
        body=body,
        stream=stream,
        max_output_tokens=3000,
        reasoning_effort="low" if route.reasoning else None,
        service_tier="priority",
    )
    up = adapter.prepare(request, route)
    r = httpx.post(up.url, headers=up.headers, content=up.body)
    assert r.status_code == 200, r.text
    sent = mock_upstream.last.json
    assert sent["model"] == deployment and "service_tier" not in sent
    if stream:
        dec = adapter.stream_decoder(request, route)
        chunks = dec.feed(r.content)
        assert dec.finished and dec.usage and dec.usage.output_tokens > 0
        assert dec.finish_reason == "tool_calls"
        assert all(c["model"] == "codex-mini" and c["choices"] for c in chunks)
    else:
        out, usage = adapter.parse_completion(request, route, r.content)
        assert out["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "lookup_order"
        assert usage.prompt_tokens > 0 and (usage.reasoning_tokens > 0) == route.reasoning


def test_adapters_classify_mock_errors(mock_upstream):
    route = mock_upstream.route("azure", "codex-mini")
    adapter = get_adapter(route.endpoint_type)
    request = ChatRequest(model="codex-mini", body={"model": "codex-mini", "messages": USER})
    cases = [
        (rate_limited(retry_after=2), ErrorKind.RATE_LIMITED),
        (insufficient_quota(), ErrorKind.QUOTA),
        (server_error(500), ErrorKind.SERVER),
        (unavailable(), ErrorKind.SERVER),
        (auth_failure(401), ErrorKind.AUTH),
    ]
    for scenario, kind in cases:
        mock_upstream.script(scenario)
        up = adapter.prepare(request, route)
        r = httpx.post(up.url, headers=up.headers, content=up.body)
        err = adapter.parse_error(r.status_code, r.headers, r.content)
        assert err.kind is kind, scenario
    assert err.message and mock_upstream.azure_key not in err.message
    up = adapter.prepare(request, mock_upstream.route("azure", "missing"))
    r = httpx.post(up.url, headers=up.headers, content=up.body)
    assert adapter.parse_error(r.status_code, r.headers, r.content).kind is ErrorKind.NOT_FOUND
    mock_upstream.script(rate_limited(retry_after=2))
    r = httpx.post(up.url, headers=up.headers, content=up.body)
    assert adapter.parse_error(r.status_code, r.headers, r.content).retry_after == 2.0


# ------------------------------------------------------------------------------------------------
# the offline simulator views (same generation core, Django async views)


async def _read(resp) -> bytes:
    if resp.streaming:
        return b"".join([part async for part in resp.streaming_content])
    return resp.content


@pytest.mark.asyncio
async def test_simulator_views():
    rf = AsyncRequestFactory()
    body = {"model": "codex-mini", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}

    req = rf.post("/simulator/openai/v1/chat/completions", data=orjson.dumps(body), content_type="application/json")
    resp = await simulator_views.azure_chat_completions(req)
    assert resp.status_code == 401

    req = rf.post(
        "/simulator/openai/v1/chat/completions",
        data=orjson.dumps(body),
        content_type="application/json",
        headers={"api-key": "demo"},
    )
    resp = await simulator_views.azure_chat_completions(req)
    assert resp.status_code == 200 and resp["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(await _read(resp))
    assert orjson.loads(payloads[0])["prompt_filter_results"] and payloads[-1] == b"[DONE]"

    req = rf.post(
        "/simulator/v1/chat/completions",
        data=orjson.dumps({"model": "gpt-4.1-mini", "messages": USER}),
        content_type="application/json",
        headers={"authorization": "Bearer sk-demo"},
    )
    resp = await simulator_views.openai_chat_completions(req)
    assert resp.status_code == 200 and orjson.loads(resp.content)["object"] == "chat.completion"

    req = rf.post(
        "/simulator/openai/v1/chat/completions",
        data=orjson.dumps({"model": "codex-mini", "messages": USER, "max_tokens": 5}),
        content_type="application/json",
        headers={"api-key": "demo"},
    )
    resp = await simulator_views.azure_chat_completions(req)
    assert resp.status_code == 400 and orjson.loads(resp.content)["error"]["param"] == "max_tokens"

    req = rf.post(
        "/simulator/openai/v1/chat/completions",
        data=orjson.dumps({"model": "sim-error-429", "messages": USER}),
        content_type="application/json",
        headers={"api-key": "demo"},
    )
    resp = await simulator_views.azure_chat_completions(req)
    assert resp.status_code == 429 and resp["retry-after"] == "1"
