"""A real HTTP server that behaves like the Responses API (OpenAI `POST /v1/responses`, Azure OpenAI v1
`POST /openai/v1/responses`), for tests. A deployment served here is Responses-only: chat completions paths
answer 404, as a resource without that operation does.

aiohttp on 127.0.0.1 (a free port) in a background thread, like tests/mocks/upstream.py. Written from OpenAI's
Responses API reference (create, streaming events, function calling, reasoning), openai-python's generated
types, and published observations of the live endpoint's validation. It answers like the service does:

- auth: Azure `api-key` (or Bearer) / OpenAI `Authorization: Bearer`, with each one's real 401 body;
- it rejects what the service rejects, with OpenAI's error shape: chat-only fields (`messages` → "moved to
  'input'", `response_format` → 'text.format', `reasoning_effort` → 'reasoning.effort',
  `max_completion_tokens` → 'max_output_tokens'; `max_tokens`, `stop`, `n`, `seed`, `logprobs`,
  `stream_options.include_usage` → `unknown_parameter`), chat-shaped input parts (`text`, `image_url`),
  chat-shaped tools (`{"type":"function","function":{...}}`) and tool choice, `max_output_tokens` below 16,
  `temperature`/`top_p` and penalties on reasoning deployments, `reasoning` on other deployments, unknown
  efforts/summaries, a `function_call_output` whose `call_id` no `function_call` in the input carries, strict
  tool schemas that are not strict-compatible under `strict: true`, json_object
  without the word "json" in the input, `previous_response_id` (nothing is stored), unknown deployments (404);
- it answers with the `response` object (reasoning item, message with `output_text`, `function_call` items,
  `status`/`incomplete_details`, usage with cached and reasoning details) and streams the real event sequence
  (`response.created`, `response.in_progress`, `response.output_item.added`, `response.reasoning_summary_*`,
  `response.content_part.added`, `response.output_text.delta`/`.done`, `response.function_call_arguments.*`,
  `response.output_item.done`, `response.completed`/`response.incomplete`), each with its `sequence_number`,
  and no `[DONE]`;
- scripted failures: any status with the flavor's error body, `retry-after`, delays, a stream cut after N
  events, an `error` event or a `response.failed` event after N events. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import pytest
from aiohttp import web

from gateway.simulator import ProviderError, error_for, not_found, openai_error, unauthorized
from tests.mocks._server import Scripts, ThreadedServer

Flavor = Literal["azure", "openai"]
DEFAULT_AZURE_KEY = "azure-responses-key-0123456789abcdef"
DEFAULT_OPENAI_KEY = "sk-test-responses-key-0123456789"
DEFAULT_TEXT = "Codex Mini answers through the Responses API: concise, practical, streamed."
DEFAULT_SUMMARY = "**Planning the answer** The user wants a short answer; three practical points will do."

# Top-level keys of ResponseCreateParams the service knows (openai-python; measured key set).
REQUEST_FIELDS = frozenset(
    (
        "model input instructions max_output_tokens max_tool_calls temperature top_p top_logprobs stream "
        "stream_options text tools tool_choice parallel_tool_calls reasoning include store background "
        "previous_response_id conversation truncation metadata user safety_identifier prompt_cache_key "
        "prompt_cache_retention prompt_cache_options service_tier prompt context_management moderation "
        "presence_penalty frequency_penalty"
    ).split()
)
MOVED = {
    "messages": "input",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
    "max_completion_tokens": "max_output_tokens",
}
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
SUMMARIES = ("concise", "detailed", "auto")
USER_PARTS = ("input_text", "input_image", "input_file")
ASSISTANT_PARTS = ("output_text", "refusal")
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning")
_EFFORT_TOKENS = {"none": 0, "minimal": 16, "low": 64, "medium": 192, "high": 512, "xhigh": 1024, "max": 2048}


class Invalid(Exception):
    def __init__(self, message: str, param: str | None, code: str | None, status: int = 400) -> None:
        super().__init__(message)
        self.error = openai_error(status, message, param=param, code=code)


@dataclass(slots=True)
class Deployment:
    name: str
    reasoning: bool = True
    efforts: tuple[str, ...] = ("low", "medium", "high")
    supports_priority: bool = False


DEFAULT_DEPLOYMENTS = (
    Deployment("codex-mini"),
    Deployment("codex-mini-eu"),
    Deployment("gpt-4.1-mini", reasoning=False, efforts=()),
)


@dataclass(slots=True)
class Scenario:
    """How the mock answers one request; the default is the service's normal answer.

    status/body/code/retry_after: a non-200 status answers the flavor's error body (`body` replaces it).
    delay: before the response headers. chunk_delay: before each stream event.
    break_after: stream: the connection is aborted after N events (no terminal event, incomplete body).
    error_after: stream: after N events an `error` event (`error_event` or a server_error), then the end.
    fail_after: stream: after N events `response.failed` (its `response.error` a server_error), then the end.
    text / tool_calls [(name, arguments dict)] / summary: answer overrides (the summary shows only when the
    request asks `reasoning.summary`). usage: values merged into the computed usage (e.g. cached tokens as
    `{"input_tokens_details": {"cached_tokens": 1024}}`). text_chunk_chars / arg_chunk_chars: delta sizes.
    """

    status: int = 200
    body: Any = None
    code: str | None = None
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0
    break_after: int | None = None
    error_after: int | None = None
    error_event: dict[str, Any] | None = None
    fail_after: int | None = None
    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] | None = None
    summary: str | None = None
    usage: dict[str, Any] | None = None
    text_chunk_chars: int = 10
    arg_chunk_chars: int = 7


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    json: Any
    flavor: Flavor | None
    deployment: str | None
    at: float


# ----------------------------------------------------------------------------------------------------
# validation, as the service does it


def _describe(value: Any) -> str:
    if value is None:
        return "an object"  # the service calls a null "an object" in type errors
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _type_error(path: str, expected: str, value: Any) -> Invalid:
    return Invalid(
        f"Invalid type for '{path}': expected {expected}, but got {_describe(value)} instead.", path, "invalid_type"
    )


def _missing(path: str) -> Invalid:
    return Invalid(f"Missing required parameter: '{path}'.", path, "missing_required_parameter")


def _unknown(path: str, known: frozenset[str] | tuple[str, ...] = (), present: Any = ()) -> Invalid:
    name = path.rsplit(".", 1)[-1]
    hint = [k for k in known if k not in present and _distance(name, k) <= 2]
    suffix = f" Did you mean '{sorted(hint, key=lambda k: (_distance(name, k), k))[0]}'?" if hint else ""
    return Invalid(f"Unknown parameter: '{path}'.{suffix}", path, "unknown_parameter")


def _invalid_value(path: str, value: Any, supported: tuple[str, ...]) -> Invalid:
    quoted = [f"'{v}'" for v in supported]
    listed = " and ".join(quoted) if len(quoted) <= 2 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]
    return Invalid(f"Invalid value: '{value}'. Supported values are: {listed}.", path, "invalid_value")


def _distance(a: str, b: str) -> int:
    if abs(len(a) - len(b)) > 2:
        return 3
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _check_members(obj: dict, path: str, known: tuple[str, ...]) -> None:
    for key in obj:
        if key not in known:
            raise _unknown(f"{path}.{key}")


def _check_content(content: Any, path: str, role: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _type_error(path, "one of a string or array of input content", content)
    allowed = ASSISTANT_PARTS if role == "assistant" else USER_PARTS
    for k, part in enumerate(content):
        ppath = f"{path}[{k}]"
        if not isinstance(part, dict):
            raise _type_error(ppath, "an object", part)
        kind = part.get("type")
        if kind not in USER_PARTS + ASSISTANT_PARTS:
            raise _invalid_value(f"{ppath}.type", kind if isinstance(kind, str) else "", USER_PARTS + ASSISTANT_PARTS)
        if kind not in allowed:
            raise _invalid_value(ppath, kind, allowed)
        if kind in ("input_text", "output_text"):
            if not isinstance(part.get("text"), str):
                raise (
                    _missing(f"{ppath}.text") if "text" not in part else _type_error(f"{ppath}.text", "a string", None)
                )
            known = ("type", "text", "annotations", "logprobs") if kind == "output_text" else ("type", "text")
            _check_members(part, ppath, known)
        elif kind == "input_image":
            _check_members(part, ppath, ("type", "image_url", "file_id", "detail"))
            if not part.get("image_url") and not part.get("file_id"):
                raise Invalid(
                    f"Invalid '{ppath}': one of 'image_url' or 'file_id' must be provided.", ppath, "invalid_value"
                )
            url = part.get("image_url")
            if url is not None and not str(url).startswith(("data:image/", "https://", "http://")):
                raise Invalid(
                    f"Invalid '{ppath}.image_url'. Expected a valid URL, but got a value with an invalid format.",
                    f"{ppath}.image_url",
                    "invalid_value",
                )
            if part.get("detail") not in (None, "low", "high", "auto", "original"):
                raise _invalid_value(f"{ppath}.detail", part["detail"], ("low", "high", "auto", "original"))
        elif kind == "input_file":
            _check_members(part, ppath, ("type", "file_data", "file_id", "file_url", "filename", "detail"))
            if not (part.get("file_data") or part.get("file_id") or part.get("file_url")):
                raise Invalid(
                    f"Invalid '{ppath}': one of 'file_data', 'file_id' or 'file_url' must be provided.",
                    ppath,
                    "invalid_value",
                )
            if part.get("file_data") and not part.get("filename"):
                raise _missing(f"{ppath}.filename")
        elif kind == "refusal":
            _check_members(part, ppath, ("type", "refusal"))


def _check_input(value: Any) -> list[dict]:
    if isinstance(value, str):
        if not value:
            raise Invalid(
                "One of \"input\" or \"previous_response_id\" or 'prompt' or 'conversation' must be provided.",
                None,
                "missing_required_parameter",
            )
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise _type_error("input", "one of a string or array of input items", value)
    if not value:
        raise Invalid(
            "One of \"input\" or \"previous_response_id\" or 'prompt' or 'conversation' must be provided.",
            None,
            "missing_required_parameter",
        )
    call_ids: set[str] = set()
    for i, item in enumerate(value):
        path = f"input[{i}]"
        if not isinstance(item, dict):
            raise _type_error(path, "an input item", item)
        kind = item.get("type", "message" if "role" in item else None)
        if kind not in ITEM_TYPES:
            raise _invalid_value(path, kind if isinstance(kind, str) else "", ITEM_TYPES)
        if kind == "message":
            _check_members(item, path, ("type", "role", "content", "id", "status", "phase"))
            role = item.get("role")
            if role not in ("assistant", "system", "developer", "user"):
                raise _invalid_value(
                    path, role if isinstance(role, str) else "", ("assistant", "system", "developer", "user")
                )
            if "content" not in item:
                raise _missing(f"{path}.content")
            _check_content(item["content"], f"{path}.content", role)
        elif kind == "function_call":
            _check_members(item, path, ("type", "call_id", "name", "arguments", "id", "status"))
            for key in ("call_id", "name", "arguments"):
                if not isinstance(item.get(key), str):
                    raise (
                        _missing(f"{path}.{key}")
                        if key not in item
                        else _type_error(f"{path}.{key}", "a string", item[key])
                    )
            call_ids.add(item["call_id"])
        elif kind == "function_call_output":
            _check_members(item, path, ("type", "call_id", "output", "id", "status"))
            for key in ("call_id", "output"):
                if key not in item:
                    raise _missing(f"{path}.{key}")
            if item["call_id"] not in call_ids:
                raise Invalid(
                    f"No tool call found for function call output with call_id {item['call_id']}.", "input", None
                )
        elif kind == "reasoning":
            _check_members(item, path, ("type", "id", "summary", "content", "encrypted_content", "status"))
    return value


def _strict_compatible(schema: Any) -> str | None:
    """Why a JSON schema cannot be used with strict function calling (None: it can)."""
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object":
        if schema.get("additionalProperties") is not False:
            return "'additionalProperties' is required to be supplied and to be false."
        props = schema.get("properties") or {}
        missing = [k for k in props if k not in (schema.get("required") or [])]
        if missing:
            return (
                "'required' is required to be supplied and to be an array including every key in properties. "
                f"Missing '{missing[0]}'."
            )
        for sub in props.values():
            why = _strict_compatible(sub)
            if why:
                return why
    if isinstance(schema.get("items"), dict):
        return _strict_compatible(schema["items"])
    return None


def _check_tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise _type_error("tools", "an array", tools)
    for k, tool in enumerate(tools):
        path = f"tools[{k}]"
        if not isinstance(tool, dict):
            raise _type_error(path, "an object", tool)
        if "type" not in tool:
            raise _missing(f"{path}.type")
        if tool["type"] != "function":
            continue  # hosted tools: not exercised here
        if "name" not in tool:
            raise _missing(f"{path}.name")
        _check_members(tool, path, ("type", "name", "description", "parameters", "strict"))
        # Omitted, the service normalizes a schema into strict mode when it can and falls back to best effort
        # when it cannot (OpenAI's function-calling guide); only an explicit true refuses an incompatible one.
        if tool.get("strict") is True:
            why = _strict_compatible(tool.get("parameters"))
            if why:
                raise Invalid(
                    f"Invalid schema for function '{tool['name']}': In context=(), {why}",
                    f"{path}.parameters",
                    "invalid_function_parameters",
                )


def _check_tool_choice(choice: Any, tools: list) -> None:
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise _invalid_value("tool_choice", choice, ("none", "auto", "required"))
        return
    if not isinstance(choice, dict):
        raise _type_error("tool_choice", "one of an object or 'none', 'auto', or 'required'", choice)
    if choice.get("type") == "function":
        _check_members(choice, "tool_choice", ("type", "name"))
        if "name" not in choice:
            raise _missing("tool_choice.name")
        if choice["name"] not in [t.get("name") for t in tools]:
            raise Invalid(
                f"Tool choice '{choice['name']}' not found in 'tools' parameter.", "tool_choice", "invalid_value"
            )


def _text_of_input(items: list[dict], instructions: Any) -> str:
    parts = [instructions if isinstance(instructions, str) else ""]
    for item in items:
        content = item.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text") or "" for p in content if isinstance(p, dict))
        for key in ("arguments", "output"):
            if isinstance(item.get(key), str):
                parts.append(item[key])
    return "\n".join(parts)


def validate(body: Any, dep: Deployment) -> list[dict]:
    """Raise Invalid for what the service refuses; return the input as items."""
    if not isinstance(body, dict):
        raise Invalid("We could not parse the JSON body of your request.", None, None)
    for key in body:
        if key in MOVED:
            param = None if key == "messages" else key
            raise Invalid(
                f"Unsupported parameter: '{key}'. In the Responses API, this parameter has moved to '{MOVED[key]}'. "
                "Try again with the new parameter. See the API documentation for more information: "
                "https://platform.openai.com/docs/api-reference/responses/create.",
                param,
                "unsupported_parameter",
            )
        if key not in REQUEST_FIELDS:
            raise _unknown(key, REQUEST_FIELDS, body)
    body = {k: v for k, v in body.items() if v is not None}  # null means "not sent", except for model
    if "input" not in body:
        raise _missing("input")
    items = _check_input(body["input"])
    if "tools" in body:
        _check_tools(body["tools"])
    if "tool_choice" in body:
        _check_tool_choice(body["tool_choice"], body.get("tools") or [])
    text = body.get("text")
    if text is not None:
        if not isinstance(text, dict):
            raise _type_error("text", "an object", text)
        _check_members(text, "text", ("format", "verbosity"))
        fmt = text.get("format")
        if fmt is not None:
            kind = fmt.get("type") if isinstance(fmt, dict) else None
            if kind not in ("json_object", "text", "json_schema"):
                raise _invalid_value("text.format.type", kind, ("json_object", "text", "json_schema"))
            if kind == "json_schema":
                _check_members(fmt, "text.format", ("type", "name", "schema", "description", "strict"))
                for key in ("name", "schema"):
                    if key not in fmt:
                        raise _missing(f"text.format.{key}")
            else:
                _check_members(fmt, "text.format", ("type",))
            if kind == "json_object" and "json" not in _text_of_input(items, body.get("instructions")).lower():
                raise Invalid(
                    "Response input messages must contain the word 'json' in some form to use 'text.format' of type "
                    "'json_object'.",
                    "input",
                    None,
                )
        if text.get("verbosity") not in (None, "low", "medium", "high"):
            raise _invalid_value("text.verbosity", text["verbosity"], ("low", "medium", "high"))
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        if name in body:
            if not isinstance(body[name], int | float) or isinstance(body[name], bool):
                raise _type_error(name, "a decimal", body[name])
            if dep.reasoning:
                raise Invalid(f"Unsupported parameter: '{name}' is not supported with this model.", name, None)
    for name in ("stream", "store", "background", "parallel_tool_calls"):
        if name in body and not isinstance(body[name], bool):
            raise _type_error(name, "a boolean", body[name])
    if "stream_options" in body:
        options = body["stream_options"]
        if not isinstance(options, dict):
            raise _type_error("stream_options", "an object", options)
        _check_members(options, "stream_options", ("include_obfuscation",))
    if "max_output_tokens" in body:
        value = body["max_output_tokens"]
        if not isinstance(value, int) or isinstance(value, bool):
            raise _type_error("max_output_tokens", "an integer", value)
        if value < 16:
            raise Invalid(
                f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {value} "
                "instead.",
                "max_output_tokens",
                "integer_below_min_value",
            )
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise _type_error("reasoning", "an object", reasoning)
        _check_members(reasoning, "reasoning", ("effort", "summary"))
        effort = reasoning.get("effort")
        if effort is not None:
            if effort not in EFFORTS:
                raise _invalid_value("reasoning.effort", effort, EFFORTS)
            if not dep.reasoning:
                raise Invalid(
                    "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
                    "reasoning.effort",
                    "unsupported_parameter",
                )
            if effort not in dep.efforts:
                raise Invalid(
                    f"Unsupported value: '{effort}' is not supported with the '{dep.name}' model. Supported values "
                    f"are: {', '.join(repr(e) for e in dep.efforts)}.",
                    "reasoning.effort",
                    "unsupported_value",
                )
        if reasoning.get("summary") not in (None, *SUMMARIES):
            raise _invalid_value("reasoning.summary", reasoning["summary"], SUMMARIES)
    if "service_tier" in body and body["service_tier"] not in ("auto", "default", "fast", "flex", "priority"):
        raise _invalid_value("service_tier", body["service_tier"], ("auto", "default", "fast", "flex", "priority"))
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > 16):
        raise _type_error("metadata", "a metadata object", metadata)
    if "previous_response_id" in body:
        rid = body["previous_response_id"]
        raise Invalid(
            f"Previous response with id '{rid}' not found.", "previous_response_id", "previous_response_not_found"
        )
    if body.get("include"):
        for k, value in enumerate(body["include"]):
            if value != "reasoning.encrypted_content":
                raise _invalid_value(f"include[{k}]", value, ("reasoning.encrypted_content",))
    return items


# ----------------------------------------------------------------------------------------------------
# answers


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _json_for(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return "ok"
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: _json_for(v) for k, v in props.items()}
    if kind == "array":
        return [_json_for(schema.get("items"))]
    if kind in ("integer", "number"):
        return 3
    if kind == "boolean":
        return True
    if schema.get("enum"):
        return schema["enum"][0]
    return "ok"


@dataclass(slots=True)
class Answer:
    response: dict[str, Any]  # the finished `response` object
    summary_chunks: list[str]
    text_chunks: list[str]
    arg_chunks: list[list[str]]


def answer_for(body: dict, items: list[dict], dep: Deployment, scenario: Scenario) -> Answer:
    now = int(time.time())
    rid = f"resp_{time.time_ns():x}mock"
    fmt = ((body.get("text") or {}).get("format") or {}).get("type")
    if scenario.text is not None:
        text = scenario.text
    elif fmt == "json_object":
        text = '{"answer": "ok", "points": 3}'
    elif fmt == "json_schema":
        text = orjson.dumps(_json_for(body["text"]["format"].get("schema"))).decode()
    else:
        text = DEFAULT_TEXT
    calls = scenario.tool_calls
    choice = body.get("tool_choice")
    tools = [t for t in body.get("tools") or () if t.get("type") == "function"]
    if calls is None and tools and (choice == "required" or isinstance(choice, dict)):
        tool = next((t for t in tools if isinstance(choice, dict) and t["name"] == choice.get("name")), tools[0])
        required = (tool.get("parameters") or {}).get("required") or []
        calls = [(tool["name"], {name: "A-17" for name in required})]
    if items and items[-1].get("type") == "function_call_output" and scenario.tool_calls is None:
        calls = None  # the loop is closed: answer in text
    reasoning = body.get("reasoning") or {}
    effort = reasoning.get("effort") or ("medium" if dep.reasoning else None)
    reasoning_tokens = _EFFORT_TOKENS.get(effort or "none", 0) if dep.reasoning else 0
    summary = (scenario.summary or DEFAULT_SUMMARY) if dep.reasoning and reasoning.get("summary") else ""

    limit = body.get("max_output_tokens")
    status, incomplete = "completed", None
    output: list[dict[str, Any]] = []
    if dep.reasoning:
        item: dict[str, Any] = {"id": f"rs_{time.time_ns():x}", "type": "reasoning", "summary": []}
        if summary:
            item["summary"] = [{"type": "summary_text", "text": summary}]
        output.append(item)
    room = None if limit is None else max(limit - reasoning_tokens, 0)
    if room is not None and _tokens(text) > room:
        text = text[: room * 4]
        status, incomplete, calls = "incomplete", {"reason": "max_output_tokens"}, None
        reasoning_tokens = min(reasoning_tokens, limit)
    if text or not calls:
        output.append(
            {
                "id": f"msg_{time.time_ns():x}",
                "type": "message",
                "status": "completed" if status == "completed" else "incomplete",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
            }
        )
    arg_chunks: list[list[str]] = []
    for k, (name, arguments) in enumerate(calls or ()):
        args = orjson.dumps(arguments).decode()
        output.append(
            {
                "id": f"fc_{time.time_ns():x}{k}",
                "type": "function_call",
                "status": "completed",
                "arguments": args,
                "call_id": f"call_{time.time_ns() % 10**10:010d}{k}",
                "name": name,
            }
        )
        size = max(1, scenario.arg_chunk_chars)
        arg_chunks.append([args[at : at + size] for at in range(0, len(args), size)])
    call_tokens = sum(_tokens(item["arguments"]) for item in output if item["type"] == "function_call")
    out_tokens = reasoning_tokens + _tokens(text) + call_tokens
    input_tokens = _tokens(
        orjson.dumps({"i": body.get("input"), "s": body.get("instructions"), "t": body.get("tools")}).decode()
    )
    usage: dict[str, Any] = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": out_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }
    for key, value in (scenario.usage or {}).items():
        usage[key] = {**usage[key], **value} if isinstance(value, dict) else value
    usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
    tier = body.get("service_tier")
    response = {
        "id": rid,
        "object": "response",
        "created_at": now,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": limit,
        "max_tool_calls": None,
        "model": dep.name,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": effort, "summary": reasoning.get("summary")},
        "service_tier": "priority" if tier == "priority" and dep.supports_priority else "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": choice or "auto",
        "tools": body.get("tools") or [],
        "top_logprobs": 0,
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }
    size = max(1, scenario.text_chunk_chars)
    return Answer(
        response=response,
        summary_chunks=[summary[at : at + size] for at in range(0, len(summary), size)],
        text_chunks=[text[at : at + size] for at in range(0, len(text), size)],
        arg_chunks=arg_chunks,
    )


def stream_events(answer: Answer) -> list[dict[str, Any]]:
    """The real event sequence for an answer, each with its `sequence_number`."""
    final = answer.response
    start = {**final, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
    ]
    calls = iter(answer.arg_chunks)
    for index, item in enumerate(final["output"]):
        kind, item_id = item["type"], item["id"]
        if kind == "reasoning":
            events.append(
                {"type": "response.output_item.added", "output_index": index, "item": {**item, "summary": []}}
            )
            for s, part in enumerate(item["summary"]):
                events.append(
                    {
                        "type": "response.reasoning_summary_part.added",
                        "item_id": item_id,
                        "output_index": index,
                        "summary_index": s,
                        "part": {"type": "summary_text", "text": ""},
                    }
                )
                for chunk in answer.summary_chunks:
                    events.append(
                        {
                            "type": "response.reasoning_summary_text.delta",
                            "item_id": item_id,
                            "output_index": index,
                            "summary_index": s,
                            "delta": chunk,
                        }
                    )
                events.append(
                    {
                        "type": "response.reasoning_summary_text.done",
                        "item_id": item_id,
                        "output_index": index,
                        "summary_index": s,
                        "text": part["text"],
                    }
                )
                events.append(
                    {
                        "type": "response.reasoning_summary_part.done",
                        "item_id": item_id,
                        "output_index": index,
                        "summary_index": s,
                        "part": part,
                    }
                )
        elif kind == "message":
            added = {**item, "status": "in_progress", "content": []}
            events.append({"type": "response.output_item.added", "output_index": index, "item": added})
            part = item["content"][0]
            ids = {"item_id": item_id, "output_index": index, "content_index": 0}
            events.append({"type": "response.content_part.added", **ids, "part": {**part, "text": ""}})
            for chunk in answer.text_chunks:
                events.append({"type": "response.output_text.delta", **ids, "delta": chunk, "logprobs": []})
            events.append({"type": "response.output_text.done", **ids, "text": part["text"], "logprobs": []})
            events.append({"type": "response.content_part.done", **ids, "part": part})
        elif kind == "function_call":
            added = {**item, "status": "in_progress", "arguments": ""}
            events.append({"type": "response.output_item.added", "output_index": index, "item": added})
            for chunk in next(calls):
                events.append(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": item_id,
                        "output_index": index,
                        "delta": chunk,
                    }
                )
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item_id,
                    "output_index": index,
                    "arguments": item["arguments"],
                }
            )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    terminal = "response.completed" if final["status"] == "completed" else "response.incomplete"
    events.append({"type": terminal, "response": final})
    for n, event in enumerate(events):
        event["sequence_number"] = n
    return events


def sse_event(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


# ----------------------------------------------------------------------------------------------------
# the server


class MockResponses(ThreadedServer):
    """See the module docstring. Thread-safe to script and inspect from the test's thread."""

    thread_name = "mock-responses"

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
        self.deployments = {d.name: d for d in deployments}
        self.requests: list[RecordedRequest] = []
        self.open_streams = 0
        self._lock = threading.Lock()
        self._scripts: Scripts[Scenario] = Scripts(Scenario)

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/openai/v1/responses", self._azure)
        app.router.add_post("/v1/responses", self._openai)
        app.router.add_route("*", "/{tail:.*}", self._unknown_path)
        return app

    # -- scripting -------------------------------------------------------------------------------

    def script(self, scenario: Scenario, *, deployment: str | None = None, times: int | None = 1) -> None:
        self._scripts.add(scenario, deployment, times)

    def always(self, scenario: Scenario, *, deployment: str | None = None) -> None:
        self.script(scenario, deployment=deployment, times=None)

    def reset(self) -> None:
        self._scripts.clear()
        with self._lock:
            self.requests.clear()
            self.deployments = {d.name: d for d in self._default_deployments}

    def _next_scenario(self, deployment: str | None) -> Scenario:
        return self._scripts.next(deployment)

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    def requests_for(self, deployment: str) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.deployment == deployment]

    # -- handlers --------------------------------------------------------------------------------

    async def _azure(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "azure")

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "openai")

    async def _unknown_path(self, request: web.Request) -> web.StreamResponse:
        await self._record(request, None)
        return _json(404, {"error": {"code": "404", "message": "Resource not found"}})

    async def _record(self, request: web.Request, flavor: Flavor | None) -> RecordedRequest:
        raw = await request.read()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        model = parsed.get("model") if isinstance(parsed, dict) and isinstance(parsed.get("model"), str) else None
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=raw,
            json=parsed,
            flavor=flavor,
            deployment=model,
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

    async def _handle(self, request: web.Request, flavor: Flavor) -> web.StreamResponse:
        rec = await self._record(request, flavor)
        ids = (
            {"apim-request-id": f"{time.time_ns():x}"}
            if flavor == "azure"
            else {"x-request-id": f"req_{time.time_ns():x}"}
        )
        if not self._authorized(request, flavor):
            return _error(unauthorized(flavor), ids)
        scenario = self._next_scenario(rec.deployment)
        if scenario.delay:
            await asyncio.sleep(scenario.delay)
        if scenario.status != 200:
            err = error_for(scenario.status, flavor, code=scenario.code, retry_after=scenario.retry_after)
            body = scenario.body if scenario.body is not None else _responses_wording(err.body)
            return _json(scenario.status, body, {**ids, **err.headers, **scenario.headers})
        body = rec.json
        if not isinstance(body, dict):
            return _error(openai_error(400, "We could not parse the JSON body of your request."), ids)
        if "model" not in body:
            return _error(
                openai_error(
                    400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
                ),
                ids,
            )
        with self._lock:
            dep = self.deployments.get(str(body.get("model")))
        if dep is None:
            return _error(not_found(str(body.get("model")), flavor), ids)
        try:
            items = validate(body, dep)
        except Invalid as exc:
            return _error(exc.error, ids)
        answer = answer_for({k: v for k, v in body.items() if v is not None}, items, dep, scenario)
        headers = {
            **ids,
            "x-ratelimit-remaining-requests": "99",
            "x-ratelimit-remaining-tokens": "99000",
            **scenario.headers,
        }
        if not body.get("stream"):
            return _json(200, scenario.body if scenario.body is not None else answer.response, headers)
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
        resp = web.StreamResponse(status=200, headers={"content-type": "text/event-stream; charset=utf-8", **headers})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        events = stream_events(answer)
        try:
            for sent, event in enumerate(events):
                if scenario.break_after is not None and sent >= scenario.break_after:
                    resp.force_close()
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                if scenario.error_after is not None and sent >= scenario.error_after:
                    error = scenario.error_event or {
                        "code": "server_error",
                        "message": "The server had an error while processing your request. Sorry about that!",
                        "param": None,
                    }
                    await resp.write(sse_event({"type": "error", **error, "sequence_number": sent}))
                    await resp.write_eof()
                    return resp
                if scenario.fail_after is not None and sent >= scenario.fail_after:
                    failed = {
                        **answer.response,
                        "status": "failed",
                        "output": [],
                        "error": {"code": "server_error", "message": "The model failed to generate a response."},
                    }
                    await resp.write(
                        sse_event({"type": "response.failed", "response": failed, "sequence_number": sent})
                    )
                    await resp.write_eof()
                    return resp
                if scenario.chunk_delay:
                    await asyncio.sleep(scenario.chunk_delay)
                await resp.write(sse_event(event))
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp


def _responses_wording(body: dict[str, Any]) -> dict[str, Any]:
    """Azure's 429 names the operation: Responses_Create here, not ChatCompletions_Create."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return {"error": {**err, "message": err["message"].replace("ChatCompletions_Create", "Responses_Create")}}
    return body


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    if isinstance(body, bytes | str):
        data = body.encode() if isinstance(body, str) else body
        return web.Response(status=status, body=data, headers={"content-type": "text/html", **(headers or {})})
    return web.Response(
        status=status, body=orjson.dumps(body), headers={"content-type": "application/json", **(headers or {})}
    )


def _error(err: ProviderError, ids: dict[str, str]) -> web.Response:
    return _json(err.status, err.body, {**ids, **err.headers})


# ----------------------------------------------------------------------------------------------------
# the fixture

_shared: MockResponses | None = None
_shared_lock = threading.Lock()


def shared_mock_responses() -> MockResponses:
    global _shared
    with _shared_lock:
        if _shared is None:
            import atexit

            _shared = MockResponses().start()
            atexit.register(_shared.stop)
        return _shared


@pytest.fixture
def responses_upstream() -> Iterator[MockResponses]:
    """The mock Responses API, started once per process and reset around every test."""
    mock = shared_mock_responses()
    mock.reset()
    yield mock
    mock.reset()
