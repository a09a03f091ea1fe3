"""Shared code of the OpenAI-family adapters (OpenAI chat, Azure OpenAI v1 chat). Pure: no I/O.

Both families speak the same chat-completions wire format; they differ in the URL, the auth header,
which max-tokens field a non-reasoning deployment takes, a few fields, and Azure's content-filter
annotations (top-level `prompt_filter_results`, per-choice `content_filter_results`, annotation-only
stream chunks), which the normalizers drop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import orjson

from gateway.providers._sse import SSEFramer
from gateway.providers._wire import load_object
from gateway.types import ChatRequest, ErrorKind, RequestRejected, Route, UpstreamError, UpstreamRequest, Usage

# Top-level request fields of OpenAI's CreateChatCompletionRequest (openai-openapi). Anything else is a
# field no OpenAI-family upstream takes: rejected here with a 400 naming it, before anything is sent.
OPENAI_CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
# Azure OpenAI v1 chat: the OpenAI fields, plus Azure's own, minus OpenAI-hosted tools.
AZURE_CHAT_FIELDS = (OPENAI_CHAT_FIELDS | {"data_sources", "user_security_context"}) - {"web_search_options"}

# Sampling fields reasoning models reject (providers.md §1; OpenAI's reasoning guide says the same).
# temperature/top_p are stripped silently instead (the page says so), see `prepare`.
REASONING_REJECTED = ("presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "logit_bias")
REASONING_STRIPPED = ("temperature", "top_p")
# Omixa-only or adapter-owned fields never forwarded as sent by the client.
_OWNED = ("max_tokens", "max_completion_tokens", "stream", "stream_options", "show_thinking", "service_tier")

_JSON = "application/json"
_SSE = "text/event-stream"


def normalize_base_url(base_url: str) -> str:
    """`https://x.openai.azure.com/openai/v1/` → `https://x.openai.azure.com` (DESIGN: operators may type it)."""
    base = base_url.strip().rstrip("/")
    for suffix in ("/openai/v1", "/v1", "/openai"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def normalize_usage(
    raw: Mapping[str, Any] | None,
    service_tier: Any = None,
    *,
    prompt_key: str = "prompt_tokens",
    completion_key: str = "completion_tokens",
) -> Usage:
    """OpenAI/Azure usage → disjoint buckets. `prompt_tokens` contains `cached_tokens`; `completion_tokens`
    contains `reasoning_tokens` (providers.md §5, pitfall 1): subtract the one, keep the other inside.
    The Responses API names them `input_tokens` / `output_tokens` (with `…_details` alike): pass the keys."""
    raw = raw or {}
    prompt = _int(raw.get(prompt_key))
    completion = _int(raw.get(completion_key))
    pdet = raw.get(prompt_key + "_details") or {}
    cdet = raw.get(completion_key + "_details") or {}
    cached = min(_int(pdet.get("cached_tokens")) if isinstance(pdet, Mapping) else 0, prompt)
    reasoning = min(_int(cdet.get("reasoning_tokens")) if isinstance(cdet, Mapping) else 0, completion)
    return Usage(
        input_tokens=prompt - cached,
        cached_input_tokens=cached,
        output_tokens=completion,
        reasoning_tokens=reasoning,
        service_tier=service_tier if isinstance(service_tier, str) else "",
    )


def operation_url(route: Route, operation: str, *, azure: bool) -> str:
    """`{base}/openai/v1/{operation}` (Azure, `?api-version=` only when the route sets one) or
    `{base}/v1/{operation}` (OpenAI)."""
    base = normalize_base_url(route.base_url)
    if not azure:
        return f"{base}/v1/{operation}"
    url = f"{base}/openai/v1/{operation}"
    if route.api_version:
        url += "?api-version=" + quote(route.api_version, safe="")
    return url


def estimated_usage(request: ChatRequest, answer_chars: int, service_tier: Any) -> Usage:
    """No usage reported: bill an estimate (the prompt's, ~4 characters an output token), marked as such."""
    return Usage(
        input_tokens=request.estimated_input_tokens,
        output_tokens=(answer_chars + 3) // 4,
        service_tier=service_tier if isinstance(service_tier, str) else "",
        estimated=True,
    )


def request_headers(route: Route, *, azure: bool, stream: bool) -> dict[str, str]:
    """JSON in, JSON or SSE out, and the route's secret: Azure's `api-key`, else OpenAI's Bearer."""
    headers = {"content-type": _JSON, "accept": _SSE if stream else _JSON}
    if azure:
        headers["api-key"] = route.api_key
    else:
        headers["authorization"] = "Bearer " + route.api_key
    return headers


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float):
        return max(int(value), 0)
    return 0


# ----------------------------------------------------------------------------------------------------
# errors


_SECRET_PATTERNS = (
    re.compile(r"(?i)(api key provided:\s*)\S+"),
    re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-*.]{4,}"),
    re.compile(r"(?i)\bbearer\s+\S+"),
    re.compile(r"\b[A-Za-z0-9+/_\-]{32,}={0,2}"),  # long opaque tokens (Azure keys are 32 hex or 84 chars)
)


def redact(text: str) -> str:
    """Strip anything that looks like a credential (even masked fragments) from a provider message."""
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(r"\1[redacted]", text)
        else:
            text = pattern.sub("[redacted]", text)
    return text


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        for key, val in headers.items():
            if key.lower() == name:
                return val
    return value


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """`retry-after-ms` (Azure, OpenAI) wins over `retry-after` (seconds or an HTTP date)."""
    ms = _header(headers, "retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    ra = _header(headers, "retry-after")
    if ra:
        ra = ra.strip()
        try:
            value = float(ra)
            return value if value >= 0 else None
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(ra).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return max(when - (time.time() if now is None else now), 0.0)
    return None


def parse_error(status: int, headers: Mapping[str, str], data: bytes) -> UpstreamError:
    """Classify a non-2xx OpenAI/Azure answer. Handles OpenAI's `{"error":{message,type,param,code}}`,
    Azure's `{"error":{"code":"401","message":...}}` and non-JSON bodies (gateways, proxies, HTML)."""
    message, etype, param, code = _error_fields(data)
    if not message:
        message = f"upstream answered HTTP {status}"
    message = redact(message)[:2000]

    if status in (401, 403):
        kind = ErrorKind.AUTH
    elif status == 404:
        kind = ErrorKind.NOT_FOUND
    elif status == 408:
        kind = ErrorKind.TIMEOUT
    elif status == 429:
        quota = "insufficient_quota" in (code, etype)
        kind = ErrorKind.QUOTA if quota else ErrorKind.RATE_LIMITED
    elif status >= 500 or status < 400:
        kind = ErrorKind.SERVER
    elif code == "OperationNotSupported":
        # Azure: this deployment cannot do this operation (a Responses-only model such as codex-mini
        # called on chat completions). The route's fault, not the request's: fail over like a 404.
        kind = ErrorKind.NOT_FOUND
    else:  # 400, 409, 413, 415, 422, ...: the request's fault (incl. Azure's prompt content_filter 400)
        kind = ErrorKind.CLIENT
    retry_after = retry_after_seconds(headers) if kind in (ErrorKind.RATE_LIMITED, ErrorKind.SERVER) else None
    if kind in (ErrorKind.AUTH, ErrorKind.QUOTA, ErrorKind.NOT_FOUND, ErrorKind.RATE_LIMITED, ErrorKind.SERVER):
        param = None  # only a client error names a request field
    return UpstreamError(kind=kind, message=message, status=status, code=code, param=param, retry_after=retry_after)


def _error_fields(data: bytes) -> tuple[str, str | None, str | None, str | None]:
    try:
        obj = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        text = data.decode("utf-8", "replace").strip()
        return (" ".join(text.split())[:500], None, None, None)
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, str):
        return (err, None, None, None)
    if not isinstance(err, dict):
        if isinstance(obj, dict) and isinstance(obj.get("message"), str):
            return (obj["message"], None, None, _str(obj.get("code")))
        return ("", None, None, None)
    message = err.get("message")
    return (
        message if isinstance(message, str) else "",
        _str(err.get("type")),
        _str(err.get("param")),
        _str(err.get("code")),
    )


def _str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


# ----------------------------------------------------------------------------------------------------
# the adapter


class OpenAIFamilyAdapter:
    """One instance per endpoint type; `azure` selects the Azure OpenAI v1 variant."""

    __slots__ = ("azure", "endpoint_type", "fields")

    def __init__(self, endpoint_type: str, *, azure: bool) -> None:
        self.endpoint_type = endpoint_type
        self.azure = azure
        self.fields = AZURE_CHAT_FIELDS if azure else OPENAI_CHAT_FIELDS

    # -- translate in ----------------------------------------------------------------------------

    def url(self, route: Route) -> str:
        return operation_url(route, "chat/completions", azure=self.azure)

    def prepare(self, request: ChatRequest, route: Route) -> UpstreamRequest:
        src = request.body
        for name in src:
            if name not in self.fields and name not in ("show_thinking",):
                raise RequestRejected(
                    f"Unrecognized request argument supplied: '{name}' is not supported by this model's provider.",
                    param=name,
                    code="unsupported_parameter",
                )
        body = {k: v for k, v in src.items() if k not in _OWNED}
        body["model"] = route.deployment or route.model_slug
        messages = body["messages"]
        if any("thinking_blocks" in m for m in messages):
            # Anthropic's signed thinking, which Omixa returns on tool-call answers: not an OpenAI field
            body["messages"] = [{k: v for k, v in m.items() if k != "thinking_blocks"} for m in messages]

        effort = request.reasoning_effort or body.pop("reasoning_effort", None)
        body.pop("reasoning_effort", None)
        if route.reasoning:
            for name in REASONING_STRIPPED:
                body.pop(name, None)
            for name in REASONING_REJECTED:
                if name in body:
                    raise RequestRejected(
                        f"Unsupported parameter: '{name}' is not supported with this model.",
                        param=name,
                        code="unsupported_parameter",
                    )
            if effort:
                body["reasoning_effort"] = effort
        elif effort:
            raise RequestRejected(
                "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
                param="reasoning_effort",
                code="unsupported_parameter",
            )

        if request.max_output_tokens is not None:
            if route.reasoning or not self.azure:
                body["max_completion_tokens"] = request.max_output_tokens
            else:
                body["max_tokens"] = request.max_output_tokens

        tier = request.service_tier or src.get("service_tier")
        if tier and route.supports_priority:
            body["service_tier"] = tier

        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}

        headers = request_headers(route, azure=self.azure, stream=request.stream)
        return UpstreamRequest(url=self.url(route), headers=headers, body=orjson.dumps(body))

    # -- normalize out ---------------------------------------------------------------------------

    def parse_completion(self, request: ChatRequest, route: Route, data: bytes) -> tuple[dict[str, Any], Usage]:
        obj = load_object(data, "a 2xx body")
        if obj.get("error"):
            err = parse_error(500, {}, data)
            raise UpstreamError(ErrorKind.SERVER, err.message, code=err.code)
        choices = obj.get("choices")
        if not isinstance(choices, list):
            raise UpstreamError(ErrorKind.SERVER, "upstream answer has no choices")
        raw_usage = obj.pop("usage", None)
        obj.pop("prompt_filter_results", None)
        obj.pop("prompt_annotations", None)
        obj["model"] = request.model
        text_len = 0
        for choice in choices:
            if not isinstance(choice, dict):
                raise UpstreamError(ErrorKind.SERVER, "upstream answer has a malformed choice")
            choice.pop("content_filter_results", None)
            choice.pop("content_filter_offsets", None)
            message = choice.get("message")
            if isinstance(message, dict):
                if not request.show_thinking:
                    message.pop("reasoning_content", None)
                content = message.get("content")
                if isinstance(content, str):
                    text_len += len(content)
        if isinstance(raw_usage, dict):
            usage = normalize_usage(raw_usage, obj.get("service_tier"))
        else:
            usage = estimated_usage(request, text_len, obj.get("service_tier"))
        return obj, usage

    def parse_error(self, status: int, headers: Mapping[str, str], data: bytes) -> UpstreamError:
        return parse_error(status, headers, data)

    def stream_decoder(self, request: ChatRequest, route: Route) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(request.model, show_thinking=request.show_thinking)


# ----------------------------------------------------------------------------------------------------
# streaming


class OpenAIStreamDecoder:
    """Incremental SSE → `chat.completion.chunk` dicts. Bytes may split anywhere (inside UTF-8 sequences,
    between CR and LF); only complete events are decoded, so splitting cannot change the output.

    The buffer holds at most one incomplete event; the scan for the event terminator resumes where the
    previous one stopped, so an event fed one byte at a time costs linear, not quadratic, time.
    """

    __slots__ = ("_sse", "finish_reason", "finished", "model", "show_thinking", "usage")

    def __init__(self, model: str, *, show_thinking: bool = False) -> None:
        self.model = model
        self.show_thinking = show_thinking
        self.usage: Usage | None = None
        self.finished = False
        self.finish_reason: str | None = None
        self._sse = SSEFramer()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for payload in self._sse.feed(data):
            self._event(payload, out)
        return out

    def _event(self, payload: bytes, out: list[dict[str, Any]]) -> None:
        if payload == b"[DONE]":
            self.finished = True
            return
        obj = load_object(payload, "a stream event")
        err = obj.get("error")
        if err:
            message, _t, _p, code = _error_fields(orjson.dumps({"error": err}))
            raise UpstreamError(
                ErrorKind.SERVER, redact(message or "upstream sent an error event mid-stream"), code=code
            )
        usage = obj.pop("usage", None)
        if usage:
            self.usage = normalize_usage(usage, obj.get("service_tier"))
        choices = obj.get("choices")
        if not choices:  # usage-only chunk, or Azure's annotation-only prompt_filter_results chunk
            return
        kept = []
        show = self.show_thinking
        for choice in choices:
            delta = choice.get("delta")
            finish = choice.get("finish_reason")
            if finish:
                self.finish_reason = finish
            if delta is None:
                if not finish:
                    continue  # Azure content-filter annotation for this choice, no content
                choice["delta"] = delta = {}
            if "content_filter_results" in choice:
                del choice["content_filter_results"]
            choice.pop("content_filter_offsets", None)
            if not show and "reasoning_content" in delta:
                del delta["reasoning_content"]
                if not delta and not finish:
                    continue
            kept.append(choice)
        if not kept:
            return
        obj["choices"] = kept
        obj["model"] = self.model
        obj.pop("prompt_filter_results", None)
        out.append(obj)
