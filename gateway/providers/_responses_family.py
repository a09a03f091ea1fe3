"""Shared code of the Responses-API adapters (OpenAI `openai_responses`, Azure `azure_openai_v1_responses`).

Pure: no I/O, no ORM, no settings. For deployments that speak only the Responses API (codex-mini on Azure,
per Azure's reasoning-models table) while clients send chat completions. Sources: OpenAI's Responses API
reference (create, streaming events, function calling, reasoning summaries), openai-openapi / openai-python's
generated types (ResponseCreateParams, Response, ResponseUsage, ResponseStreamEvent, FunctionToolParam).

Translate in (chat → Responses):
- leading `system`/`developer` messages → `instructions` (joined by a blank line); later ones stay in place
  as input messages of the same role; `user` parts → `input_text` / `input_image{image_url, detail}` /
  `input_file{file_data | file_id, filename}`; assistant text → an assistant input message; assistant
  `tool_calls` → `function_call{call_id, name, arguments}` items; `tool` messages → `function_call_output`
  with the same `call_id`;
- `tools` flattened to `{"type": "function", name, description, parameters, strict}` (`strict` always sent:
  left out, the Responses API normalizes a schema into strict mode when it can; chat's default is non-strict);
  `tool_choice` named form `{"type": "function", "name"}`; `max_tokens`/`max_completion_tokens` →
  `max_output_tokens` (the API's minimum is 16: below it is a 400 naming the client's field);
  `reasoning_effort` → `reasoning.effort` and `show_thinking` → `reasoning.summary: "auto"` (reasoning routes);
  `response_format` → `text.format` (json_schema flattened), `verbosity` → `text.verbosity`; `service_tier`
  only where the route supports priority; `store` is false unless the operator turned retention on for the
  route (and the client did not say false);
- fields the Responses API does not have (`stop`, `seed`, `logprobs`, `logit_bias`, `n` > 1, audio, ...)
  are a 400 naming them (RequestRejected: the pipeline may still serve the request on a chat route).

Normalize out: `message`/`output_text` → `content`, `refusal` → `refusal`, `function_call` → `tool_calls`,
reasoning summaries → `reasoning_content` (only with show_thinking), `status: incomplete` (output limit) →
`finish_reason: length`; usage `input_tokens` (contains `cached_tokens`) and `output_tokens` (contains
`reasoning_tokens`) → the same disjoint buckets as chat. Streams: `response.created`/`in_progress` are
annotations; text, summary and argument deltas become chunks; `response.completed`/`incomplete` end the
stream with usage; `response.failed` and `error` events raise UpstreamError.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.providers._openai_family import (
    _error_fields,
    _int,
    estimated_usage,
    operation_url,
    parse_error,
    redact,
    request_headers,
)
from gateway.providers._openai_family import normalize_usage as chat_usage
from gateway.providers._sse import SSEFramer
from gateway.providers._wire import load_object
from gateway.types import ChatRequest, ErrorKind, RequestRejected, Route, UpstreamError, UpstreamRequest, Usage

MIN_OUTPUT_TOKENS = 16  # the Responses API refuses max_output_tokens below 16
# Chat fields this adapter translates, owns or forwards under the same name. Anything else is a 400.
HANDLED_FIELDS = frozenset(
    (
        "model messages stream stream_options show_thinking max_tokens max_completion_tokens temperature top_p "
        "tools tool_choice parallel_tool_calls reasoning_effort response_format verbosity service_tier store "
        "metadata user safety_identifier prompt_cache_key prompt_cache_retention n"
    ).split()
)
_SAME_NAME = (
    "parallel_tool_calls",
    "metadata",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
)
# Sampling fields reasoning models refuse; the spec already strips temperature/top_p for them (the page says so).
_REASONING_STRIPPED = ("temperature", "top_p")
_INCOMPLETE_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}
_RATE_CODES = frozenset(("rate_limit_exceeded", "rate_limit_error", "too_many_requests"))

_JSON = "application/json"
_SSE = "text/event-stream"


def _reject(message: str, param: str, code: str = "invalid_value") -> RequestRejected:
    return RequestRejected(message, param=param, code=code)


def _unsupported(name: str) -> RequestRejected:
    return _reject(
        f"Unsupported parameter: '{name}' is not supported by the Responses API that serves this model's route.",
        name,
        "unsupported_parameter",
    )


# ----------------------------------------------------------------------------------------------------
# translate in


def _text_of(content: Any, path: str, *, allow_refusal: bool = False) -> str:
    """The text of a system/developer/assistant/tool message (string, or text parts joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            texts.append(part.get("text") or "")
        elif kind == "refusal" and allow_refusal:
            texts.append(part.get("refusal") or "")
        else:
            raise _reject(
                f"Invalid '{path}[{j}]': only text parts can be sent here, not '{kind}'.", f"{path}[{j}].type"
            )
    return "".join(texts)


def _file_data(data: str) -> str:
    """Chat takes bare base64 or a data URL; Responses' `file_data` is a data URL."""
    return data if data.startswith("data:") else "data:application/pdf;base64," + data


def _user_parts(content: Any, path: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content or ()):
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "input_text", "text": part.get("text") or ""})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            parts.append(
                {"type": "input_image", "image_url": image.get("url"), "detail": image.get("detail") or "auto"}
            )
        elif kind == "file":
            file = part.get("file") or {}
            item: dict[str, Any] = {"type": "input_file"}
            if file.get("file_data"):
                item["file_data"] = _file_data(file["file_data"])
                item["filename"] = file.get("filename") or "file.pdf"
            elif file.get("file_id"):
                item["file_id"] = file["file_id"]
                if file.get("filename"):
                    item["filename"] = file["filename"]
            parts.append(item)
        else:
            raise _reject(
                f"Invalid value for '{path}[{j}].type': '{kind}' parts are not supported by the Responses API.",
                f"{path}[{j}].type",
            )
    return parts


def translate_messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """Chat messages → (instructions, Responses input items)."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        path = f"messages[{i}].content"
        if role in ("system", "developer"):
            text = _text_of(content, path)
            if not items:  # the leading system prompt: Responses' `instructions`
                if text:
                    instructions.append(text)
            else:  # later instructions keep their place in the conversation
                items.append({"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]})
        elif role == "user":
            items.append({"type": "message", "role": "user", "content": _user_parts(content, path)})
        elif role == "assistant":
            text = _text_of(content, path, allow_refusal=True)
            if text:
                items.append({"type": "message", "role": "assistant", "content": text})
            for call in message.get("tool_calls") or ():
                fn = call.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.get("id"),
                        "name": fn.get("name"),
                        "arguments": fn.get("arguments") or "",
                    }
                )
        elif role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id"),
                    "output": _text_of(content, path),
                }
            )
        else:
            raise _reject(f"Invalid value for 'messages[{i}].role': '{role}'.", f"messages[{i}].role")
    if not items:
        raise _reject("Invalid 'messages': at least one message besides system instructions is required.", "messages")
    return ("\n\n".join(instructions) if instructions else None), items


def translate_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        fn = tool.get("function") or {}
        item: dict[str, Any] = {
            "type": "function",
            "name": fn.get("name"),
            "parameters": fn.get("parameters") or {"type": "object", "properties": {}},
            "strict": fn.get("strict") is True,
        }
        if fn.get("description"):
            item["description"] = fn["description"]
        out.append(item)
    return out


def translate_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict):
        return {"type": "function", "name": (choice.get("function") or {}).get("name")}
    return choice  # "auto" | "none" | "required"


def translate_response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    kind = fmt.get("type")
    if kind != "json_schema":
        return {"type": kind}
    schema = fmt.get("json_schema") or {}
    out: dict[str, Any] = {"type": "json_schema", "name": schema.get("name"), "schema": schema.get("schema")}
    if schema.get("description"):
        out["description"] = schema["description"]
    if schema.get("strict") is not None:
        out["strict"] = schema["strict"]
    return out


# ----------------------------------------------------------------------------------------------------
# normalize out


def normalize_usage(raw: Mapping[str, Any] | None, service_tier: Any = None) -> Usage:
    """Responses usage → disjoint buckets: `input_tokens` contains `cached_tokens`, `output_tokens` contains
    `reasoning_tokens` (as chat's prompt/completion do)."""
    return chat_usage(raw, service_tier, prompt_key="input_tokens", completion_key="output_tokens")


def _summary_text(item: Mapping[str, Any]) -> str:
    texts = [s.get("text") or "" for s in item.get("summary") or () if isinstance(s, Mapping)]
    if not texts:  # raw reasoning text (open-weight models) when there is no summary
        texts = [c.get("text") or "" for c in item.get("content") or () if isinstance(c, Mapping)]
    return "\n\n".join(t for t in texts if t)


def _failure(response: Mapping[str, Any] | None, fallback: str) -> UpstreamError:
    error = (response or {}).get("error") if isinstance(response, Mapping) else None
    message, code = fallback, None
    if isinstance(error, Mapping):
        message = error.get("message") if isinstance(error.get("message"), str) else fallback
        code = error.get("code") if isinstance(error.get("code"), str) else None
    kind = ErrorKind.RATE_LIMITED if code in _RATE_CODES else ErrorKind.SERVER
    return UpstreamError(kind, redact(message)[:2000], code=code)


def _finish_reason(obj: Mapping[str, Any], has_calls: bool) -> str:
    if obj.get("status") == "incomplete":
        reason = (obj.get("incomplete_details") or {}).get("reason")
        return _INCOMPLETE_FINISH.get(reason, "length")
    return "tool_calls" if has_calls else "stop"


def completion_from_response(obj: Mapping[str, Any], model: str, *, show_thinking: bool) -> tuple[dict[str, Any], int]:
    """A Responses `response` object → (chat.completion dict without usage, characters of output)."""
    texts: list[str] = []
    refusals: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in obj.get("output") or ():
        if not isinstance(item, Mapping):
            raise UpstreamError(ErrorKind.SERVER, "upstream answer has a malformed output item")
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(part.get("text") or "")
                elif part.get("type") == "refusal":
                    refusals.append(part.get("refusal") or "")
        elif kind == "function_call":
            calls.append(
                {
                    "id": item.get("call_id") or item.get("id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""},
                }
            )
        elif kind == "reasoning":
            summary = _summary_text(item)
            if summary:
                reasoning.append(summary)
    content = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": content if (content or not calls) else None}
    message["refusal"] = "".join(refusals) or None
    if calls:
        message["tool_calls"] = calls
    if show_thinking and reasoning:
        message["reasoning_content"] = "\n\n".join(reasoning)
    created = obj.get("created_at")
    completion = {
        "id": f"chatcmpl-{obj.get('id') or int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(created) if isinstance(created, int | float) else int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(obj, bool(calls))}
        ],
        "service_tier": obj.get("service_tier"),
    }
    chars = len(content) + sum(len(c["function"]["arguments"]) for c in calls)
    return completion, chars


# ----------------------------------------------------------------------------------------------------
# the adapter


class ResponsesFamilyAdapter:
    """One instance per endpoint type; `azure` selects Azure OpenAI v1 (`api-key`, `/openai/v1/responses`)."""

    __slots__ = ("azure", "endpoint_type")

    def __init__(self, endpoint_type: str, *, azure: bool) -> None:
        self.endpoint_type = endpoint_type
        self.azure = azure

    def url(self, route: Route) -> str:
        return operation_url(route, "responses", azure=self.azure)

    def prepare(self, request: ChatRequest, route: Route) -> UpstreamRequest:
        src = request.body
        for name in src:
            if name not in HANDLED_FIELDS:
                raise _unsupported(name)
        n = src.get("n")
        if n is not None and n != 1:
            raise _reject("Unsupported value: 'n' must be 1 with the Responses API.", "n", "unsupported_value")

        instructions, items = translate_messages(src["messages"])
        body: dict[str, Any] = {"model": route.deployment or route.model_slug}
        if instructions is not None:
            body["instructions"] = instructions
        body["input"] = items

        limit = request.max_output_tokens
        if limit is not None:
            if limit < MIN_OUTPUT_TOKENS:
                param = "max_completion_tokens" if "max_completion_tokens" in src else "max_tokens"
                raise _reject(
                    f"Invalid '{param}': this model's route (the Responses API) takes at least {MIN_OUTPUT_TOKENS} "
                    f"output tokens, but got {limit}.",
                    param,
                    "integer_below_min_value",
                )
            body["max_output_tokens"] = limit

        effort = request.reasoning_effort or src.get("reasoning_effort")
        if route.reasoning:
            reasoning: dict[str, Any] = {}
            if effort:
                reasoning["effort"] = effort
            if request.show_thinking:
                reasoning["summary"] = "auto"
            if reasoning:
                body["reasoning"] = reasoning
        elif effort:
            raise _reject(
                "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
                "reasoning_effort",
                "unsupported_parameter",
            )
        for name in ("temperature", "top_p"):
            if name in src and not (route.reasoning and name in _REASONING_STRIPPED):
                body[name] = src[name]

        if src.get("tools"):
            body["tools"] = translate_tools(src["tools"])
        if "tool_choice" in src:
            body["tool_choice"] = translate_tool_choice(src["tool_choice"])
        text: dict[str, Any] = {}
        if src.get("response_format"):
            text["format"] = translate_response_format(src["response_format"])
        if src.get("verbosity"):
            text["verbosity"] = src["verbosity"]
        if text:
            body["text"] = text
        for name in _SAME_NAME:
            if name in src:
                body[name] = src[name]

        tier = request.service_tier or src.get("service_tier")
        if tier and route.supports_priority:
            body["service_tier"] = tier
        # Retention is the operator's call per route; a client may still opt out.
        body["store"] = bool(route.store and src.get("store") is not False)
        if request.stream:
            body["stream"] = True

        headers = request_headers(route, azure=self.azure, stream=request.stream)
        return UpstreamRequest(url=self.url(route), headers=headers, body=orjson.dumps(body))

    def parse_completion(self, request: ChatRequest, route: Route, data: bytes) -> tuple[dict[str, Any], Usage]:
        obj = load_object(data, "a 2xx body")
        if obj.get("status") == "failed" or (obj.get("error") and not obj.get("output")):
            raise _failure(obj, "the upstream response failed")
        if not isinstance(obj.get("output"), list):
            raise UpstreamError(ErrorKind.SERVER, "upstream answer has no output")
        completion, chars = completion_from_response(obj, request.model, show_thinking=request.show_thinking)
        raw_usage = obj.get("usage")
        if isinstance(raw_usage, dict):
            usage = normalize_usage(raw_usage, obj.get("service_tier"))
        else:
            usage = estimated_usage(request, chars, obj.get("service_tier"))
        return completion, usage

    def parse_error(self, status: int, headers: Mapping[str, str], data: bytes) -> UpstreamError:
        return parse_error(status, headers, data)

    def stream_decoder(self, request: ChatRequest, route: Route) -> ResponsesStreamDecoder:
        return ResponsesStreamDecoder(request.model, show_thinking=request.show_thinking)


# ----------------------------------------------------------------------------------------------------
# streaming


def _item_key(item_id: Any, output_index: Any) -> str:
    """Events name their item by id; by position when a server leaves the id out."""
    return item_id if isinstance(item_id, str) and item_id else f"#{output_index}"


class ResponsesStreamDecoder:
    """Responses SSE events → `chat.completion.chunk` dicts. Only complete events are decoded (SSEFramer),
    so however the bytes are split the output is the same."""

    __slots__ = (
        "_args_seen",
        "_calls",
        "_created",
        "_id",
        "_last_summary",
        "_role_sent",
        "_sse",
        "_text_seen",
        "finish_reason",
        "finished",
        "model",
        "show_thinking",
        "usage",
    )

    def __init__(self, model: str, *, show_thinking: bool = False) -> None:
        self.model = model
        self.show_thinking = show_thinking
        self.usage: Usage | None = None
        self.finished = False
        self.finish_reason: str | None = None
        self._sse = SSEFramer()
        self._id = f"chatcmpl-{int(time.time() * 1000)}"
        self._created = int(time.time())
        self._calls: dict[str, int] = {}  # item id → tool call index
        self._args_seen: set[str] = set()
        self._text_seen: set[str] = set()
        self._last_summary: tuple[str, int] | None = None
        self._role_sent = False

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for payload in self._sse.feed(data):
            if payload == b"[DONE]":
                self.finished = True
                continue
            self._event(load_object(payload, "a stream event"), out)
        return out

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _start(self, response: Any) -> None:
        if isinstance(response, Mapping):
            if isinstance(response.get("id"), str):
                self._id = "chatcmpl-" + response["id"]
            if isinstance(response.get("created_at"), int | float):
                self._created = int(response["created_at"])

    def _event(self, event: dict[str, Any], out: list[dict[str, Any]]) -> None:
        kind = event.get("type")
        if kind == "response.output_text.delta":
            delta = event.get("delta")
            if delta:
                self._text_seen.add(_item_key(event.get("item_id"), event.get("output_index")))
                out.append(self._chunk({"content": delta}))
        elif kind == "response.function_call_arguments.delta":
            key = _item_key(event.get("item_id"), event.get("output_index"))
            index = self._calls.get(key)
            delta = event.get("delta")
            if index is not None and delta:
                self._args_seen.add(key)
                out.append(self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta}}]}))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            delta = event.get("delta")
            if self.show_thinking and delta:
                at = (event.get("item_id") or "", _int(event.get("summary_index")))
                if self._last_summary is not None and self._last_summary != at:
                    delta = "\n\n" + delta  # a new summary part
                self._last_summary = at
                out.append(self._chunk({"reasoning_content": delta}))
        elif kind == "response.refusal.delta":
            delta = event.get("delta")
            if delta:
                out.append(self._chunk({"refusal": delta}))
        elif kind == "response.output_item.added":
            item = event.get("item") or {}
            if item.get("type") == "function_call":
                index = len(self._calls)
                self._calls[_item_key(item.get("id"), event.get("output_index"))] = index
                call = {
                    "index": index,
                    "id": item.get("call_id") or item.get("id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": ""},
                }
                out.append(self._chunk({"tool_calls": [call]}))
        elif kind == "response.output_item.done":
            self._item_done(event.get("item") or {}, event.get("output_index"), out)
        elif kind in ("response.completed", "response.incomplete"):
            response = event.get("response") or {}
            self._start(response)
            usage = response.get("usage")
            if isinstance(usage, Mapping):
                self.usage = normalize_usage(usage, response.get("service_tier"))
            self.finish_reason = _finish_reason(response, bool(self._calls))
            self.finished = True
            out.append(self._chunk({}, self.finish_reason))
        elif kind in ("response.created", "response.in_progress", "response.queued"):
            self._start(event.get("response"))  # annotation only: nothing for the client yet
        elif kind == "response.failed":
            response = event.get("response") or {}
            usage = response.get("usage") if isinstance(response, Mapping) else None
            if isinstance(usage, Mapping):
                self.usage = normalize_usage(usage, response.get("service_tier"))
            raise _failure(response, "the upstream response failed")
        elif kind == "error":
            message, _type, _param, code = _error_fields(orjson.dumps({"error": event.get("error") or event}))
            kind_ = ErrorKind.RATE_LIMITED if code in _RATE_CODES else ErrorKind.SERVER
            raise UpstreamError(kind_, redact(message or "upstream sent an error event mid-stream"), code=code)
        # every other event (content_part.*, *.done, annotations, hosted tools) adds nothing to chat chunks

    def _item_done(self, item: Mapping[str, Any], output_index: Any, out: list[dict[str, Any]]) -> None:
        """An item whose deltas never came (some servers send only the finished item): emit it whole."""
        item_id = _item_key(item.get("id"), output_index)
        kind = item.get("type")
        if kind == "function_call":
            index = self._calls.get(item_id)
            if index is None:
                index = len(self._calls)
                self._calls[item_id] = index
                call = {
                    "index": index,
                    "id": item.get("call_id") or item.get("id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""},
                }
                out.append(self._chunk({"tool_calls": [call]}))
            elif item_id not in self._args_seen and item.get("arguments"):
                out.append(
                    self._chunk({"tool_calls": [{"index": index, "function": {"arguments": item["arguments"]}}]})
                )
        elif kind == "message" and item_id not in self._text_seen:
            text = "".join(p.get("text") or "" for p in item.get("content") or () if p.get("type") == "output_text")
            if text:
                out.append(self._chunk({"content": text}))
