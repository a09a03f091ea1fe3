"""A real HTTP server that behaves like Anthropic's Messages API (`POST /v1/messages`), for tests.

aiohttp on 127.0.0.1 (a free port) in a background thread with its own event loop, like tests/mocks/upstream.py.
Written from Anthropic's public API reference (messages, streaming, extended thinking, tool use, errors) and
anthropic-sdk-python's generated types. It answers like the API does:

- auth: `x-api-key` required (401 `authentication_error` otherwise), `anthropic-version` required (400);
- it rejects what the API rejects, with its error shape `{"type":"error","error":{"type","message"},"request_id"}`:
  unknown top-level fields (OpenAI-only ones: `max_completion_tokens`, `response_format`, `stream_options`, `n`,
  `frequency_penalty`, `user`, ...: "Extra inputs are not permitted"), a `system` role in `messages`, a missing
  `max_tokens`, empty text blocks, string `tool_choice`, OpenAI-shaped tools, `temperature` outside 0-1,
  `temperature` together with `top_p` (Claude Sonnet 4.5), thinking `budget_tokens` < 1024 or ≥ `max_tokens`,
  thinking with a non-default temperature or forced tool use, tool results without their tool use (and the
  reverse), text before tool results in a user turn, unknown models (404 `not_found_error`);
- it answers with the exact non-stream `message` shape and the real SSE sequence (`message_start`, `ping`,
  `content_block_start`/`_delta`/`_stop` with `text_delta`, `thinking_delta` + `signature_delta`,
  `input_json_delta` split across deltas, `message_delta` with cumulative usage, `message_stop`), usage with
  `cache_read_input_tokens` and `cache_creation_input_tokens`;
- scripted failures: any status with Anthropic's error body (incl. 529 `overloaded_error`), `retry-after`, delays,
  a stream cut after N events, an `error` event mid-stream. Every request is recorded.

    with MockAnthropic() as mock:
        mock.script(Scenario(status=529), model="claude-sonnet-4-5-20250929")
        mock.always(Scenario(usage={"cache_read_input_tokens": 1800}))
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.mocks._server import Scripts, ThreadedServer

DEFAULT_ANTHROPIC_KEY = "sk-ant-api03-mock-key-0123456789abcdefABCDEF"
# model id → max output tokens (Claude Sonnet 4.5: 64K; the alias resolves to the same model)
DEFAULT_MODELS = {"claude-sonnet-4-5-20250929": 64000, "claude-sonnet-4-5": 64000}
DEFAULT_TEXT = "Claude Sonnet 4.5 answers here: concise, practical, and streamed."
DEFAULT_THINKING = "The user wants a short answer; three bullet points will do."

# Top-level fields of MessageCreateParams (anthropic-sdk-python); anything else: "Extra inputs are not permitted".
REQUEST_FIELDS = frozenset(
    (
        "model messages max_tokens system metadata stop_sequences stream temperature top_p top_k tools tool_choice "
        "thinking service_tier output_config container inference_geo cache_control mcp_servers context_management"
    ).split()
)
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
ERROR_TYPES = {
    400: ("invalid_request_error", "There was an issue with the format or content of your request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your account has a billing issue."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed your organization's rate limit. Please try again later."),
    500: ("api_error", "An unexpected error has occurred internal to Anthropic's systems."),
    529: ("overloaded_error", "Overloaded"),
}


class Invalid(Exception):
    def __init__(self, message: str, status: int = 400, etype: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.etype = etype or ERROR_TYPES.get(status, ("api_error", ""))[0]


def error_body(etype: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": etype, "message": message}, "request_id": _request_id()}


def _request_id() -> str:
    return f"req_011{time.time_ns():x}"


@dataclass(slots=True)
class Scenario:
    """How the mock answers one request; the default is the API's normal answer.

    status/message/error_type/body: a non-200 status answers Anthropic's error body for it (`body` replaces it).
    retry_after: adds `retry-after` (seconds). delay: before the response headers. chunk_delay: before each event.
    break_after: stream: the connection is aborted after N events (no message_stop, incomplete chunked body).
    error_after: stream: after N events an `error` event (`error_event` or overloaded_error), then the end.
    text / tool_calls [(name, input dict)] / thinking: answer overrides (thinking only shows when the request
    enables it). usage: values that replace the computed usage (e.g. cache_read_input_tokens).
    """

    status: int = 200
    message: str | None = None
    error_type: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    break_after: int | None = None
    error_after: int | None = None
    error_event: dict[str, Any] | None = None
    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] | None = None
    thinking: str | None = None
    usage: dict[str, int] | None = None
    text_chunk_chars: int = 12
    arg_chunk_chars: int = 7


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    json: Any
    model: str | None
    at: float


# ----------------------------------------------------------------------------------------------------
# validation, as the API does it


def _check_text(block: dict, path: str) -> None:
    text = block.get("text")
    if not isinstance(text, str):
        raise Invalid(f"{path}.text: Input should be a valid string")
    if not text.strip():
        raise Invalid(
            f"{path}: text content blocks must contain non-whitespace text"
            if text
            else f"{path}: text content blocks must be non-empty"
        )


def _check_block(block: Any, path: str, role: str) -> None:
    if not isinstance(block, dict):
        raise Invalid(f"{path}: Input should be a valid dictionary")
    kind = block.get("type")
    if kind == "text":
        _check_text(block, path)
    elif kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            if source.get("media_type") not in IMAGE_MEDIA_TYPES:
                raise Invalid(
                    f"{path}.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                )
            if not isinstance(source.get("data"), str) or not source["data"]:
                raise Invalid(f"{path}.source.base64.data: Field required")
        elif source.get("type") == "url":
            if not str(source.get("url", "")).startswith(("http://", "https://")):
                raise Invalid(f"{path}.source.url.url: Input should be a valid URL")
        else:
            raise Invalid(
                f"{path}.source: Input tag '{source.get('type')}' found using 'type' does not match any of the expected tags: 'base64', 'url'"
            )
    elif kind == "document":
        source = block.get("source") or {}
        if source.get("type") == "base64" and source.get("media_type") != "application/pdf":
            raise Invalid(f"{path}.source.base64.media_type: Input should be 'application/pdf'")
        if source.get("type") not in ("base64", "text", "url", "content"):
            raise Invalid(f"{path}.source: Input tag '{source.get('type')}' does not match any of the expected tags")
    elif kind == "tool_use":
        if role != "assistant":
            raise Invalid(f"{path}: tool_use blocks are only allowed in assistant messages")
        if not isinstance(block.get("input"), dict):
            raise Invalid(f"{path}.input: Input should be a valid dictionary")
        for key in ("id", "name"):
            if not isinstance(block.get(key), str) or not block[key]:
                raise Invalid(f"{path}.{key}: Field required")
    elif kind == "tool_result":
        if role != "user":
            raise Invalid(f"{path}: tool_result blocks are only allowed in user messages")
        if not isinstance(block.get("tool_use_id"), str):
            raise Invalid(f"{path}.tool_use_id: Field required")
        content = block.get("content")
        if isinstance(content, list):
            for k, inner in enumerate(content):
                _check_block(inner, f"{path}.content.{k}", "user")
    elif kind in ("thinking", "redacted_thinking"):
        if role != "assistant":
            raise Invalid(f"{path}: thinking blocks are only allowed in assistant messages")
        if kind == "thinking" and block.get("signature") != sign(block.get("thinking") or ""):
            raise Invalid(f"{path}: Invalid `signature` in `thinking` block")
        if kind == "redacted_thinking" and not isinstance(block.get("data"), str):
            raise Invalid(f"{path}.data: Field required")
    else:
        raise Invalid(f"{path}: Input tag '{kind}' found using 'type' does not match any of the expected tags")
    for extra in ("image_url", "input_audio", "file"):
        if extra in block:
            raise Invalid(f"{path}.{kind}.{extra}: Extra inputs are not permitted")


def sign(thinking: str) -> str:
    """The mock's thinking signature: like the real one, it breaks when the thinking text is changed."""
    return base64.b64encode(hashlib.sha256(b"mock-anthropic:" + thinking.encode()).digest()).decode()


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise Invalid("messages: Input should be a valid list")
    if not messages:
        raise Invalid("messages: at least one message is required")
    previous_tool_uses: list[str] = []
    for i, message in enumerate(messages):
        path = f"messages.{i}"
        if not isinstance(message, dict):
            raise Invalid(f"{path}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in ("user", "assistant"):
            if role == "system":
                raise Invalid(
                    'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, '
                    'not "system" as an input message role.'
                )
            raise Invalid(f"{path}.role: Input should be 'user' or 'assistant'")
        for extra in message:
            if extra not in ("role", "content"):
                raise Invalid(f"{path}.{extra}: Extra inputs are not permitted")
        content = message.get("content")
        last = i == len(messages) - 1
        if isinstance(content, str):
            if not content and not (last and role == "assistant"):
                raise Invalid(
                    f"{path}: all messages must have non-empty content except for the optional final assistant message"
                )
            blocks = [{"type": "text", "text": content}] if content else []
        elif isinstance(content, list):
            if not content and not (last and role == "assistant"):
                raise Invalid(
                    f"{path}: all messages must have non-empty content except for the optional final assistant message"
                )
            for j, block in enumerate(content):
                _check_block(block, f"{path}.content.{j}", role)
            blocks = content
        else:
            raise Invalid(
                f"{path}.content: Field required"
                if content is None
                else f"{path}.content: Input should be a valid list"
            )
        # tool pairing: every tool_use answered in the very next (user) message, results first
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if previous_tool_uses:
            missing = [t for t in previous_tool_uses if t not in results]
            if role != "user" or missing:
                raise Invalid(
                    f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing or previous_tool_uses)}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message."
                )
        unexpected = [r for r in results if r not in previous_tool_uses]
        if unexpected:
            raise Invalid(
                f"{path}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: {unexpected[0]}. Each "
                "`tool_result` block must have a corresponding `tool_use` block in the previous message."
            )
        if results:
            seen_other = False
            for block in blocks:
                if block.get("type") != "tool_result":
                    seen_other = True
                elif seen_other:
                    raise Invalid(
                        f"{path}.content: tool_result blocks must come first in the content array, before any text"
                    )
        previous_tool_uses = [b["id"] for b in blocks if b.get("type") == "tool_use"] if role == "assistant" else []
    if previous_tool_uses:
        raise Invalid(
            f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(previous_tool_uses)}."
        )


def _check_thinking_tool_loop(messages: list[dict]) -> None:
    """With thinking on, the last assistant message of a tool loop must start with its thinking block."""
    for k in range(len(messages) - 1, -1, -1):
        message = messages[k]
        if message["role"] != "assistant":
            continue
        content = message["content"] if isinstance(message["content"], list) else []
        if k + 1 < len(messages) and any(b.get("type") == "tool_use" for b in content):
            first = content[0].get("type")
            if first not in ("thinking", "redacted_thinking"):
                raise Invalid(
                    f"messages.{k}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. "
                    "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
                    "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
                    "thinking blocks from previous turns."
                )
        return


def _number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"{name}: Input should be a valid number")
    if value < low:
        raise Invalid(f"{name}: Input should be greater than or equal to {low}")
    if value > high:
        raise Invalid(f"{name}: Input should be less than or equal to {high}")
    return value


def validate(body: Any, models: dict[str, int]) -> None:
    """Raise Invalid as the API would for this body."""
    if not isinstance(body, dict):
        raise Invalid("There was an error parsing the body of your request")
    for name in body:
        if name not in REQUEST_FIELDS:
            raise Invalid(f"{name}: Extra inputs are not permitted")
    for name in ("model", "messages", "max_tokens"):
        if name not in body:
            raise Invalid(f"{name}: Field required")
    model = body["model"]
    if model not in models:
        raise Invalid(f"model: {model}", status=404, etype="not_found_error")
    max_tokens = body["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise Invalid("max_tokens: Input should be a valid integer greater than or equal to 1")
    if max_tokens > models[model]:
        raise Invalid(
            f"max_tokens: {max_tokens} > {models[model]}, which is the maximum allowed number of output tokens for {model}"
        )
    system = body.get("system")
    if system is not None:
        if isinstance(system, list):
            for k, block in enumerate(system):
                if not isinstance(block, dict) or block.get("type") != "text":
                    raise Invalid(f"system.{k}.type: Input should be 'text'")
                _check_text(block, f"system.{k}")
        elif not isinstance(system, str):
            raise Invalid("system: Input should be a valid string")
    _check_messages(body["messages"])
    temperature = _number(body, "temperature", 0, 1)
    top_p = _number(body, "top_p", 0, 1)
    if temperature is not None and top_p is not None:
        raise Invalid("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise Invalid("stop_sequences: Input should be a valid list of strings")
    metadata = body.get("metadata")
    if metadata is not None:
        for key in metadata:
            if key != "user_id":
                raise Invalid(f"metadata.{key}: Extra inputs are not permitted")
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            raise Invalid("tools: Input should be a valid list")
        for k, tool in enumerate(tools):
            for extra in tool:
                if extra not in ("name", "description", "input_schema", "strict", "cache_control", "type"):
                    raise Invalid(f"tools.{k}.custom.{extra}: Extra inputs are not permitted")
            if tool.get("type") not in (None, "custom"):
                raise Invalid(
                    f"tools.{k}: Input tag '{tool.get('type')}' found using 'type' does not match any of the expected tags"
                )
            if "input_schema" not in tool:
                raise Invalid(f"tools.{k}.custom.input_schema: Field required")
            if not _TOOL_NAME.match(str(tool.get("name", ""))):
                raise Invalid(f"tools.{k}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            if (tool["input_schema"] or {}).get("type") != "object":
                raise Invalid(f"tools.{k}.custom.input_schema.type: Input should be 'object'")
            names.append(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict):
            raise Invalid("tool_choice: Input should be a valid dictionary or object to extract fields from")
        kind = choice.get("type")
        if kind not in ("auto", "any", "tool", "none"):
            raise Invalid(
                f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
            )
        if kind == "tool" and choice.get("name") not in names:
            raise Invalid(f"tool_choice.tool.name: tool '{choice.get('name')}' is not defined in `tools`")
        if kind == "none" and "disable_parallel_tool_use" in choice:
            raise Invalid("tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted")
    thinking = body.get("thinking")
    if thinking is not None:
        if thinking.get("type") == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                raise Invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if max_tokens <= budget:
                raise Invalid(
                    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
                    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
                )
            if temperature is not None and temperature != 1:
                raise Invalid("`temperature` may only be set to 1 when thinking is enabled.")
            if body.get("top_k") is not None:
                raise Invalid("`top_k` must be unset when thinking is enabled.")
            if top_p is not None and top_p < 0.95:
                raise Invalid("`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled.")
            if choice is not None and choice.get("type") in ("any", "tool"):
                raise Invalid("Thinking may not be enabled when tool_choice forces tool use.")
            _check_thinking_tool_loop(body["messages"])
        elif thinking.get("type") != "disabled":
            raise Invalid(
                f"thinking: Input tag '{thinking.get('type')}' found using 'type' does not match any of the expected tags: 'enabled', 'disabled'"
            )
    output_config = body.get("output_config")
    if output_config is not None:
        fmt = output_config.get("format")
        if fmt is not None and (fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict)):
            raise Invalid("output_config.format: expected {'type': 'json_schema', 'schema': {...}}")
    if body.get("service_tier") not in (None, "auto", "standard_only"):
        raise Invalid("service_tier: Input should be 'auto' or 'standard_only'")


# ----------------------------------------------------------------------------------------------------
# answers


def _tokens(text: str) -> int:
    return max(1, -(-len(text) // 4)) if text else 0


def _request_chars(body: dict) -> int:
    return len(orjson.dumps({k: body.get(k) for k in ("system", "messages", "tools")}))


@dataclass(slots=True)
class Answer:
    """One generated answer: content blocks, stop reason and usage (before serialization)."""

    id: str
    model: str
    blocks: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    usage: dict[str, Any]

    def message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.blocks,
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "usage": self.usage,
        }


def answer_for(body: dict, scenario: Scenario) -> Answer:
    stop_sequences = body.get("stop_sequences") or []
    text = scenario.text if scenario.text is not None else DEFAULT_TEXT
    stop_reason, stop_sequence = "end_turn", None
    hits = [(text.find(s), s) for s in stop_sequences if s and s in text]
    if hits:
        at, stop_sequence = min(hits)
        text, stop_reason = text[:at], "stop_sequence"
    blocks: list[dict[str, Any]] = []
    output_chars = 0
    if (body.get("thinking") or {}).get("type") == "enabled":
        thought = scenario.thinking or DEFAULT_THINKING
        blocks.append({"type": "thinking", "thinking": thought, "signature": sign(thought)})
        output_chars += len(thought)
    calls = scenario.tool_calls
    choice = body.get("tool_choice") or {}
    if calls is None and choice.get("type") in ("any", "tool") and body.get("tools"):
        tool = next((t for t in body["tools"] if t["name"] == choice.get("name")), body["tools"][0])
        required = (tool.get("input_schema") or {}).get("required") or []
        calls = [(tool["name"], {name: "A-17" for name in required})]
    if text:
        blocks.append({"type": "text", "text": text})
        output_chars += len(text)
    if calls and stop_reason != "stop_sequence":
        if choice.get("disable_parallel_tool_use"):
            calls = calls[:1]
        for k, (name, arguments) in enumerate(calls):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_01Mock{k}{time.time_ns() % 10**8:08d}",
                    "name": name,
                    "input": arguments,
                }
            )
            output_chars += len(orjson.dumps(arguments)) + len(name)
        stop_reason = "tool_use"
    output = _tokens("x" * output_chars)
    if output > body["max_tokens"]:
        output, stop_reason, stop_sequence = body["max_tokens"], "max_tokens", None
    usage = {
        "input_tokens": max(1, _request_chars(body) // 4),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output,
    }
    usage.update(scenario.usage or {})
    usage["cache_creation"] = {
        "ephemeral_5m_input_tokens": usage["cache_creation_input_tokens"],
        "ephemeral_1h_input_tokens": 0,
    }
    usage["service_tier"] = "standard"
    return Answer(f"msg_01Mock{time.time_ns():x}", body["model"], blocks, stop_reason, stop_sequence, usage)


def sse_event(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def stream_events(answer: Answer, scenario: Scenario) -> list[dict[str, Any]]:
    """The real event sequence for an answer (the streaming page's examples, event by event)."""
    usage = answer.usage
    start_usage = {**usage, "output_tokens": min(1, usage["output_tokens"])}
    start = {**answer.message(), "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(answer.blocks):
        kind = block["type"]
        if kind == "text":
            events.append(
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            )
            text, size = block["text"], max(1, scenario.text_chunk_chars)
            for at in range(0, len(text), size):
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": text[at : at + size]},
                    }
                )
        elif kind == "thinking":
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                }
            )
            text, size = block["thinking"], max(1, scenario.text_chunk_chars)
            for at in range(0, len(text), size):
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "thinking_delta", "thinking": text[at : at + size]},
                    }
                )
            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "signature_delta", "signature": block["signature"]},
                }
            )
        elif kind == "tool_use":
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}},
                }
            )
            arguments, size = orjson.dumps(block["input"]).decode(), max(1, scenario.arg_chunk_chars)
            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": ""},
                }
            )
            for at in range(0, len(arguments), size):
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": arguments[at : at + size]},
                    }
                )
        events.append({"type": "content_block_stop", "index": index})
    delta_usage = {
        k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    }
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": answer.stop_reason, "stop_sequence": answer.stop_sequence},
            "usage": delta_usage,
        }
    )
    events.append({"type": "message_stop"})
    return events


# ----------------------------------------------------------------------------------------------------
# the server


class MockAnthropic(ThreadedServer):
    """See the module docstring. Thread-safe to script and inspect from the test's thread."""

    thread_name = "mock-anthropic"

    def __init__(
        self, *, api_keys: tuple[str, ...] = (DEFAULT_ANTHROPIC_KEY,), models: dict[str, int] | None = None
    ) -> None:
        super().__init__()
        self.api_key = api_keys[0]
        self.api_keys = set(api_keys)
        self._default_models = dict(models or DEFAULT_MODELS)
        self.models = dict(self._default_models)
        self.requests: list[RecordedRequest] = []
        self.open_streams = 0
        self._lock = threading.Lock()
        self._scripts: Scripts[Scenario] = Scripts(Scenario)

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_route("*", "/{tail:.*}", self._unknown_path)
        return app

    # -- scripting -------------------------------------------------------------------------------

    def script(self, scenario: Scenario, *, model: str | None = None, times: int | None = 1) -> None:
        """Queue `scenario` for the next `times` requests (None: until reset), to `model` only when given."""
        self._scripts.add(scenario, model, times)

    def always(self, scenario: Scenario, *, model: str | None = None) -> None:
        self.script(scenario, model=model, times=None)

    def reset(self) -> None:
        self._scripts.clear()
        with self._lock:
            self.requests.clear()
            self.models = dict(self._default_models)

    def _next_scenario(self, model: str | None) -> Scenario:
        return self._scripts.next(model)

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.model == model]

    # -- handlers --------------------------------------------------------------------------------

    async def _unknown_path(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return _json(404, error_body("not_found_error", "Not Found"))

    async def _record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        model = parsed.get("model") if isinstance(parsed, dict) and isinstance(parsed.get("model"), str) else None
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=raw,
            json=parsed,
            model=model,
            at=time.time(),
        )
        with self._lock:
            self.requests.append(rec)
        return rec

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        headers = {"request-id": _request_id(), "anthropic-organization-id": "4e8b1f0a-mock"}
        key = request.headers.get("x-api-key")
        if not key:
            return _json(401, error_body("authentication_error", "x-api-key header is required"), headers)
        if key not in self.api_keys:
            return _json(401, error_body("authentication_error", "invalid x-api-key"), headers)
        if "anthropic-version" not in request.headers:
            return _json(400, error_body("invalid_request_error", "anthropic-version: header is required"), headers)
        scenario = self._next_scenario(rec.model)
        if scenario.delay:
            await asyncio.sleep(scenario.delay)
        if scenario.status != 200:
            etype, message = ERROR_TYPES.get(scenario.status, ("api_error", "Internal server error"))
            body = (
                scenario.body
                if scenario.body is not None
                else error_body(scenario.error_type or etype, scenario.message or message)
            )
            extra = {"retry-after": str(scenario.retry_after)} if scenario.retry_after is not None else {}
            return _json(scenario.status, body, {**headers, **extra, **scenario.headers})
        body = rec.json
        if rec.json is None:
            return _json(
                400, error_body("invalid_request_error", "There was an error parsing the body of your request"), headers
            )
        with self._lock:
            models = dict(self.models)
        try:
            validate(body, models)
        except Invalid as err:
            return _json(err.status, error_body(err.etype, err.message), headers)
        answer = answer_for(body, scenario)
        headers |= _ratelimit_headers()
        headers |= scenario.headers
        if not body.get("stream"):
            return _json(200, scenario.body if scenario.body is not None else answer.message(), headers)
        with self._lock:
            self.open_streams += 1
        try:
            return await self._stream(request, scenario, answer, headers)
        finally:
            with self._lock:
                self.open_streams -= 1

    async def _stream(
        self, request: web.Request, scenario: Scenario, answer: Answer, headers: dict[str, str]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200,
            headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", **headers},
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for sent, event in enumerate(stream_events(answer, scenario)):
                if scenario.break_after is not None and sent >= scenario.break_after:
                    resp.force_close()
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                if scenario.error_after is not None and sent >= scenario.error_after:
                    error = scenario.error_event or {"type": "overloaded_error", "message": "Overloaded"}
                    await resp.write(sse_event({"type": "error", "error": error}))
                    await resp.write_eof()
                    return resp
                if scenario.chunk_delay:
                    await asyncio.sleep(scenario.chunk_delay)
                await resp.write(sse_event(event))
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp


def _ratelimit_headers() -> dict[str, str]:
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    return {
        "anthropic-ratelimit-requests-limit": "4000",
        "anthropic-ratelimit-requests-remaining": "3999",
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-input-tokens-limit": "2000000",
        "anthropic-ratelimit-input-tokens-remaining": "1999000",
        "anthropic-ratelimit-input-tokens-reset": reset,
        "anthropic-ratelimit-output-tokens-limit": "400000",
        "anthropic-ratelimit-output-tokens-remaining": "399000",
        "anthropic-ratelimit-output-tokens-reset": reset,
    }


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    if isinstance(body, bytes | str):
        data = body.encode() if isinstance(body, str) else body
        return web.Response(status=status, body=data, headers={"content-type": "text/html", **(headers or {})})
    return web.Response(
        status=status, body=orjson.dumps(body), headers={"content-type": "application/json", **(headers or {})}
    )


# ----------------------------------------------------------------------------------------------------
# the fixture

_shared: MockAnthropic | None = None
_shared_lock = threading.Lock()


def shared_mock_anthropic() -> MockAnthropic:
    global _shared
    with _shared_lock:
        if _shared is None:
            import atexit

            _shared = MockAnthropic().start()
            atexit.register(_shared.stop)
        return _shared


@pytest.fixture
def anthropic_upstream() -> Iterator[MockAnthropic]:
    """The mock Anthropic API, started once per process and reset around every test."""
    mock = shared_mock_anthropic()
    mock.reset()
    yield mock
    mock.reset()
