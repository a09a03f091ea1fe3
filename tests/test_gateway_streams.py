"""How a request can end, and the usage event each way records (README: "the billing rule")."""

from __future__ import annotations

import socket
import time

import httpx
import orjson
import pytest

from billing.models import UsageEvent
from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.mocks.upstream import Scenario, broken_stream, error_mid_stream, slow_stream

BODY = {"model": "codex-mini", "messages": [{"role": "user", "content": "Tell me a long story about routers."}]}


@pytest.fixture
def route(world, gateway, mock_upstream):
    return mock_route(gateway, mock_upstream, priority=100, idle_timeout=0.5)


def events_of(body: bytes) -> list:
    out = []
    for block in body.split(b"\n\n"):
        block = block.strip()
        if block.startswith(b"data: "):
            data = block[6:]
            out.append(data if data == b"[DONE]" else orjson.loads(data))
    return out


def usage_event(gateway, request_id: str | None = None, timeout: float = 5.0, **lookup) -> UsageEvent:
    """Wait (at most `timeout`) for the usage event of a request, by request id or other fields."""
    if request_id is not None:
        lookup["request_id"] = request_id
    deadline = time.monotonic() + timeout
    while True:
        gateway.flush_usage()
        event = UsageEvent.objects.filter(**lookup).first()
        if event is not None:
            return event
        assert time.monotonic() < deadline, f"no usage event for {lookup}"
        time.sleep(0.05)


def stream(gateway, world, body=None, **kwargs) -> httpx.Response:
    return httpx.post(
        gateway.api + "/chat/completions",
        headers={"Authorization": f"Bearer {world.key}"},
        json={**(body or BODY), "stream": True, **kwargs},
        timeout=20,
    )


def test_completed_stream_records_the_providers_usage(gateway, world, route):
    response = stream(gateway, world, stream_options={"include_usage": True})
    usage = events_of(response.content)[-2]["usage"]
    event = usage_event(gateway, response.headers["x-request-id"])
    assert event.outcome == "completed" and event.http_status == 200 and not event.estimated
    assert event.prompt_tokens == usage["prompt_tokens"]
    assert event.output_tokens == usage["completion_tokens"]
    assert event.reasoning_tokens == usage["completion_tokens_details"]["reasoning_tokens"]
    assert event.first_byte_ms is not None and event.latency_ms >= event.first_byte_ms


def test_stream_broken_after_bytes_ends_with_an_error_event_and_bills_an_estimate(gateway, world, route, mock_upstream):
    mock_upstream.script(broken_stream(after=6, chunk_delay=0.05))
    response = stream(gateway, world)
    assert response.status_code == 200  # the 200 was already sent
    events = events_of(response.content)
    assert events[-1] != b"[DONE]"
    assert events[-1]["error"]["code"] == "upstream_stream_broken"
    assert any(e.get("choices") and e["choices"][0]["delta"].get("content") for e in events[:-1])
    assert len(mock_upstream.requests) == 1  # never retried after bytes were sent
    event = usage_event(gateway, response.headers["x-request-id"])
    assert event.outcome == "broken_stream" and event.http_status == 502
    assert event.estimated and event.input_tokens > 0 and event.output_tokens > 0


def test_error_event_mid_stream_is_passed_on_as_an_error_event(gateway, world, route, mock_upstream):
    mock_upstream.script(error_mid_stream(after=4, chunk_delay=0.05))
    response = stream(gateway, world)
    events = events_of(response.content)
    assert "error" in events[-1] and events[-1]["error"]["type"] == "upstream_error"
    event = usage_event(gateway, response.headers["x-request-id"])
    assert event.outcome == "broken_stream"


def test_stream_that_goes_idle_times_out_with_an_error_event(gateway, world, route, mock_upstream):
    mock_upstream.script(slow_stream(chunk_delay=0.8))  # first content at ~2.4 s, then idle > 0.5 s
    started = time.monotonic()
    response = stream(gateway, world)
    assert time.monotonic() - started < 5
    events = events_of(response.content)
    assert events[-1]["error"]["code"] == "upstream_timeout"
    event = usage_event(gateway, response.headers["x-request-id"])
    assert event.outcome == "timeout" and event.http_status == 504 and event.estimated


def test_usage_arriving_before_a_break_is_billed_as_reported(gateway, world, route, mock_upstream):
    # The upstream sent its usage chunk, then the connection broke before [DONE].
    mock_upstream.script(
        Scenario(
            events=[
                {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "codex-mini",
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}],
                },
                {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "codex-mini",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                },
                {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "codex-mini",
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 40,
                        "completion_tokens": 12,
                        "total_tokens": 52,
                        "prompt_tokens_details": {"cached_tokens": 8},
                        "completion_tokens_details": {"reasoning_tokens": 5},
                    },
                },
            ],
            break_after=3,
        )
    )
    response = stream(gateway, world)
    event = usage_event(gateway, response.headers["x-request-id"])
    assert event.outcome == "broken_stream" and not event.estimated
    assert (event.input_tokens, event.cached_input_tokens, event.output_tokens, event.reasoning_tokens) == (
        32,
        8,
        12,
        5,
    )


def _raw_request(gateway, world, body: dict) -> socket.socket:
    payload = orjson.dumps(body)
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
        b"Authorization: Bearer " + world.key.encode() + b"\r\nContent-Type: application/json\r\n"
        b"x-request-id: disconnect-test\r\nContent-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )
    return sock


def test_client_disconnect_mid_stream_records_499_and_stops_the_upstream(gateway, world, route, mock_upstream):
    mock_upstream.script(slow_stream(chunk_delay=0.05))
    sock = _raw_request(gateway, world, {**BODY, "stream": True})
    received = b""
    while received.count(b"data: ") < 4:
        received += sock.recv(65536)
    assert mock_upstream.open_streams == 1
    sock.close()
    event = usage_event(gateway, client_request_id="disconnect-test")
    assert event.outcome == "client_gone" and event.http_status == 499
    assert event.estimated and event.output_tokens > 0
    # The upstream call was cancelled, not left streaming into the void.
    deadline = time.monotonic() + 2
    while mock_upstream.open_streams:
        assert time.monotonic() < deadline, "the upstream stream kept going after the client left"
        time.sleep(0.02)


def test_client_disconnect_before_a_non_stream_answer_records_499(gateway, world, route, mock_upstream):
    mock_upstream.script(Scenario(delay=3.0))
    sock = _raw_request(gateway, world, BODY)
    mock_upstream.wait_for_requests(1)
    time.sleep(0.1)
    sock.close()
    event = usage_event(gateway, client_request_id="disconnect-test")
    assert event.outcome == "client_gone" and event.http_status == 499
    assert event.estimated and event.input_tokens > 0 and event.output_tokens == 0


def test_usage_chunk_only_when_the_client_asked(gateway, world, route, mock_upstream):
    without = events_of(stream(gateway, world).content)
    assert not any("usage" in e for e in without[:-1])
    assert mock_upstream.last.json["stream_options"] == {"include_usage": True}
    with_usage = events_of(stream(gateway, world, stream_options={"include_usage": True}).content)
    assert with_usage[-1] == b"[DONE]" and with_usage[-2]["choices"] == [] and "cost" in with_usage[-2]["usage"]


def test_missing_upstream_usage_is_estimated_and_marked(gateway, world, route, mock_upstream):
    mock_upstream.script(Scenario(include_usage=False))
    response = stream(gateway, world, stream_options={"include_usage": True})
    usage = events_of(response.content)[-2]["usage"]
    assert usage["estimated"] is True and usage["prompt_tokens"] > 0
    event = usage_event(gateway, response.headers["x-request-id"])
    assert event.outcome == "completed" and event.estimated


def test_every_request_that_reached_a_route_has_exactly_one_usage_event(gateway, world, route, mock_upstream):
    ids = []
    for scenario in [Scenario(), broken_stream(after=2), Scenario(status=500), Scenario(status=400)]:
        mock_upstream.script(scenario)
        ids.append(stream(gateway, world).headers["x-request-id"])
    gateway.flush_usage()
    assert sorted(str(e) for e in UsageEvent.objects.values_list("request_id", flat=True)) == sorted(ids)


def test_client_gone_after_a_failover_bills_the_route_it_was_waiting_on(gateway, world, route, mock_upstream):
    mock_upstream.add_deployment("codex-mini-slow", reasoning=True)
    slow = mock_route(gateway, mock_upstream, deployment="codex-mini-slow", priority=200, name="slow")
    mock_upstream.script(Scenario(status=500), deployment="codex-mini")
    mock_upstream.script(Scenario(delay=3.0), deployment="codex-mini-slow")
    sock = _raw_request(gateway, world, BODY)
    deadline = time.monotonic() + 5
    while not mock_upstream.requests_for("codex-mini-slow"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    sock.close()
    event = usage_event(gateway, client_request_id="disconnect-test")
    assert event.route_id == slow.pk and event.outcome == "client_gone"
    assert [a["outcome"] for a in event.attempts] == ["server", "client_gone"]
    assert event.estimated and event.input_tokens > 0
