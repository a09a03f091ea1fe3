"""`POST /api/v1/responses` through the official SDK's `client.responses.create`: served by a chat route
(reverse translation) and by a Responses route, non-stream and stream, tools, failover, exact pricing, and
OpenAI-shaped errors for what a stateless endpoint cannot do."""

from __future__ import annotations

import json

import httpx
import openai
import orjson
import pytest

from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.mocks.responses_upstream import DEFAULT_SUMMARY, DEFAULT_TEXT, Scenario, responses_upstream  # noqa: F401
from tests.mocks.upstream import Scenario as ChatScenario
from tests.test_gateway_responses import priced_exactly
from tests.test_gateway_streams import usage_event

TOOL = {
    "type": "function",
    "name": "lookup_order",
    "description": "Return order status by ID.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
}


@pytest.fixture(params=["chat", "responses"])
def route_kind(request, world, gateway, mock_upstream, responses_upstream):
    """The same Responses request served by a chat route and by a Responses route."""
    if request.param == "chat":
        mock_route(gateway, mock_upstream)
        return "chat", mock_upstream
    mock_route(gateway, responses_upstream, endpoint_type="azure_openai_v1_responses")
    return "responses", responses_upstream


@pytest.fixture
def client(gateway, world):
    return openai.OpenAI(base_url=gateway.api, api_key=world.key, max_retries=0, timeout=20)


def post(gateway, world, body: dict) -> httpx.Response:
    return httpx.post(
        gateway.api + "/responses", headers={"Authorization": f"Bearer {world.key}"}, json=body, timeout=20
    )


def test_plain_response_has_the_responses_shape_and_exact_cost(client, gateway, route_kind):
    kind, mock = route_kind
    raw = client.responses.with_raw_response.create(
        model="codex-mini", instructions="Be brief.", input="Say hello.", max_output_tokens=500
    )
    response = raw.parse()
    assert response.object == "response" and response.status == "completed" and response.model == "codex-mini"
    assert response.id.startswith("resp_") and response.instructions == "Be brief."
    assert response.output_text and response.output[-1].type == "message"
    assert response.output[-1].content[0].type == "output_text"
    usage = response.usage
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.output_tokens_details.reasoning_tokens <= usage.output_tokens
    priced_exactly(gateway, raw.headers["x-request-id"], usage.model_extra["cost"])
    sent = mock.last.json
    if kind == "chat":
        assert mock.last.path == "/openai/v1/chat/completions"
        assert sent["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello."},
        ]
        assert sent["max_completion_tokens"] == 500
    else:
        assert response.output_text == DEFAULT_TEXT
        assert sent["instructions"] == "Be brief." and sent["max_output_tokens"] == 500 and sent["store"] is False


def test_stream_is_the_responses_event_sequence(client, gateway, route_kind):
    kind, _mock = route_kind
    with client.responses.with_streaming_response.create(
        model="codex-mini", input=[{"role": "user", "content": "Stream please."}], stream=True
    ) as raw:
        request_id = raw.headers["x-request-id"]
        events = list(raw.parse())
    types = [e.type for e in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "response.content_part.added" in types and "response.output_text.done" in types
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert final.output_text == text and final.status == "completed"
    if kind == "responses":
        assert text == DEFAULT_TEXT
    usage = final.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    event = priced_exactly(gateway, request_id, usage.model_extra["cost"])
    assert event.stream and event.outcome == "completed"


def test_tools_round_trip(client, route_kind):
    kind, mock = route_kind
    if kind == "chat":
        mock.script(ChatScenario(tool_calls=[("lookup_order", {"order_id": "A-17"})]))
    first = client.responses.create(
        model="codex-mini", input="Where is order A-17?", tools=[TOOL], tool_choice="required"
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "lookup_order"
    assert json.loads(calls[0].arguments) == {"order_id": "A-17"} and calls[0].call_id
    second = client.responses.create(
        model="codex-mini",
        input=[
            {"role": "user", "content": "Where is order A-17?"},
            {
                "type": "function_call",
                "call_id": calls[0].call_id,
                "name": "lookup_order",
                "arguments": calls[0].arguments,
            },
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"status": "shipped"}'},
        ],
        tools=[TOOL],
    )
    assert second.output_text
    sent = mock.last.json
    if kind == "chat":
        assert sent["tools"][0]["function"]["name"] == "lookup_order"
        assert sent["messages"][1]["tool_calls"][0]["id"] == calls[0].call_id
        assert sent["messages"][2] == {
            "role": "tool",
            "tool_call_id": calls[0].call_id,
            "content": '{"status": "shipped"}',
        }
    else:
        assert sent["input"][2]["type"] == "function_call_output" and sent["input"][2]["call_id"] == calls[0].call_id


def test_stream_tool_call_events(client, route_kind):
    kind, mock = route_kind
    if kind == "chat":
        mock.script(ChatScenario(tool_calls=[("lookup_order", {"order_id": "A-17"})]))
    events = list(
        client.responses.create(
            model="codex-mini", input="Order A-17?", tools=[TOOL], tool_choice="required", stream=True
        )
    )
    added = [e for e in events if e.type == "response.output_item.added" and e.item.type == "function_call"]
    assert len(added) == 1 and added[0].item.name == "lookup_order"
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(arguments) == {"order_id": "A-17"} and done.arguments == arguments
    final = events[-1].response
    assert final.output[-1].type == "function_call" and final.output[-1].call_id == added[0].item.call_id


def test_reasoning_summary_is_a_reasoning_item(client, gateway, world, responses_upstream):
    mock_route(gateway, responses_upstream, endpoint_type="azure_openai_v1_responses")
    response = client.responses.create(
        model="codex-mini", input="Think first.", reasoning={"effort": "low", "summary": "auto"}
    )
    assert response.output[0].type == "reasoning" and response.output[0].summary[0].text == DEFAULT_SUMMARY
    assert response.reasoning.effort == "low"
    events = list(
        client.responses.create(model="codex-mini", input="Think.", reasoning={"summary": "auto"}, stream=True)
    )
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert summary == DEFAULT_SUMMARY
    assert events[-1].response.output[0].summary[0].text == DEFAULT_SUMMARY


def test_failover_from_a_chat_route_to_a_responses_route(client, gateway, world, mock_upstream, responses_upstream):
    chat = mock_route(gateway, mock_upstream, priority=1, name="chat-first")
    responses = mock_route(
        gateway, responses_upstream, priority=2, name="responses-second", endpoint_type="azure_openai_v1_responses"
    )
    mock_upstream.script(ChatScenario(status=500))
    raw = client.responses.with_raw_response.create(model="codex-mini", input="Hi")
    assert raw.parse().output_text == DEFAULT_TEXT
    assert raw.headers["x-omixa-attempts"] == f"{chat.id}:server,{responses.id}:ok"
    event = usage_event(gateway, raw.headers["x-request-id"])
    assert event.route_id == responses.id


def test_output_limit_is_an_incomplete_response(client, gateway, world, responses_upstream):
    mock_route(gateway, responses_upstream, endpoint_type="azure_openai_v1_responses")
    responses_upstream.always(Scenario(text="word " * 500))
    response = client.responses.create(model="codex-mini", input="Long.", max_output_tokens=100)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    events = list(client.responses.create(model="codex-mini", input="Long.", max_output_tokens=100, stream=True))
    assert events[-1].type == "response.incomplete"


def test_broken_upstream_mid_stream_is_response_failed(gateway, world, responses_upstream):
    mock_route(gateway, responses_upstream, endpoint_type="azure_openai_v1_responses")
    responses_upstream.script(Scenario(break_after=8, chunk_delay=0.02))
    answer = post(gateway, world, {"model": "codex-mini", "input": "Hi", "stream": True})
    assert answer.status_code == 200
    events = [
        orjson.loads(block.split(b"data: ", 1)[1]) for block in answer.content.split(b"\n\n") if b"data: " in block
    ]
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "upstream_stream_broken"
    assert usage_event(gateway, answer.headers["x-request-id"]).outcome == "broken_stream"


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"input": "Hi", "previous_response_id": "resp_123"}, 400, "previous_response_id", "unsupported_parameter"),
        ({"input": "Hi", "conversation": "conv_1"}, 400, "conversation", "unsupported_parameter"),
        ({"messages": [{"role": "user", "content": "Hi"}]}, 400, "messages", "unsupported_parameter"),
        ({"input": "Hi", "max_tokens": 50}, 400, "max_tokens", "unknown_parameter"),
        ({}, 400, "input", "missing_required_parameter"),
        ({"input": "Hi", "max_output_tokens": 500000}, 400, "max_output_tokens", "invalid_value"),
        ({"input": "Hi", "reasoning": {"effort": "extreme"}}, 400, "reasoning.effort", "invalid_value"),
        ({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}, 400, "input[0].content[0].text", None),
        ({"input": "Hi", "tools": [{"type": "web_search"}]}, 400, "tools[0].type", "invalid_value"),
        ({"input": "Hi", "model": "gpt-9"}, 404, "model", "model_not_found"),
    ],
)
def test_errors_are_openai_shaped_and_name_the_responses_field(gateway, world, route_kind, body, status, param, code):
    _kind, mock = route_kind
    answer = post(gateway, world, {"model": "codex-mini", **body})
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["message"], error
    if code:
        assert error["code"] == code, error
    assert set(error) == {"message", "type", "param", "code"}
    assert answer.headers["x-request-id"]
    assert mock.requests == []


def test_sdk_raises_a_clear_error_for_previous_response_id(client, gateway, world, responses_upstream):
    mock_route(gateway, responses_upstream, endpoint_type="azure_openai_v1_responses")
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="codex-mini", input="And then?", previous_response_id="resp_abc")
    assert "stateless" in info.value.message and info.value.param == "previous_response_id"


def test_auth_and_method(gateway, world):
    assert httpx.post(gateway.api + "/responses", json={"model": "codex-mini", "input": "Hi"}).status_code == 401
    answer = httpx.get(gateway.api + "/responses", headers={"Authorization": f"Bearer {world.key}"})
    assert answer.status_code == 405 and answer.json()["error"]["code"] == "method_not_allowed"


def test_store_is_answered_false_and_not_forwarded_as_chat_store(client, gateway, world, mock_upstream):
    mock_route(gateway, mock_upstream)
    response = client.responses.create(model="codex-mini", input="Hi", store=True)
    assert response.store is False
    assert "store" not in mock_upstream.last.json


def test_client_leaving_mid_stream_closes_the_upstream_and_records_it(gateway, world, responses_upstream):
    mock_route(gateway, responses_upstream, endpoint_type="azure_openai_v1_responses")
    responses_upstream.script(Scenario(chunk_delay=0.1, text="slow " * 200, text_chunk_chars=5))
    body = {"model": "codex-mini", "input": "Hi", "stream": True}
    with httpx.stream(
        "POST", gateway.api + "/responses", headers={"Authorization": f"Bearer {world.key}"}, json=body, timeout=20
    ) as answer:
        request_id = answer.headers["x-request-id"]
        for line in answer.iter_lines():
            if "response.output_text.delta" in line:
                break
    event = usage_event(gateway, request_id)
    assert event.outcome == "client_gone" and event.http_status == 499 and event.output_tokens > 0
