"""One chat request, from a validated body to the client's answer: routes, failover, streaming,
usage capture. The I/O half of the gateway (adapters translate; this module sends and decides).

Failover happens only before the first byte reaches the client. For streams the upstream is
opened and read until its first event that carries content, a tool call or usage (annotation-only
events are held, not sent), and only then is the client sent a 200. After that, a failure ends
the stream with an error event; it is never retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.http import HttpResponse, StreamingHttpResponse

from billing.pricing import format_cost
from gateway import metrics, upstream
from gateway.errors import GatewayError
from gateway.limits import Admission
from gateway.providers import get_adapter
from gateway.routing import failover_order
from gateway.runtime import Runtime
from gateway.snapshot import KeyEntry, ModelEntry
from gateway.types import ChatRequest, ErrorKind, RequestRejected, Route, UpstreamError, Usage

logger = logging.getLogger(__name__)

OUT_OF_ROTATION = (ErrorKind.AUTH, ErrorKind.QUOTA)
# Kinds that say "this route is busy or resting", for the 503-versus-502 decision.
BUSY = ("cooldown", ErrorKind.RATE_LIMITED.value)
DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class Call:
    """Everything known about one request; becomes its usage event."""

    request_id: str
    client_request_id: str
    started: float  # perf_counter
    started_wall: float  # epoch seconds
    key: KeyEntry
    model: ModelEntry
    chat: ChatRequest
    rt: Runtime
    attempts: list[dict[str, Any]] = field(default_factory=list)
    route: Route | None = None
    first_byte_ms: int | None = None
    out_chars: int = 0  # text streamed to the client, for an estimate when usage never came
    completion_id: str = ""  # the stream's chunk id, reused by Omixa's usage chunk
    in_flight: tuple[Route, float] | None = None  # the route being called right now, and since when
    recorded: bool = False
    upstream_s: float = 0.0  # time spent waiting on upstreams, all attempts
    overhead_s: float | None = None  # Omixa's own time until the first byte to the client (metrics)
    limits: Admission | None = None  # what the request holds of its key's and workspace's limits
    costed: Usage | None = None  # the usage `cost_text` was computed for
    cost_text: str | None = None

    def attempt(self, route: Route, outcome: str, status: int | None = None, started: float | None = None) -> None:
        entry: dict[str, Any] = {"route_id": route.id, "route": route.name, "outcome": outcome}
        if status is not None:
            entry["status"] = status
        if started is not None:
            waited = time.perf_counter() - started
            self.upstream_s += waited
            entry["ms"] = round(waited * 1000, 1)
        self.attempts.append(entry)

    def first_byte(self) -> None:
        elapsed = time.perf_counter() - self.started
        self.first_byte_ms = int(elapsed * 1000)
        self.overhead_s = elapsed - self.upstream_s

    def attempts_header(self) -> str:
        return ",".join(f"{a['route_id']}:{a['outcome']}" for a in self.attempts)

    def headers(self) -> dict[str, str]:
        headers = {"x-request-id": self.request_id, "x-omixa-attempts": self.attempts_header()}
        if self.route is not None:
            headers["x-omixa-route"] = str(self.route.id)
        if self.limits is not None:
            headers.update(self.limits.headers)
        return headers

    def cost(self, usage: Usage) -> str | None:
        """`usage.cost`: computed once per usage (the answer's payload and the metrics both ask)."""
        if self.costed is not usage:
            amount = self.model.cost_at(self.started_wall, usage)
            self.costed, self.cost_text = usage, None if amount is None else format_cost(amount)
        return self.cost_text

    def estimate(self, *, with_output: bool) -> Usage:
        output = -(-self.out_chars // 4) if with_output else 0  # ~4 characters a token, rounded up
        return Usage(input_tokens=self.chat.estimated_input_tokens, output_tokens=output, estimated=True)

    def record(self, *, outcome: str, status: int, usage: Usage | None, error_code: str = "") -> None:
        """Spool the usage event (sync, microseconds). Called exactly once, from `finally` blocks."""
        if self.recorded:
            return
        self.recorded = True
        usage = usage or Usage()
        if self.limits is not None:
            self.rt.limiter.settle(self.limits, model=self.model, usage=usage)
        route = self.route or _last_tried(self)
        event = {
            "request_id": self.request_id,
            "client_request_id": self.client_request_id,
            "created_at": self.started_wall,
            "workspace_id": self.key.workspace_id,
            "api_key_id": self.key.id,
            "model_slug": self.model.slug,
            "route_id": route.id if route else None,
            "route_name": route.name if route else "",
            "provider": route.provider if route else "",
            "endpoint_type": route.endpoint_type if route else "",
            "stream": self.chat.stream,
            "outcome": outcome,
            "http_status": status,
            "service_tier": usage.service_tier,
            "input_tokens": usage.input_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "output_tokens": usage.output_tokens,
            "reasoning_tokens": min(usage.reasoning_tokens, usage.output_tokens),
            "estimated": usage.estimated,
            "attempts": self.attempts,
            "latency_ms": int((time.perf_counter() - self.started) * 1000),
            "first_byte_ms": self.first_byte_ms,
            "error_code": error_code[:64],
        }
        try:
            self.rt.recorder.record(event)
        except Exception:
            # The spool is a local file: this means a full or broken disk. Shout, with the event.
            logger.critical("usage: could not spool event %s: %s", self.request_id, orjson.dumps(event).decode())
        try:
            metrics.observe_call(event, self.cost(usage), self.overhead_s)
        except Exception:
            logger.exception("metrics: could not count request %s", self.request_id)


def _last_tried(call: Call) -> Route | None:
    for attempt in reversed(call.attempts):
        if attempt["outcome"] not in ("cooldown", "unsupported"):
            for route in call.model.routes:
                if route.id == attempt["route_id"]:
                    return route
    return None


def _reached_a_route(call: Call) -> bool:
    return any(a["outcome"] not in ("cooldown", "unsupported", "rejected") for a in call.attempts)


async def _on_failure(call: Call, route: Route, error: UpstreamError) -> None:
    breaker = call.rt.breaker
    if error.kind in OUT_OF_ROTATION:
        await breaker.take_out_of_rotation(route.id)
        reason = f"{error.kind.value}: upstream answered {error.status} ({error.code or 'no code'})"
        call.rt.spawn(call.rt.db(_persist_out_of_rotation, route.id, reason))
        logger.warning("route %s (%s) taken out of rotation: %s", route.id, route.name, reason)
    else:
        await breaker.record_failure(route.id)


def _persist_out_of_rotation(route_id: int, reason: str) -> None:
    from django.db import close_old_connections

    from gateway.services import provider_key_out_of_rotation

    close_old_connections()
    provider_key_out_of_rotation(provider_key_id=route_id, reason=reason)


def _carries_content(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content"):
            return True
        if choice.get("finish_reason"):
            return True
    return False


def _chars(chunks: list[dict[str, Any]]) -> int:
    total = 0
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content:
                    total += len(content)
                reasoning = delta.get("reasoning_content")
                if reasoning:
                    total += len(reasoning)
                for call in delta.get("tool_calls") or ():
                    total += len((call.get("function") or {}).get("arguments") or "")
    return total


def _sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks)


def _usage_payload(call: Call, usage: Usage) -> dict[str, Any]:
    payload = usage.as_openai()
    payload["cost"] = call.cost(usage)
    if usage.estimated:
        payload["estimated"] = True
    return payload


def _exhausted(call: Call, last_error: UpstreamError | None) -> GatewayError:
    outcomes = [a["outcome"] for a in call.attempts if a["outcome"] not in ("unsupported",)]
    headers: dict[str, str] = {}
    if outcomes and all(o in BUSY for o in outcomes):
        retry_after = last_error.retry_after if last_error and last_error.retry_after else 5
        headers["Retry-After"] = str(max(1, round(retry_after)))
        return GatewayError(
            503,
            f"Every route for model '{call.model.slug}' is rate limited or cooling down. Retry shortly.",
            code="routes_unavailable",
            headers=headers,
        )
    if last_error is not None and last_error.kind == ErrorKind.TIMEOUT:
        return GatewayError(504, f"The upstream for model '{call.model.slug}' timed out.", code="upstream_timeout")
    if not call.attempts:
        return GatewayError(503, f"No provider route is configured for model '{call.model.slug}'.", code="no_route")
    message = f"Every route for model '{call.model.slug}' failed"
    if last_error is not None:
        message += f"; the last one said: {last_error.message}"
    return GatewayError(502, message, code="upstream_error")


async def run(call: Call) -> HttpResponse:
    """Try routes in failover order; answer with the first that works."""
    last_error: UpstreamError | None = None
    rejected: RequestRejected | None = None
    chat = call.chat
    try:
        if call.key.limited:  # one store call (Redis: one EVALSHA) for the key and its workspace
            call.limits = await call.rt.limiter.admit(
                key=call.key, model=call.model, chat=chat, request_id=call.request_id, now=call.started_wall
            )
        for route in failover_order(call.model.routes):
            if not await call.rt.breaker.available(route.id):
                call.attempt(route, "cooldown")
                continue
            adapter = get_adapter(route.endpoint_type)
            if adapter is None:
                call.attempt(route, "unsupported")
                continue
            try:
                prepared = adapter.prepare(chat, route)
            except RequestRejected as exc:
                rejected = rejected or exc
                call.attempt(route, "rejected")
                continue
            started = time.perf_counter()
            call.in_flight = (route, started)
            try:
                response = await upstream.send(prepared, route)
            except UpstreamError as error:
                call.attempt(route, error.kind.value, started=started)
                call.in_flight = None
                await _on_failure(call, route, error)
                last_error = error
                continue
            if response.status >= 300:
                try:
                    data = await response.read()
                except UpstreamError:
                    data = b""
                finally:
                    await response.aclose()
                error = adapter.parse_error(response.status, response.headers, data)
                call.attempt(route, error.kind.value, response.status, started)
                call.in_flight = None
                if error.kind == ErrorKind.CLIENT:
                    call.route = route
                    return _client_error(call, error)
                await _on_failure(call, route, error)
                last_error = error
                continue
            if chat.stream:
                opened = await _open_stream(call, route, adapter, response, started)
                if isinstance(opened, UpstreamError):
                    call.in_flight = None
                    await _on_failure(call, route, opened)
                    last_error = opened
                    continue
                return opened
            try:
                data = await response.read()
                completion, usage = adapter.parse_completion(chat, route, data)
            except UpstreamError as error:
                call.attempt(route, error.kind.value, response.status, started)
                call.in_flight = None
                await _on_failure(call, route, error)
                last_error = error
                continue
            finally:
                await response.aclose()
            call.attempt(route, "ok", response.status, started)
            call.route = route
            await call.rt.breaker.record_success(route.id)
            return _completion_response(call, completion, usage)

        if rejected is not None and not _reached_a_route(call):
            raise GatewayError(rejected.status, rejected.message, param=rejected.param, code=rejected.code)
        error = _exhausted(call, last_error)
        if _reached_a_route(call):
            outcome = "timeout" if error.status == 504 else "upstream_error"
            call.record(outcome=outcome, status=error.status, usage=None, error_code=error.code or "")
        raise error
    except asyncio.CancelledError:
        if call.recorded:
            raise
        if call.in_flight is not None:
            # The client went away while an upstream worked on its request (non-stream, or before
            # the stream opened). The upstream has the prompt: bill an estimate of it, marked so.
            route, started = call.in_flight
            if not call.attempts or call.attempts[-1]["route_id"] != route.id:
                call.attempt(route, "client_gone", started=started)
            call.route = route
            call.record(outcome="client_gone", status=499, usage=call.estimate(with_output=False))
        elif _reached_a_route(call):
            # Gone between attempts: the routes tried so far failed, and failures are not billed.
            call.record(outcome="client_gone", status=499, usage=None)
        raise
    except Exception:
        # A bug of ours after a route was reached (the view answers 500): the provider may have
        # billed the prompt, so the usage record is still written, with an estimate marked so.
        if not call.recorded and (call.in_flight is not None or _reached_a_route(call)):
            usage = call.estimate(with_output=False) if call.in_flight is not None else None
            call.route = call.route or (call.in_flight[0] if call.in_flight else None)
            call.record(outcome="upstream_error", status=500, usage=usage, error_code="internal_error")
        raise
    finally:
        if call.limits is not None and not call.recorded and call.route is None:
            # Answered without reaching a route (or none is serving a stream): nothing was used.
            call.rt.limiter.settle(call.limits, model=call.model, usage=None)


def _client_error(call: Call, error: UpstreamError) -> HttpResponse:
    # The provider refused the request itself (a 4xx that is the client's fault): no failover.
    # A prompt refused by a content filter is still billed by the provider for its prompt.
    usage = call.estimate(with_output=False) if error.code == "content_filter" else None
    call.record(outcome="upstream_error", status=400, usage=usage, error_code=error.code or "upstream_400")
    gateway_error = GatewayError(400, error.message, param=error.param, code=error.code)
    response = gateway_error.response()
    for name, value in call.headers().items():
        response[name] = value
    return response


def _completion_response(call: Call, completion: dict[str, Any], usage: Usage) -> HttpResponse:
    completion["usage"] = _usage_payload(call, usage)
    call.first_byte()
    call.record(outcome="completed", status=200, usage=usage)
    response = HttpResponse(orjson.dumps(completion), content_type="application/json")
    for name, value in call.headers().items():
        response[name] = value
    return response


async def _open_stream(call: Call, route: Route, adapter, response, started: float):
    """Read the upstream until its first meaningful event; return the client response, or the
    UpstreamError that makes us fail over (nothing has been sent to the client yet)."""
    decoder = adapter.stream_decoder(call.chat, route)
    chunks_iter = response.chunks().__aiter__()
    held: list[dict[str, Any]] = []
    try:
        while True:
            try:
                raw = await chunks_iter.__anext__()
            except StopAsyncIteration:
                if decoder.finished:
                    break
                raise UpstreamError(ErrorKind.SERVER, "the upstream closed the stream before any event") from None
            chunks = decoder.feed(raw)
            held.extend(chunks)
            if decoder.usage is not None or decoder.finished or any(_carries_content(c) for c in chunks):
                break
    except UpstreamError as error:
        call.attempt(route, error.kind.value, response.status, started)
        await response.aclose()
        return error
    except BaseException:
        await response.aclose()
        raise
    call.attempt(route, "ok", response.status, started)
    call.route = route
    response.read_timeout = route.idle_timeout
    await call.rt.breaker.record_success(route.id)
    streaming = StreamingHttpResponse(
        _stream_body(call, response, chunks_iter, decoder, held), content_type="text/event-stream"
    )
    streaming["Cache-Control"] = "no-cache"
    streaming["X-Accel-Buffering"] = "no"
    for name, value in call.headers().items():
        streaming[name] = value

    async def abandon() -> None:
        # The server calls this once it is done with the response (omixa/asgi.py). If the client left
        # before the body was first read, the generator never ran and its `finally` never will: the
        # provider still produced what was held, so the stream is recorded here, and the upstream closed.
        if call.recorded:
            return
        call.out_chars += _chars(held)
        usage = decoder.usage or call.estimate(with_output=True)
        call.record(outcome="client_gone", status=499, usage=usage, error_code="client_closed_request")
        await response.aclose()

    streaming.omixa_abandon = abandon
    return streaming


async def _stream_body(call: Call, response, chunks_iter, decoder, held: list[dict[str, Any]]):
    outcome, status, error_code = "completed", 200, ""
    chat = call.chat
    try:
        call.first_byte()
        call.out_chars += _chars(held)
        if held:
            call.completion_id = held[0].get("id") or ""
        yield _sse(held) if held else b": omixa\n\n"
        while not decoder.finished:
            try:
                raw = await chunks_iter.__anext__()
            except StopAsyncIteration:
                raise UpstreamError(ErrorKind.SERVER, "the upstream closed the stream before it finished") from None
            chunks = decoder.feed(raw)
            if chunks:
                call.out_chars += _chars(chunks)
                yield _sse(chunks)
        usage = decoder.usage or call.estimate(with_output=True)
        if chat.include_usage:
            yield _sse([_usage_chunk(call, usage)])
        # Recorded before [DONE]: a client that has seen the end can count on the record existing.
        call.record(outcome="completed", status=200, usage=usage)
        yield DONE
    except UpstreamError as error:
        outcome = "timeout" if error.kind == ErrorKind.TIMEOUT else "broken_stream"
        status = 504 if error.kind == ErrorKind.TIMEOUT else 502
        error_code = "upstream_timeout" if status == 504 else "upstream_stream_broken"
        payload = GatewayError(status, f"The upstream stream broke: {error.message}", code=error_code).payload()
        yield b"data: " + orjson.dumps(payload) + b"\n\n"
    except (asyncio.CancelledError, GeneratorExit):
        outcome, status, error_code = "client_gone", 499, "client_closed_request"
        raise
    finally:
        # Billed for what the provider billed us: its usage if it arrived, else an estimate.
        usage = decoder.usage or call.estimate(with_output=True)
        call.record(outcome=outcome, status=status, usage=usage, error_code=error_code)
        await response.aclose()


def _usage_chunk(call: Call, usage: Usage) -> dict[str, Any]:
    return {
        "id": call.completion_id or f"chatcmpl-{call.request_id}",
        "object": "chat.completion.chunk",
        "created": int(call.started_wall),
        "model": call.model.slug,
        "choices": [],
        "usage": _usage_payload(call, usage),
    }
