"""A real HTTP server that behaves like Gemini on Vertex AI (express mode), for tests.

aiohttp on 127.0.0.1 (a free port) in a background thread with its own event loop, like
tests/mocks/upstream.py. Written from the public API reference (Vertex AI `generateContent` /
`streamGenerateContent`, google-genai's types) and strict where the real service is strict:

- `x-goog-api-key` (or `?key=`) is required: none → 401 UNAUTHENTICATED; a wrong one → 400
  INVALID_ARGUMENT with reason API_KEY_INVALID (that is what Google answers for a bad key).
- The body is a GenerateContentRequest. Any field it does not have (OpenAI's `messages`, `model`,
  `max_tokens`, `response_format`, `tools[].type`, unknown `generationConfig` fields, ...) → 400
  `Invalid JSON payload received. Unknown name "x" ...: Cannot find field.` Roles other than
  user/model, empty `parts`, empty text parts, unbalanced function call/response turns, a thinking
  budget outside the model's range (0 on 2.5 Pro) → 400 in Google's words.
- Answers: the exact non-stream GenerateContentResponse, or the SSE sequence (`data: {...}\\r\\n\\r\\n`,
  text split over chunks, thought parts when includeThoughts, functionCall parts in their own chunks,
  a running usageMetadata snapshot and the last chunk with finishReason and the full usageMetadata).
  No `[DONE]`: the stream ends with the body.
- Failures are scripted per next request or per model (Google's error bodies for the status), with
  delays, a stream cut after N events, raw events. Every request is recorded.

    from tests.mocks.vertex_upstream import VertexMock, VertexScenario

    with VertexMock() as mock:
        mock.script(VertexScenario(status=429))             # next request: 429 RESOURCE_EXHAUSTED
        mock.script(VertexScenario(tool_calls=[("f", {"a": 1})]))
        assert mock.last.headers["x-goog-api-key"] == mock.api_key
"""

from __future__ import annotations

import asyncio
import base64
import binascii
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

DEFAULT_API_KEY = "AQ.vertex-express-test-key-0123456789"
PATH = re.compile(
    r"^/(v1|v1beta1)/(?:projects/[^/]+/locations/[^/]+/)?publishers/google/models/([^/:]+):"
    r"(generateContent|streamGenerateContent)$"
)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")


@dataclass(slots=True)
class VertexModel:
    """A model the mock serves; thinking budgets as documented for Gemini 2.5."""

    name: str
    min_budget: int = 0  # 0: thinking can be disabled
    max_budget: int = 24576
    max_output: int = 65535


DEFAULT_MODELS = (
    VertexModel("gemini-2.5-flash", 0, 24576),
    VertexModel("gemini-2.5-pro", 128, 32768),
    VertexModel("gemini-2.5-flash-lite", 0, 24576),
)


@dataclass(slots=True)
class VertexScenario:
    """How the mock answers one request (the default: the model's normal answer).

    status/body/headers: a non-200 status answers Google's error body for it unless `body` is given.
    retry_delay: 429: a google.rpc.RetryInfo detail (seconds). delay: before the response headers.
    chunk_delay: before each stream event. break_after: stream: cut the connection after N events.
    text / thoughts / tool_calls [(name, args)] / call_ids (send functionCall.id) / finish_reason /
    block_reason (blocked prompt: no candidates) / cached_tokens / thoughts_tokens: answer overrides.
    usage: replaces usageMetadata. events: a fully scripted stream (dicts as `data:` events, bytes raw).
    chunk_chars: size of the streamed text pieces.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    retry_delay: float | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    break_after: int | None = None
    text: str | None = None
    thoughts: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] | None = None
    call_ids: bool = False
    finish_reason: str | None = None
    block_reason: str | None = None
    cached_tokens: int = 0
    thoughts_tokens: int | None = None
    usage: dict[str, Any] | None = None
    events: list[dict[str, Any] | bytes] | None = None
    chunk_chars: int = 8


@dataclass(slots=True)
class VertexRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    json: Any
    model: str | None
    stream: bool
    at: float


class VertexError(Exception):
    def __init__(self, status: int, gstatus: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"code": status, "message": message, "status": gstatus}}
        if details:
            self.body["error"]["details"] = details


_STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "Permission denied on resource (or it may not exist)."),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: (
        "RESOURCE_EXHAUSTED",
        "Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
    ),
    499: ("CANCELLED", "The operation was cancelled."),
    500: ("INTERNAL", "Internal error encountered."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}


def google_error(status: int, message: str | None = None, *, retry_delay: float | None = None) -> VertexError:
    gstatus, default = _STATUS.get(status, ("UNKNOWN", f"HTTP {status}"))
    details = None
    if retry_delay is not None:
        details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_delay:g}s"}]
    return VertexError(status, gstatus, message or default, details)


def _bad(message: str, field_path: str | None = None) -> VertexError:
    details = None
    if field_path is not None:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field_path, "description": message}],
            }
        ]
    return VertexError(400, "INVALID_ARGUMENT", message, details)


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _fields(*names: str) -> frozenset[str]:
    """Proto JSON accepts the lowerCamel name and the original snake_case name of every field."""
    return frozenset(names) | frozenset(_snake(n) for n in names)


TOP = _fields(
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
    "labels",
    "modelArmorConfig",
)
CONTENT = _fields("role", "parts")
PART = _fields(
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "thought",
    "thoughtSignature",
    "videoMetadata",
)
DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult")
TOOL = _fields(
    "functionDeclarations",
    "retrieval",
    "googleSearch",
    "googleSearchRetrieval",
    "codeExecution",
    "enterpriseWebSearch",
    "urlContext",
    "googleMaps",
    "computerUse",
)
DECL = _fields("name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema")
GEN = _fields(
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "presencePenalty",
    "frequencyPenalty",
    "seed",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
    "responseModalities",
    "mediaResolution",
    "speechConfig",
    "audioTimestamp",
    "routingConfig",
    "modelConfig",
    "imageConfig",
)
THINKING = _fields("thinkingBudget", "includeThoughts", "thinkingLevel")
FUNCTION_CALLING = _fields("mode", "allowedFunctionNames")
MODES = ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED")


def _get(obj: dict[str, Any], camel: str) -> Any:
    value = obj.get(camel)
    return obj.get(_snake(camel)) if value is None else value


def _unknown(obj: Any, allowed: frozenset[str], at: str | None) -> None:
    if not isinstance(obj, dict):
        where = f" at '{at}'" if at else ""
        raise _bad(f"Invalid JSON payload received. Expected an object{where}.", at)
    for key in obj:
        if key not in allowed:
            where = f" at '{at}'" if at else ""
            raise _bad(f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.', at or key)


def validate(body: Any, model: VertexModel) -> None:
    """Raise VertexError(400) for what the real service rejects."""
    if not isinstance(body, dict):
        raise _bad("Invalid JSON payload received. Expected an object.")
    _unknown(body, TOP, None)
    contents = body.get("contents")
    if not contents:
        raise _bad("* GenerateContentRequest.contents: contents is not specified\n", "contents")
    if not isinstance(contents, list):
        raise _bad("Invalid JSON payload received. Expected a list at 'contents'.", "contents")
    declared: set[str] = set()
    for t, tool in enumerate(body.get("tools") or ()):
        _unknown(tool, TOOL, f"tools[{t}]")
        for d, decl in enumerate(_get(tool, "functionDeclarations") or ()):
            at = f"tools[{t}].function_declarations[{d}]"
            _unknown(decl, DECL, at)
            name = decl.get("name")
            if not isinstance(name, str) or not NAME.match(name):
                raise _bad(
                    f"* GenerateContentRequest.{at}.name: Invalid function name. Must start with a letter or an "
                    "underscore. Must be a-z, A-Z, 0-9, or contain underscores, dots and dashes, with a maximum "
                    "length of 64.\n",
                    f"{at}.name",
                )
            if decl.get("parameters") is not None and _get(decl, "parametersJsonSchema") is not None:
                raise _bad(
                    f"* GenerateContentRequest.{at}: parameters and parameters_json_schema are mutually exclusive"
                )
            declared.add(name)
    pending_calls = 0
    for c, content in enumerate(contents):
        at = f"contents[{c}]"
        _unknown(content, CONTENT, at)
        role = content.get("role")
        if role not in ("user", "model"):
            raise _bad("Please use a valid role: user, model.", f"{at}.role")
        parts = content.get("parts")
        if not parts or not isinstance(parts, list):
            raise _bad(
                "Unable to submit request because it must include at least one parts field, which describes the "
                "prompt input. Learn more: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini",
                f"{at}.parts",
            )
        calls = responses = 0
        for p, part in enumerate(parts):
            _check_part(part, f"{at}.parts[{p}]", role)
            calls += 1 if _get(part, "functionCall") is not None else 0
            responses += 1 if _get(part, "functionResponse") is not None else 0
        if pending_calls and responses != pending_calls:
            raise _bad(
                "Please ensure that the number of function response parts is equal to the number of function call "
                "parts of the function call turn."
            )
        if responses and not pending_calls:
            raise _bad("Please ensure that function response turn comes immediately after a function call turn.", at)
        pending_calls = calls
    system = _get(body, "systemInstruction")
    if system is not None:
        _unknown(system, CONTENT, "system_instruction")
        for p, part in enumerate(system.get("parts") or ()):
            _check_part(part, f"system_instruction.parts[{p}]", "user")
    config = _get(body, "toolConfig")
    if config is not None:
        _unknown(config, _fields("functionCallingConfig", "retrievalConfig"), "tool_config")
        fcc = _get(config, "functionCallingConfig") or {}
        _unknown(fcc, FUNCTION_CALLING, "tool_config.function_calling_config")
        mode = fcc.get("mode", "AUTO")
        if mode not in MODES:
            raise _bad(
                "Invalid value at 'tool_config.function_calling_config.mode' "
                f'(type.googleapis.com/google.cloud.aiplatform.v1.FunctionCallingConfig.Mode), "{mode}"',
                "tool_config.function_calling_config.mode",
            )
        names = _get(fcc, "allowedFunctionNames")
        if names and mode != "ANY":
            raise _bad("allowed_function_names is only allowed when function calling mode is ANY.")
        for name in names or ():
            if name not in declared:
                raise _bad(f"Function name {name} in allowed_function_names is not declared in tools.")
    _check_generation_config(_get(body, "generationConfig"), model)


def _check_part(part: Any, at: str, role: str) -> None:
    _unknown(part, PART, at)
    present = [k for k in DATA if _get(part, k) is not None]
    if len(present) != 1:
        raise _bad(f"Invalid JSON payload received. A part needs exactly one data field at '{at}'.", at)
    kind = present[0]
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise _bad(f"Invalid value at '{at}.text' (TYPE_STRING)", f"{at}.text")
        if not text:
            raise _bad(
                "Unable to submit request because it has an empty text parameter. Add a value to the parameter and "
                "try again. Learn more: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini",
                f"{at}.text",
            )
    elif kind == "inlineData":
        blob = _get(part, "inlineData")
        _unknown(blob, _fields("mimeType", "data", "displayName"), f"{at}.inline_data")
        if not _get(blob, "mimeType"):
            raise _bad(f"* GenerateContentRequest.{at}.inline_data.mime_type: mime_type is not specified\n")
        try:
            base64.b64decode(str(blob.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise _bad(
                f"Invalid value at '{at}.inline_data.data' (TYPE_BYTES), Base64 decoding failed",
                f"{at}.inline_data.data",
            ) from None
    elif kind == "functionCall":
        fc = _get(part, "functionCall")
        _unknown(fc, _fields("id", "name", "args", "partialArgs", "willContinue"), f"{at}.function_call")
        signature = _get(part, "thoughtSignature")
        if signature is not None:
            try:
                base64.b64decode(str(signature), validate=True)
            except (binascii.Error, ValueError):
                raise _bad(
                    f"Invalid value at '{at}.thought_signature' (TYPE_BYTES), Base64 decoding failed",
                    f"{at}.thought_signature",
                ) from None
            if signature != sign_call(fc.get("name") or "", fc.get("args") or {}):
                raise _bad("Unable to submit request because the thought signature is not valid.", at)
        if role != "model":
            raise _bad(
                "Please ensure that function call turns come immediately after a user turn or after a function response turn."
            )
        if not fc.get("name"):
            raise _bad(f"* GenerateContentRequest.{at}.function_call.name: name is not specified\n")
        if "args" in fc and not isinstance(fc["args"], dict):
            raise _bad(f"Invalid value at '{at}.function_call.args' (type.googleapis.com/google.protobuf.Struct)")
    elif kind == "functionResponse":
        fr = _get(part, "functionResponse")
        _unknown(
            fr, _fields("id", "name", "response", "parts", "willContinue", "scheduling"), f"{at}.function_response"
        )
        if role != "user":
            raise _bad("Please ensure that function response turns come immediately after a function call turn.")
        if not fr.get("name"):
            raise _bad(f"* GenerateContentRequest.{at}.function_response.name: name is not specified\n")
        if not isinstance(fr.get("response"), dict):
            raise _bad(
                f"Invalid value at '{at}.function_response.response' (type.googleapis.com/google.protobuf.Struct)"
            )


def _check_generation_config(config: Any, model: VertexModel) -> None:
    if config is None:
        return
    _unknown(config, GEN, "generation_config")
    temperature = config.get("temperature")
    if temperature is not None and not 0 <= temperature <= 2:
        raise _bad(
            f"Unable to submit request because it has a temperature value of {temperature} but the supported range "
            "is from 0 (inclusive) to 2.0001 (exclusive). Update the value and try again."
        )
    top_p = _get(config, "topP")
    if top_p is not None and not 0 <= top_p <= 1:
        raise _bad(
            f"Unable to submit request because it has a topP value of {top_p} but the supported range is from 0 "
            "(exclusive) to 1.0001 (exclusive). Update the value and try again."
        )
    max_out = _get(config, "maxOutputTokens")
    if max_out is not None and not 1 <= max_out <= model.max_output + 1:
        raise _bad(
            f"Unable to submit request because it has a maxOutputTokens value of {max_out} but the supported range "
            f"is from 1 (inclusive) to {model.max_output + 2} (exclusive). Update the value and try again."
        )
    count = _get(config, "candidateCount")
    if count is not None and not 1 <= count <= 8:
        raise _bad("Only values between 1 and 8 are supported for candidate_count.")
    stops = _get(config, "stopSequences")
    if stops is not None and (not isinstance(stops, list) or len(stops) > 5):
        raise _bad("Unable to submit request because it has more than 5 stop sequences.")
    mime = _get(config, "responseMimeType")
    schema, json_schema = _get(config, "responseSchema"), _get(config, "responseJsonSchema")
    if schema is not None and json_schema is not None:
        raise _bad("response_schema and response_json_schema are mutually exclusive.")
    if (schema is not None or json_schema is not None) and mime != "application/json":
        raise _bad("response_mime_type must be application/json when a response schema is set.")
    thinking = _get(config, "thinkingConfig")
    if thinking is not None:
        _unknown(thinking, THINKING, "generation_config.thinking_config")
        if _get(thinking, "thinkingLevel") is not None:
            raise _bad("Thinking level is not supported for this model.")
        budget = _get(thinking, "thinkingBudget")
        if budget is not None and budget != -1:
            if budget == 0 and model.min_budget > 0:
                raise _bad("Budget 0 is invalid. This model only works in thinking mode.")
            if budget != 0 and not model.min_budget <= budget <= model.max_budget:
                low = max(model.min_budget, 1)
                raise _bad(
                    f"The thinking budget {budget} is invalid. Please choose a value between {low} and "
                    f"{model.max_budget}."
                )


# ----------------------------------------------------------------------------------------------------
# answers


def _tokens(text: str) -> int:
    return -(-len(text) // 4)


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    system = _get(body, "systemInstruction") or {}
    for content in [system, *(body.get("contents") or ())]:
        for part in content.get("parts") or ():
            if isinstance(part.get("text"), str):
                total += _tokens(part["text"])
            elif _get(part, "inlineData") is not None:
                total += 258  # an image, as Gemini counts it
            else:
                total += _tokens(orjson.dumps(part).decode())
    for tool in body.get("tools") or ():
        total += _tokens(orjson.dumps(tool).decode())
    return max(total, 1)


@dataclass(slots=True)
class Answer:
    model: str
    response_id: str
    candidates: list[dict[str, Any]]  # {"index", "thoughts", "text", "calls", "finish"}
    usage: dict[str, Any]
    block_reason: str | None = None

    def completion(self) -> dict[str, Any]:
        if self.block_reason:
            return {
                "promptFeedback": {"blockReason": self.block_reason, "safetyRatings": []},
                "usageMetadata": self.usage,
                "modelVersion": self.model,
                "responseId": self.response_id,
            }
        candidates = []
        for cand in self.candidates:
            parts: list[dict[str, Any]] = []
            if cand["thoughts"]:
                parts.append({"text": cand["thoughts"], "thought": True})
            if cand["text"]:
                parts.append({"text": cand["text"]})
            parts.extend(_call_parts(cand))
            candidates.append(
                {
                    "content": {"role": "model", "parts": parts},
                    "finishReason": cand["finish"],
                    "avgLogprobs": -0.12,
                    "index": cand["index"],
                }
            )
        return {
            "candidates": candidates,
            "usageMetadata": self.usage,
            "modelVersion": self.model,
            "createTime": "2026-11-26T08:00:00.000000Z",
            "responseId": self.response_id,
        }

    def events(self, chunk_chars: int) -> list[dict[str, Any]]:
        """The SSE sequence: only new parts per event, a running usage snapshot, finishReason last."""
        if self.block_reason:
            return [self.completion()]
        running = {
            "promptTokenCount": self.usage.get("promptTokenCount", 0),
            "totalTokenCount": self.usage.get("promptTokenCount", 0),
            "trafficType": "ON_DEMAND",
        }
        events: list[dict[str, Any]] = []
        for cand in self.candidates:
            pieces: list[dict[str, Any]] = []
            if cand["thoughts"]:
                pieces.extend(
                    {"text": cand["thoughts"][i : i + 40], "thought": True} for i in range(0, len(cand["thoughts"]), 40)
                )
            text = cand["text"]
            step = max(chunk_chars, 1)
            pieces.extend({"text": text[i : i + step]} for i in range(0, len(text), step))
            pieces.extend(_call_parts(cand))
            if not pieces:
                pieces.append({"text": ""})
            for n, piece in enumerate(pieces):
                candidate: dict[str, Any] = {"content": {"role": "model", "parts": [piece]}}
                if cand["index"]:
                    candidate["index"] = cand["index"]
                event: dict[str, Any] = {"candidates": [candidate], "modelVersion": self.model}
                last = n == len(pieces) - 1
                if last:
                    candidate["finishReason"] = cand["finish"]
                    if cand is self.candidates[-1]:
                        event["usageMetadata"] = self.usage
                if "usageMetadata" not in event:
                    event["usageMetadata"] = dict(running)
                event["createTime"] = "2026-11-26T08:00:00.000000Z"
                event["responseId"] = self.response_id
                events.append(event)
        return events


def sign_call(name: str, args: dict[str, Any]) -> str:
    """The mock's thoughtSignature for a function call (opaque bytes, base64): breaks if the call changes."""
    digest = hashlib.sha256(b"mock-vertex:" + name.encode() + orjson.dumps(args, option=orjson.OPT_SORT_KEYS))
    return base64.b64encode(digest.digest() + b"\xfb\xff").decode()  # bytes that need '+' or '/' in base64


def _call_parts(cand: dict[str, Any]) -> list[dict[str, Any]]:
    parts = []
    for call in cand["calls"]:
        part: dict[str, Any] = {"functionCall": call}
        if cand.get("signed") and not parts:
            # with thinking on, Gemini signs the first function call of a step (docs: thought signatures)
            part["thoughtSignature"] = sign_call(call["name"], call.get("args") or {})
        parts.append(part)
    return parts


def simulate(body: dict[str, Any], model: str, scenario: VertexScenario) -> Answer:
    config = _get(body, "generationConfig") or {}
    thinking = _get(config, "thinkingConfig") or {}
    budget = _get(thinking, "thinkingBudget")
    thinks = budget != 0
    include = bool(_get(thinking, "includeThoughts"))
    prompt = _prompt_tokens(body)
    response_id = f"vtx{time.time_ns():x}"
    cached = min(scenario.cached_tokens, prompt)
    if scenario.block_reason:
        usage = {"promptTokenCount": prompt, "totalTokenCount": prompt, "trafficType": "ON_DEMAND"}
        if cached:
            usage["cachedContentTokenCount"] = cached
        return Answer(model, response_id, [], scenario.usage or usage, block_reason=scenario.block_reason)

    json_mode = _get(config, "responseMimeType") == "application/json"
    last = (body.get("contents") or [{}])[-1]
    tool_output = next(
        (
            _get(p, "functionResponse")["response"]
            for p in last.get("parts") or ()
            if _get(p, "functionResponse") is not None
        ),
        None,
    )
    if scenario.text is not None:
        text = scenario.text
    elif json_mode:
        text = '{"answer": "Hello from Gemini on Vertex."}'
    elif tool_output is not None:
        text = "The tool said: " + orjson.dumps(tool_output).decode()
    else:
        text = "Hello from Gemini on Vertex. This is the mock's answer."

    calls_spec = scenario.tool_calls
    fcc = _get(_get(body, "toolConfig") or {}, "functionCallingConfig") or {}
    if calls_spec is None and fcc.get("mode") == "ANY":
        names = _get(fcc, "allowedFunctionNames") or [
            d["name"] for t in body.get("tools") or () for d in _get(t, "functionDeclarations") or ()
        ]
        calls_spec = [(names[0], {})] if names else None
    if fcc.get("mode") == "NONE":
        calls_spec = None
    calls = []
    for k, (name, args) in enumerate(calls_spec or ()):
        call: dict[str, Any] = {"name": name, "args": args}
        if scenario.call_ids:
            call["id"] = f"fc-{response_id}-{k}"
        calls.append(call)
    if calls and scenario.text is None:
        text = ""

    finish = "STOP"
    for stop in _get(config, "stopSequences") or ():
        at = text.find(stop)
        if at >= 0:
            text = text[:at]
    thought_tokens = 0
    if thinks:
        thought_tokens = scenario.thoughts_tokens if scenario.thoughts_tokens is not None else 48
        if isinstance(budget, int) and budget > 0:
            thought_tokens = min(thought_tokens, budget)
    thoughts = ""
    if thinks and include:
        thoughts = scenario.thoughts or "**Weighing the request**\nThe user wants a short, direct answer."
    max_out = _get(config, "maxOutputTokens")
    if max_out is not None and _tokens(text) + thought_tokens > max_out:
        text = text[: max(max_out - thought_tokens, 0) * 4]
        finish = "MAX_TOKENS"
    if scenario.finish_reason:
        finish = scenario.finish_reason

    count = _get(config, "candidateCount") or 1
    candidates = [
        {"index": i, "thoughts": thoughts, "text": text, "calls": calls, "finish": finish, "signed": thinks}
        for i in range(count)
    ]
    per_candidate = _tokens(text) + sum(_tokens(orjson.dumps(c).decode()) for c in calls)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": per_candidate * count,
        "totalTokenCount": prompt + per_candidate * count + thought_tokens,
        "trafficType": "ON_DEMAND",
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if thought_tokens:
        usage["thoughtsTokenCount"] = thought_tokens
    if cached:
        usage["cachedContentTokenCount"] = cached
    return Answer(model, response_id, candidates, scenario.usage or usage)


# ----------------------------------------------------------------------------------------------------
# the server


class VertexMock(ThreadedServer):
    """See the module docstring. Thread-safe to script and inspect from the test's thread."""

    thread_name = "vertex-mock"

    def __init__(self, *, api_key: str = DEFAULT_API_KEY, models: tuple[VertexModel, ...] = DEFAULT_MODELS) -> None:
        super().__init__()
        self.api_key = api_key
        self._default_models = models
        self.models: dict[str, VertexModel] = {m.name: m for m in models}
        self.requests: list[VertexRequest] = []
        self._lock = threading.Lock()
        self._scripts: Scripts[VertexScenario] = Scripts(VertexScenario)

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    # -- scripting ----------------------------------------------------------------------------------

    def script(self, scenario: VertexScenario, *, model: str | None = None, times: int | None = 1) -> None:
        self._scripts.add(scenario, model, times)

    def add_model(self, name: str, *, min_budget: int = 0, max_budget: int = 24576) -> VertexModel:
        model = VertexModel(name, min_budget, max_budget)
        with self._lock:
            self.models[name] = model
        return model

    def requests_for(self, model: str) -> list[VertexRequest]:
        return [r for r in list(self.requests) if r.model == model]

    def always(self, scenario: VertexScenario, *, model: str | None = None) -> None:
        self.script(scenario, model=model, times=None)

    def reset(self) -> None:
        self._scripts.clear()
        with self._lock:
            self.requests.clear()
            self.models = {m.name: m for m in self._default_models}

    def _next_scenario(self, model: str | None) -> VertexScenario:
        return self._scripts.next(model)

    @property
    def last(self) -> VertexRequest:
        return self.requests[-1]

    # -- handling -----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        match = PATH.match(request.path)
        model = match.group(2) if match else None
        stream = bool(match and match.group(3) == "streamGenerateContent")
        with self._lock:
            self.requests.append(
                VertexRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=raw,
                    json=parsed,
                    model=model,
                    stream=stream,
                    at=time.time(),
                )
            )
        try:
            if match is None or request.method != "POST":
                raise google_error(404, f"The requested URL {request.path} was not found on this server.")
            key = request.headers.get("x-goog-api-key") or request.query.get("key")
            if not key:
                raise google_error(
                    401,
                    "Request is missing required authentication credential. Expected OAuth 2 access token, login "
                    "cookie or other valid authentication credential. See "
                    "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                )
            if key != self.api_key:
                raise VertexError(
                    400,
                    "INVALID_ARGUMENT",
                    "API key not valid. Please pass a valid API key.",
                    [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "API_KEY_INVALID",
                            "domain": "googleapis.com",
                            "metadata": {"service": "aiplatform.googleapis.com"},
                        }
                    ],
                )
            with self._lock:
                spec = self.models.get(model or "")
            if spec is None:
                raise google_error(
                    404,
                    f"Publisher Model `publishers/google/models/{model}` was not found or your project does not have "
                    "access to it. Please ensure you are using a valid model version.",
                )
            scenario = self._next_scenario(model)
            if scenario.delay:
                await asyncio.sleep(scenario.delay)
            if scenario.status != 200:
                if scenario.body is not None:
                    return _raw(scenario.status, scenario.body, scenario.headers)
                err = google_error(scenario.status, retry_delay=scenario.retry_delay)
                return _json(err.status, err.body, scenario.headers)
            if parsed is None and raw:
                raise _bad(f"Invalid JSON payload received. Unexpected token.\n{raw[:40].decode('utf-8', 'replace')}")
            validate(parsed, spec)
        except VertexError as err:
            return _json(err.status, err.body)
        answer = simulate(parsed, spec.name, scenario)
        if not stream:
            return _raw(200, scenario.body if scenario.body is not None else answer.completion(), scenario.headers)
        if request.query.get("alt") != "sse":  # without alt=sse Google streams one JSON array
            return _raw(200, answer.events(scenario.chunk_chars), scenario.headers)
        return await self._stream(request, scenario, answer)

    async def _stream(self, request: web.Request, scenario: VertexScenario, answer: Answer) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"content-type": "text/event-stream", **scenario.headers})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if scenario.events is not None:
            events = [e if isinstance(e, bytes) else b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in scenario.events]
        else:
            events = [b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in answer.events(scenario.chunk_chars)]
        try:
            for sent, event in enumerate(events):
                if scenario.break_after is not None and sent >= scenario.break_after:
                    resp.force_close()
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                if scenario.chunk_delay:
                    await asyncio.sleep(scenario.chunk_delay)
                await resp.write(event)
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        headers={"content-type": "application/json; charset=UTF-8", **(headers or {})},
    )


def _raw(status: int, body: Any, headers: dict[str, str]) -> web.Response:
    if isinstance(body, bytes | str):
        data = body.encode() if isinstance(body, str) else body
        return web.Response(status=status, body=data, headers={"content-type": "text/html; charset=UTF-8", **headers})
    return _json(status, body, headers)


# ----------------------------------------------------------------------------------------------------
# fixture

_shared: VertexMock | None = None
_shared_lock = threading.Lock()


def shared_vertex_mock() -> VertexMock:
    global _shared
    with _shared_lock:
        if _shared is None:
            import atexit

            _shared = VertexMock().start()
            atexit.register(_shared.stop)
        return _shared


@pytest.fixture
def vertex_upstream() -> Iterator[VertexMock]:
    """The Vertex mock, started once per test process and reset around every test."""
    mock = shared_vertex_mock()
    mock.reset()
    yield mock
    mock.reset()
