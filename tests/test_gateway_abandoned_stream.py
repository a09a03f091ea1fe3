"""A client that leaves in the instant between the stream's opening (the upstream already answering,
its first event held) and the first read of the response body: the body generator never runs, so
its `finally` cannot record the usage. The server's hook (omixa/asgi.py → pipeline's `abandon`) must."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.mocks.upstream import slow_stream
from tests.test_gateway_streams import BODY, usage_event


async def _leave_at_the_status_line(world, path: str, body: dict) -> list[dict]:
    """Drive the ASGI app directly: the client disconnects the moment the response starts."""
    from omixa.asgi import application

    payload = orjson.dumps(body)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", b"Bearer " + world.key.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", b"left-at-the-status-line"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    started = asyncio.Event()
    sent: list[dict] = []
    body_sent = False

    async def receive():
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await started.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.start":
            started.set()
            await asyncio.sleep(30)  # a client too slow to read even the status line, then gone

    await asyncio.wait_for(application(scope, receive, send), timeout=20)
    return sent


@pytest.mark.parametrize("path", ["/api/v1/chat/completions", "/api/v1/responses"])
def test_a_stream_left_before_its_body_was_read_is_still_recorded_and_the_upstream_closed(
    gateway, world, mock_upstream, path
):
    mock_route(gateway, mock_upstream)
    mock_upstream.script(slow_stream(chunk_delay=0.05))
    body = {**BODY, "stream": True}
    if path.endswith("responses"):
        body = {"model": "codex-mini", "input": BODY["messages"][0]["content"], "stream": True}
    from gateway import runtime

    loop = runtime.current().loop
    sent = asyncio.run_coroutine_threadsafe(_leave_at_the_status_line(world, path, body), loop).result(30)
    assert [m["type"] for m in sent] == ["http.response.start"]  # not one byte of the body went out
    assert sent[0]["status"] == 200
    event = usage_event(gateway, client_request_id="left-at-the-status-line")
    assert event.outcome == "client_gone" and event.http_status == 499
    assert event.input_tokens > 0 and event.estimated
    deadline = time.monotonic() + 2
    while mock_upstream.open_streams:  # closed, not left streaming into the void
        assert time.monotonic() < deadline, "the upstream stream kept going after the client left"
        time.sleep(0.02)
