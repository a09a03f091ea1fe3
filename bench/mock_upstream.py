"""A fast mock OpenAI-compatible upstream for the benchmark.

Raw asyncio protocol on uvloop with httptools' parser (no framework): measured at well over
10,000 requests/s on one core here, so it is never the bottleneck of a gateway run.

It answers at once (no simulated think time):
- ``POST /v1/chat/completions`` and ``POST /openai/v1/chat/completions`` (query string ignored, so
  Azure's ``?api-version=`` works): a ``chat.completion`` JSON with realistic usage, or, with
  ``"stream": true``, OpenAI's SSE: a role chunk, 20 content chunks, a finish chunk, a usage chunk
  (only when ``stream_options.include_usage`` is true, as OpenAI does) and ``data: [DONE]``, each
  event its own HTTP chunk, written in one go.
- ``GET /health``: 200 ``ok`` (readiness probe). Anything else: 404 in OpenAI's error shape.

Run: ``python -m bench.mock_upstream --port 9100``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import time

import httptools
import orjson

CONTENT_CHUNKS = 20
WORDS = (
    "Hello",
    " there",
    "!",
    " This",
    " is",
    " a",
    " short",
    " answer",
    " from",
    " the",
    " mock",
    " upstream",
    ",",
    " twenty",
    " chunks",
    " long",
    ",",
    " sent",
    " at",
    " once.",
)
assert len(WORDS) == CONTENT_CHUNKS
ANSWER = "".join(WORDS)
FINGERPRINT = "fp_b376dfbbd5"
_ids = itertools.count(1)
_pid = os.getpid()


def _usage(prompt_tokens: int) -> dict:
    completion = CONTENT_CHUNKS
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _prompt_tokens(body: dict) -> int:
    """A rough count (4 characters a token, plus per-message overhead), like a real tokenizer's order."""
    total = 3
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += 4 + len(content) // 4
        elif isinstance(content, list):
            total += 4 + sum(len(p.get("text", "")) // 4 for p in content if isinstance(p, dict))
    return total


def completion_json(model: str, prompt_tokens: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"chatcmpl-mock{_pid}x{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(prompt_tokens),
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
    )


def stream_events(model: str, prompt_tokens: int, include_usage: bool) -> list[bytes]:
    """The SSE events of one streamed answer, exactly as OpenAI frames them."""
    base = {
        "id": f"chatcmpl-mock{_pid}x{next(_ids)}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }

    def chunk(delta: dict, finish: str | None = None) -> dict:
        event = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            event["usage"] = None
        return event

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": word}) for word in WORDS]
    events.append(chunk({}, "stop"))
    if include_usage:
        events.append({**base, "choices": [], "usage": _usage(prompt_tokens)})
    out = [b"data: " + orjson.dumps(e) + b"\n\n" for e in events]
    out.append(b"data: [DONE]\n\n")
    return out


def _head(status: str, content_type: bytes, extra: bytes, keep_alive: bool) -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + content_type + b"\r\n" + extra
        + b"x-request-id: req_mock\r\nopenai-processing-ms: 0\r\n"
        + (b"connection: keep-alive\r\n" if keep_alive else b"connection: close\r\n")
        + b"\r\n"
    )  # fmt: skip


def _json_response(status: str, body: bytes, keep_alive: bool) -> bytes:
    return _head(status, b"application/json", b"content-length: %d\r\n" % len(body), keep_alive) + body


def _error(status: str, message: str, keep_alive: bool, code: str | None = None) -> bytes:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})
    return _json_response(status, body, keep_alive)


CHAT_PATHS = (b"/v1/chat/completions", b"/openai/v1/chat/completions")


class MockProtocol(asyncio.Protocol):
    __slots__ = ("body", "parser", "transport", "url")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.transport.close()
        except httptools.HttpParserError:
            self.transport.write(_error("400 Bad Request", "malformed HTTP request", False))
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.transport.is_closing():
            return
        keep_alive = self.parser.should_keep_alive()
        self.transport.write(self.respond(self.parser.get_method(), self.url.split(b"?", 1)[0], keep_alive))
        if not keep_alive:
            self.transport.close()

    def respond(self, method: bytes, path: bytes, keep_alive: bool) -> bytes:
        if path == b"/health":
            return _head("200 OK", b"text/plain", b"content-length: 2\r\n", keep_alive) + b"ok"
        if path not in CHAT_PATHS:
            return _error("404 Not Found", f"Unknown path {path.decode('latin-1')}", keep_alive, "not_found")
        if method != b"POST":
            return _error("405 Method Not Allowed", "Use POST", keep_alive)
        try:
            body = orjson.loads(b"".join(self.body))
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            return _error("400 Bad Request", "We could not parse the JSON body of your request.", keep_alive)
        model = str(body.get("model") or "gpt-4.1-mini")
        prompt_tokens = _prompt_tokens(body)
        if not body.get("stream"):
            return _json_response("200 OK", completion_json(model, prompt_tokens), keep_alive)
        options = body.get("stream_options") or {}
        events = stream_events(model, prompt_tokens, bool(isinstance(options, dict) and options.get("include_usage")))
        parts = [_head("200 OK", b"text/event-stream; charset=utf-8", b"transfer-encoding: chunked\r\n", keep_alive)]
        for event in events:
            parts.append(b"%x\r\n%s\r\n" % (len(event), event))
        parts.append(b"0\r\n\r\n")
        return b"".join(parts)

    def connection_lost(self, exc) -> None:
        self.transport = None


async def serve(host: str, port: int, ready: asyncio.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(MockProtocol, host, port, reuse_address=True, backlog=1024)
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args(argv)
    import uvloop

    try:
        uvloop.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
