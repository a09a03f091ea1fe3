"""A real HTTP server that behaves like Azure OpenAI v1 chat and OpenAI chat, for tests.

It runs aiohttp on 127.0.0.1 (a free port) in a background thread with its own event loop, so the code
under test talks to it over real sockets with its real HTTP client. It answers like the providers do:
auth checks with their real 401 bodies, the 400s the services give (Azure/OpenAI reasoning deployments:
`max_tokens`, non-default `temperature`, sampling fields; unknown top-level fields), 404 for an unknown
deployment, and the exact non-stream and SSE shapes (gateway/simulator.py generates the answers).
Every request is recorded. Failures are scripted per next request or per deployment.

    from tests.mocks.upstream import MockUpstream, Scenario, rate_limited

    with MockUpstream() as mock:
        mock.script(rate_limited(retry_after=2), deployment="codex-mini")   # next request to it: 429
        mock.script(Scenario(break_after=3))                                # then: a stream cut after 3 events
        route = mock.route("azure", "codex-mini")                           # a gateway Route pointing here
        ...
        assert mock.requests[-1].headers["api-key"] == mock.azure_key
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson
from aiohttp import web

from gateway.simulator import (
    DONE,
    Flavor,
    ProviderError,
    error_for,
    not_found,
    openai_error,
    simulate,
    sse_event,
    unauthorized,
    validate,
)
from gateway.types import Route
from tests.mocks._server import Scripts, ThreadedServer

Family = Literal["azure", "openai"]

DEFAULT_AZURE_KEY = "azure-test-key-0123456789abcdef"
DEFAULT_OPENAI_KEY = "sk-test-openai-key-0123456789"


@dataclass(slots=True)
class Deployment:
    """A deployment (Azure) / model id (OpenAI) the mock knows. Unknown names answer 404."""

    name: str
    reasoning: bool = False
    supports_priority: bool = False


DEFAULT_DEPLOYMENTS = (
    Deployment("codex-mini", reasoning=True),
    Deployment("o4-mini", reasoning=True),
    Deployment("gpt-5.1", reasoning=True, supports_priority=True),
    Deployment("gpt-4.1-mini"),
    Deployment("gpt-4.1", supports_priority=True),
)


@dataclass(slots=True)
class Scenario:
    """How the mock answers one request. The default is the provider's normal answer.

    status/body/headers: a non-200 status answers the provider's real error body for it (flavor-correct:
        Azure's `{"error":{"code":"429",...}}` vs OpenAI's `{"error":{message,type,param,code}}`) unless
        `body` is given (dict → JSON, str/bytes → sent raw). `code="insufficient_quota"` with 429 gives
        OpenAI's quota body. `retry_after` adds `retry-after` and `retry-after-ms` headers.
    delay: seconds before the response headers are sent (first-byte timeouts).
    chunk_delay: seconds before each stream event.
    break_after: stream: after N events the connection is closed abruptly (no [DONE], incomplete chunked body).
    error_after: stream: after N events an in-stream `data: {"error": ...}` event (`error_event` or a
        server_error), then the stream ends without [DONE].
    endless: stream: the role chunk, then a content chunk every `chunk_delay` (at least 10 ms) forever.
    annotation_first: stream: Azure's annotation-only first event (None: Azure yes, OpenAI no).
    include_usage: False drops the usage chunk even when asked for; True sends it even when not asked.
    text / tool_calls / reasoning_text: answer overrides (tool_calls = [(name, args dict or JSON string)]);
        reasoning_text adds `reasoning_content` (message field / deltas). arg_chunk_chars: size of the
        `arguments` fragments in streamed tool calls.
    events: a fully scripted stream: dicts are sent as `data: <json>`, bytes as-is (add your own [DONE]).
    usage: replaces the usage object (non-stream body and usage chunk).
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    code: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    break_after: int | None = None
    error_after: int | None = None
    error_event: dict[str, Any] | None = None
    endless: bool = False
    annotation_first: bool | None = None
    include_usage: bool | None = None
    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any] | str]] | None = None
    reasoning_text: str | None = None
    arg_chunk_chars: int = 7
    events: list[dict[str, Any] | bytes] | None = None
    usage: dict[str, Any] | None = None


def rate_limited(retry_after: float | None = 1.0, **kw: Any) -> Scenario:
    return Scenario(status=429, retry_after=retry_after, **kw)


def insufficient_quota(**kw: Any) -> Scenario:
    return Scenario(status=429, code="insufficient_quota", **kw)


def server_error(status: int = 500, **kw: Any) -> Scenario:
    return Scenario(status=status, **kw)


def unavailable(retry_after: float | None = None, **kw: Any) -> Scenario:
    return Scenario(status=503, retry_after=retry_after, **kw)


def auth_failure(status: int = 401, **kw: Any) -> Scenario:
    return Scenario(status=status, **kw)


def broken_stream(after: int = 3, **kw: Any) -> Scenario:
    return Scenario(break_after=after, **kw)


def error_mid_stream(after: int = 2, error: dict[str, Any] | None = None, **kw: Any) -> Scenario:
    return Scenario(error_after=after, error_event=error, **kw)


def slow_stream(chunk_delay: float = 0.2, **kw: Any) -> Scenario:
    return Scenario(endless=True, chunk_delay=chunk_delay, **kw)


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    json: Any  # None when the body is not JSON
    flavor: Flavor | None
    deployment: str | None
    at: float


class MockUpstream(ThreadedServer):
    """See the module docstring. Thread-safe to script and inspect from the test's thread."""

    thread_name = "mock-upstream"

    def __init__(
        self,
        *,
        azure_key: str = DEFAULT_AZURE_KEY,
        openai_key: str = DEFAULT_OPENAI_KEY,
        deployments: tuple[Deployment, ...] = DEFAULT_DEPLOYMENTS,
    ) -> None:
        super().__init__()
        self.azure_key = azure_key
        self.openai_key = openai_key
        self._default_deployments = deployments
        self.deployments: dict[str, Deployment] = {d.name: replace(d) for d in deployments}
        self.requests: list[RecordedRequest] = []
        self.open_streams = 0  # stream answers still being written (a cancelled upstream call ends its stream)
        self._lock = threading.Lock()
        self._scripts: Scripts[Scenario] = Scripts(Scenario)
        self._generation = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/openai/v1/chat/completions", self._azure_v1)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure_deployments)
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_route("*", "/{tail:.*}", self._unknown_path)
        return app

    # -- scripting -------------------------------------------------------------------------------

    def add_deployment(self, name: str, *, reasoning: bool = False, supports_priority: bool = False) -> Deployment:
        dep = Deployment(name, reasoning=reasoning, supports_priority=supports_priority)
        with self._lock:
            self.deployments[name] = dep
        return dep

    def remove_deployment(self, name: str) -> None:
        with self._lock:
            self.deployments.pop(name, None)

    def script(self, scenario: Scenario, *, deployment: str | None = None, times: int | None = 1) -> None:
        """Queue `scenario` for the next `times` requests (None: every request until reset), to
        `deployment` only when given. Per-deployment scripts win over global ones; queues are FIFO."""
        self._scripts.add(scenario, deployment, times)

    def always(self, scenario: Scenario, *, deployment: str | None = None) -> None:
        self.script(scenario, deployment=deployment, times=None)

    def reset(self) -> None:
        """Forget scripts, recorded requests and added deployments; stop endless streams."""
        self._scripts.clear()
        with self._lock:
            self.requests.clear()
            self.deployments = {d.name: replace(d) for d in self._default_deployments}
            self._generation += 1

    def _next_scenario(self, deployment: str | None) -> Scenario:
        return self._scripts.next(deployment)

    # -- inspection ------------------------------------------------------------------------------

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    def requests_for(self, deployment: str) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.deployment == deployment]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return list(self.requests)

    def route(
        self,
        family: Family = "azure",
        deployment: str = "codex-mini",
        *,
        id: int = 1,
        api_key: str | None = None,
        model_slug: str | None = None,
        **overrides: Any,
    ) -> Route:
        """A gateway Route that points at this mock (reasoning/priority copied from the deployment)."""
        dep = self.deployments.get(deployment, Deployment(deployment))
        fields: dict[str, Any] = {
            "id": id,
            "name": f"mock-{family}-{deployment}-{id}",
            "model_slug": model_slug or deployment,
            "provider": "azure-openai" if family == "azure" else "openai",
            "endpoint_type": "azure_openai_v1_chat" if family == "azure" else "openai_chat",
            "base_url": self.url,
            "deployment": deployment,
            "api_key": api_key if api_key is not None else (self.azure_key if family == "azure" else self.openai_key),
            "reasoning": dep.reasoning,
            "supports_priority": dep.supports_priority,
        }
        fields.update(overrides)
        return Route(**fields)

    # -- handlers --------------------------------------------------------------------------------

    async def _azure_v1(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "azure", None)

    async def _azure_deployments(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "azure", request.match_info["deployment"])

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "openai", None)

    async def _unknown_path(self, request: web.Request) -> web.StreamResponse:
        await self._record(request, None, None)
        return _json(404, {"error": {"code": "404", "message": "Resource not found"}})

    async def _record(self, request: web.Request, flavor: Flavor | None, path_deployment: str | None) -> Any:
        raw = await request.read()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        deployment = path_deployment
        if deployment is None and isinstance(parsed, dict) and isinstance(parsed.get("model"), str):
            deployment = parsed["model"]
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=raw,
            json=parsed,
            flavor=flavor,
            deployment=deployment,
            at=time.time(),
        )
        with self._lock:
            self.requests.append(rec)
        return rec

    def _authorized(self, request: web.Request, flavor: Flavor) -> bool:
        expected = self.azure_key if flavor == "azure" else self.openai_key
        if flavor == "azure" and "api-key" in request.headers:
            return request.headers["api-key"] == expected
        auth = request.headers.get("authorization", "")
        return auth[:7].lower() == "bearer " and auth[7:].strip() == expected

    async def _handle(self, request: web.Request, flavor: Flavor, path_deployment: str | None) -> web.StreamResponse:
        rec = await self._record(request, flavor, path_deployment)
        ids = _id_headers(flavor)
        if not self._authorized(request, flavor):
            return _error(unauthorized(flavor), ids)
        if path_deployment is not None and "api-version" not in request.query:
            return _error(openai_error(400, "Missing required query parameter: api-version", param="api-version"), ids)
        scenario = self._next_scenario(rec.deployment)
        if scenario.delay:
            await asyncio.sleep(scenario.delay)
        if scenario.status != 200:
            return self._scripted_error(scenario, flavor, ids)
        body = rec.json
        if not isinstance(body, dict):
            return _error(openai_error(400, "We could not parse the JSON body of your request."), ids)
        if path_deployment is not None:
            body = {**body, "model": path_deployment}
        with self._lock:
            dep = self.deployments.get(str(body.get("model")))
        if dep is None:
            return _error(not_found(str(body.get("model")), flavor), ids)
        try:
            validate(body, flavor, reasoning=dep.reasoning)
        except ProviderError as err:
            return _error(err, ids)

        answer = simulate(
            body,
            flavor=flavor,
            reasoning=dep.reasoning,
            supports_priority=dep.supports_priority,
            text=scenario.text,
            tool_calls=scenario.tool_calls,
            reasoning_text=scenario.reasoning_text,
            arg_chunk_chars=scenario.arg_chunk_chars,
        )
        headers = {**ids, **_ratelimit_headers(flavor), **scenario.headers}
        if not body.get("stream"):
            out = scenario.body if scenario.body is not None else answer.completion()
            if scenario.usage is not None and isinstance(out, dict):
                out = {**out, "usage": scenario.usage}
            return _raw(200, out, headers)
        return await self._stream(request, scenario, answer, flavor, headers)

    def _scripted_error(self, scenario: Scenario, flavor: Flavor, ids: dict[str, str]) -> web.Response:
        err = error_for(scenario.status, flavor, code=scenario.code, retry_after=scenario.retry_after)
        body = scenario.body if scenario.body is not None else err.body
        return _raw(scenario.status, body, {**ids, **err.headers, **scenario.headers})

    async def _stream(
        self, request: web.Request, scenario: Scenario, answer: Any, flavor: Flavor, headers: dict[str, str]
    ) -> web.StreamResponse:
        generation = self._generation
        with self._lock:
            self.open_streams += 1
        try:
            return await self._stream_events(request, scenario, answer, flavor, headers, generation)
        finally:
            with self._lock:
                self.open_streams -= 1

    async def _stream_events(
        self,
        request: web.Request,
        scenario: Scenario,
        answer: Any,
        flavor: Flavor,
        headers: dict[str, str],
        generation: int,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"content-type": "text/event-stream; charset=utf-8", **headers})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        if scenario.events is not None:
            events = [e if isinstance(e, bytes) else sse_event(e) for e in scenario.events]
        else:
            chunks = answer.chunks()
            if scenario.usage is not None and chunks and "usage" in chunks[-1] and chunks[-1]["usage"]:
                chunks[-1]["usage"] = scenario.usage
            annotated = flavor == "azure" if scenario.annotation_first is None else scenario.annotation_first
            if flavor == "azure" and not annotated:
                chunks = chunks[1:]
            elif flavor == "openai" and annotated:
                chunks.insert(0, answer.annotation_chunk())
            if scenario.include_usage is False and chunks and not chunks[-1]["choices"] and chunks[-1].get("usage"):
                chunks.pop()
            elif scenario.include_usage is True and not answer.include_usage:
                chunks.append({**answer.usage_chunk(), "usage": scenario.usage or answer.usage()})
            if scenario.endless:
                first = 2 if annotated else 1
                events = [sse_event(c) for c in chunks[:first]]
            else:
                events = [sse_event(c) for c in chunks] + [DONE]

        try:
            sent = 0
            for event in events:
                if scenario.break_after is not None and sent >= scenario.break_after:
                    return self._abort(request, resp)
                if scenario.error_after is not None and sent >= scenario.error_after:
                    await self._send_error_event(resp, scenario)
                    return resp
                if scenario.chunk_delay:
                    await asyncio.sleep(scenario.chunk_delay)
                await resp.write(event)
                sent += 1
            if scenario.endless:
                tick = 0
                while not self._closing and generation == self._generation:
                    await asyncio.sleep(max(scenario.chunk_delay, 0.01))
                    if scenario.break_after is not None and sent >= scenario.break_after:
                        return self._abort(request, resp)
                    if scenario.error_after is not None and sent >= scenario.error_after:
                        await self._send_error_event(resp, scenario)
                        return resp
                    await resp.write(sse_event(answer.content_delta(f"tick{tick} ")))
                    tick += 1
                    sent += 1
                return self._abort(request, resp)
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):  # the client went away
            pass
        return resp

    async def _send_error_event(self, resp: web.StreamResponse, scenario: Scenario) -> None:
        error = scenario.error_event or {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
        await resp.write(sse_event({"error": error}))
        await resp.write_eof()

    @staticmethod
    def _abort(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        resp.force_close()
        if request.transport is not None:
            request.transport.abort()  # RST without the chunked terminator: an incomplete body
        return resp


def _id_headers(flavor: Flavor) -> dict[str, str]:
    rid = f"req_{time.time_ns():x}"
    if flavor == "azure":
        return {"apim-request-id": rid, "x-ms-region": "Sweden Central"}
    return {"x-request-id": rid, "openai-processing-ms": "12", "openai-version": "2020-10-01"}


def _ratelimit_headers(flavor: Flavor) -> dict[str, str]:
    headers = {"x-ratelimit-remaining-requests": "99", "x-ratelimit-remaining-tokens": "99000"}
    if flavor == "openai":
        headers |= {
            "x-ratelimit-limit-requests": "100",
            "x-ratelimit-limit-tokens": "100000",
            "x-ratelimit-reset-requests": "600ms",
            "x-ratelimit-reset-tokens": "6ms",
        }
    return headers


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), headers={"content-type": "application/json", **(headers or {})}
    )


def _raw(status: int, body: Any, headers: dict[str, str]) -> web.Response:
    if isinstance(body, bytes | str):
        data = body.encode() if isinstance(body, str) else body
        headers = {"content-type": "text/plain; charset=utf-8", **headers}
        return web.Response(status=status, body=data, headers=headers)
    return _json(status, body, headers)


def _error(err: ProviderError, ids: dict[str, str]) -> web.Response:
    return _json(err.status, err.body, {**ids, **err.headers})
