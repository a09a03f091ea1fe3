"""`google_vertex`: Gemini on Vertex AI (express mode) — generateContent / streamGenerateContent?alt=sse.

URL: `{base}/v1/publishers/google/models/{deployment}:generateContent` (express mode, API key in
`x-goog-api-key`); a base URL that already names `/projects/{p}/locations/{l}` (with its version
segment) gets `/publishers/google/models/...` appended after it, still with the API key header.

Translate in (OpenAI chat → GenerateContentRequest):
- system/developer → `systemInstruction.parts`; user/assistant → `user`/`model` turns, consecutive
  same-role turns merged; assistant `tool_calls` → `functionCall{name, args (object), id}` parts;
  `role: tool` → a user `functionResponse{name, id, response: {output}}` part, the name looked up from
  the earlier assistant tool call with that id; empty text parts dropped.
- data-URL `image_url` / `file` parts → `inlineData{mimeType, data}`; a remote http(s) URL is never
  fetched: 400 naming the part, nothing sent.
- `max_tokens`/`max_completion_tokens` → `maxOutputTokens`; `temperature`, `top_p`, `stop`, `n`, `seed`,
  `presence_penalty`, `frequency_penalty` → `temperature`, `topP`, `stopSequences`, `candidateCount`,
  `seed`, `presencePenalty`, `frequencyPenalty`; `response_format` json_object → `responseMimeType`,
  json_schema → + `responseJsonSchema` (takes JSON Schema as is; `responseSchema` is an OpenAPI subset);
  `tools` → `functionDeclarations` with `parametersJsonSchema` (JSON Schema as is, for the same reason);
  `tool_choice` → `functionCallingConfig.mode` AUTO/NONE/ANY (+ `allowedFunctionNames`);
  `reasoning_effort` → `thinkingConfig.thinkingBudget` (the model spec's budget, else FALLBACK_BUDGETS);
  `show_thinking` → `thinkingConfig.includeThoughts`; `service_tier` dropped.

Normalize out: text parts → `content`, `thought: true` parts → `reasoning_content` (only with
show_thinking), `functionCall` → `tool_calls` (the part's id, else `call_<responseId>_<candidate>_<n>`:
unique per call position, never derived from the name; a part's `thoughtSignature` rides in the id after
`__ts__`, URL-safe, so that any OpenAI client echoing the id hands it back, and the assistant turn sent
upstream carries it again as the part's `thoughtSignature`), `finishReason` → `finish_reason`, a blocked
prompt → `finish_reason: content_filter`, `usageMetadata` → disjoint buckets (providers.md §5).

Pure: no I/O, no ORM, no settings.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from gateway.providers import register
from gateway.providers._openai_family import redact, retry_after_seconds
from gateway.providers._sse import SSEFramer
from gateway.providers._wire import load_json
from gateway.types import ChatRequest, ErrorKind, RequestRejected, Route, UpstreamError, UpstreamRequest, Usage

ENDPOINT_TYPE = "google_vertex"

# Used only when the model spec has no budget for the effort asked (ChatRequest.reasoning_budget None).
FALLBACK_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}

# Request fields this family can take (after the spec validated them); anything else: 400 naming it.
FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "tools",
        "tool_choice",
        "reasoning_effort",
        "service_tier",  # dropped: Gemini has no such request field
        "show_thinking",
        "stream_options",
    }
)
_SIMPLE = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("n", "candidateCount"),
    ("seed", "seed"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_FILTERED = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "MODEL_ARMOR", "JAILBREAK"}
)
_JSON = "application/json"
_SSE = "text/event-stream"
_EXT_MIME = {
    "pdf": "application/pdf",
    "txt": "text/plain",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "wav": "audio/wav",
    "mp3": "audio/mp3",
}


# ----------------------------------------------------------------------------------------------------
# translate in


def upstream_url(route: Route, *, stream: bool) -> str:
    base = route.base_url.strip().rstrip("/")
    model = quote(route.deployment or route.model_slug, safe="-._@")
    method = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
    if "/projects/" in base:
        return f"{base}/publishers/google/models/{model}{method}"
    for suffix in ("/v1beta1", "/v1"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return f"{base}/v1/publishers/google/models/{model}{method}"


def _text_of(content: Any) -> str:
    """System/developer/tool/assistant content: a string or text (and refusal) parts → one string."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                text = part.get("text") if part.get("type") == "text" else part.get("refusal")
                if isinstance(text, str) and text:
                    out.append(text)
        return "".join(out)
    return ""


def _data_url(url: str, path: str, default_mime: str) -> dict[str, Any]:
    """`data:<mime>;base64,<payload>` (or a bare base64 payload) → inlineData."""
    if url.startswith("data:"):
        head, _sep, payload = url.partition(",")
        mime = head[5:].split(";", 1)[0] or default_mime
        if not head.endswith(";base64") or not payload:
            raise RequestRejected(
                f"Invalid '{path}': expected a base64 data URL such as 'data:{default_mime};base64,...'.", param=path
            )
        return {"inlineData": {"mimeType": mime, "data": payload}}
    if url.startswith(("http://", "https://")):
        raise RequestRejected(
            f"Invalid '{path}': remote URLs are not fetched for Google Vertex routes. Send the content inline "
            f"as a base64 data URL ('data:{default_mime};base64,...').",
            param=path,
            code="invalid_value",
        )
    return {"inlineData": {"mimeType": default_mime, "data": url}}


def _user_parts(content: Any, i: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content or ()):
        kind = part.get("type")
        path = f"messages[{i}].content[{j}]"
        if kind == "text":
            text = part.get("text")
            if text:
                parts.append({"text": text})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            parts.append(_data_url(str(image.get("url") or ""), f"{path}.image_url.url", "image/png"))
        elif kind == "file":
            file = part.get("file") or {}
            data = file.get("file_data")
            if not data:
                raise RequestRejected(
                    f"Invalid '{path}.file.file_id': file ids are not supported for Google Vertex routes; "
                    "send 'file_data' (base64) instead.",
                    param=f"{path}.file.file_id",
                    code="unsupported_value",
                )
            name = str(file.get("filename") or "")
            mime = (
                _EXT_MIME.get(name.rsplit(".", 1)[-1].lower(), "application/pdf") if "." in name else "application/pdf"
            )
            parts.append(_data_url(str(data), f"{path}.file.file_data", mime))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            fmt = audio.get("format") or "wav"
            parts.append({"inlineData": {"mimeType": f"audio/{fmt}", "data": str(audio.get("data") or "")}})
        else:
            raise RequestRejected(
                f"Invalid '{path}.type': parts of type '{kind}' are not supported for Google Vertex routes.",
                param=f"{path}.type",
                code="unsupported_value",
            )
    return parts


def _args(arguments: Any, path: str) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise RequestRejected(f"Invalid '{path}': expected a JSON object encoded as a string.", param=path)
    return value


SIGNATURE_MARK = "__ts__"  # tool call id = <id> + mark + <thoughtSignature, URL-safe base64 without padding>


def _signed_id(call_id: str, part: Mapping[str, Any]) -> str:
    signature = part.get("thoughtSignature")
    if not isinstance(signature, str) or not signature:
        return call_id
    return call_id + SIGNATURE_MARK + signature.replace("+", "-").replace("/", "_").rstrip("=")


def split_call_id(call_id: str) -> tuple[str, str | None]:
    """A tool call id → (the id Google knows, the thoughtSignature it carried, as standard base64)."""
    base, mark, signature = call_id.partition(SIGNATURE_MARK)
    if not mark or not signature:
        return call_id, None
    signature = signature.replace("-", "+").replace("_", "/")
    return base, signature + "=" * (-len(signature) % 4)


def translate_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages → (contents, systemInstruction parts)."""
    contents: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool call id → function name, the latest assistant call wins

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for i, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = _text_of(content)
            if text:
                system.append({"text": text})
        elif role == "user":
            add("user", _user_parts(content, i))
        elif role == "assistant":
            parts: list[dict[str, Any]] = []
            text = _text_of(content)
            if text:
                parts.append({"text": text})
            for k, call in enumerate(message.get("tool_calls") or ()):
                fn = call.get("function") or {}
                name = fn.get("name") or ""
                call_id = call.get("id")
                fc: dict[str, Any] = {
                    "name": name,
                    "args": _args(fn.get("arguments"), f"messages[{i}].tool_calls[{k}].function.arguments"),
                }
                part: dict[str, Any] = {"functionCall": fc}
                if call_id:
                    fc["id"], signature = split_call_id(call_id)
                    call_names[call_id] = name
                    if signature:
                        part["thoughtSignature"] = signature
                parts.append(part)
            add("model", parts)
        elif role == "tool":
            call_id = message.get("tool_call_id") or ""
            name = call_names.get(call_id) or message.get("name")
            if not name:
                raise RequestRejected(
                    f"Invalid 'messages[{i}].tool_call_id': no earlier assistant message has a tool call with id "
                    f"'{call_id}'. Google needs the function's name for a tool result.",
                    param=f"messages[{i}].tool_call_id",
                )
            response = {"name": name, "response": {"output": _text_of(content)}}
            if call_id:
                response = {"name": name, "id": split_call_id(call_id)[0], "response": response["response"]}
            add("user", [{"functionResponse": response}])
        else:  # the spec rejects other roles; never send one upstream
            raise RequestRejected(f"Invalid value for 'messages[{i}].role': '{role}'.", param=f"messages[{i}].role")
    if not contents:
        raise RequestRejected(
            "Invalid 'messages': at least one user or assistant message is required.", param="messages"
        )
    return contents, system


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    declarations = []
    for k, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise RequestRejected(
                f"Invalid 'tools[{k}].type': only function tools are supported for Google Vertex routes.",
                param=f"tools[{k}].type",
                code="unsupported_value",
            )
        fn = tool.get("function") or {}
        decl: dict[str, Any] = {"name": fn.get("name")}
        if fn.get("description"):
            decl["description"] = fn["description"]
        params = fn.get("parameters")
        if params:
            decl["parametersJsonSchema"] = params
        declarations.append(decl)
    return [{"functionDeclarations": declarations}]


def _tool_config(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str):
        return {"functionCallingConfig": {"mode": _TOOL_MODES[choice]}}
    name = ((choice or {}).get("function") or {}).get("name")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def build_body(request: ChatRequest) -> dict[str, Any]:
    src = request.body
    for name in src:
        if name not in FIELDS:
            raise RequestRejected(
                f"Unrecognized request argument supplied: '{name}' is not supported by this model's provider.",
                param=name,
                code="unsupported_parameter",
            )
    contents, system = translate_messages(src["messages"])
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if src.get("tools"):
        body["tools"] = _tools(src["tools"])
        if src.get("tool_choice") is not None:
            body["toolConfig"] = _tool_config(src["tool_choice"])

    config: dict[str, Any] = {}
    if request.max_output_tokens is not None:
        config["maxOutputTokens"] = request.max_output_tokens
    for ours, theirs in _SIMPLE:
        value = src.get(ours)
        if value is not None:
            config[theirs] = value
    stop = src.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    fmt = src.get("response_format")
    if isinstance(fmt, dict):
        kind = fmt.get("type")
        if kind == "json_object":
            config["responseMimeType"] = _JSON
        elif kind == "json_schema":
            config["responseMimeType"] = _JSON
            schema = (fmt.get("json_schema") or {}).get("schema")
            if schema:
                config["responseJsonSchema"] = schema
    effort = request.reasoning_effort or src.get("reasoning_effort")
    thinking: dict[str, Any] = {}
    if effort:
        budget = request.reasoning_budget
        if budget is None:
            budget = FALLBACK_BUDGETS.get(effort)
        if budget is not None:
            thinking["thinkingBudget"] = budget
    if request.show_thinking:
        thinking["includeThoughts"] = True
    if thinking:
        config["thinkingConfig"] = thinking
    if config:
        body["generationConfig"] = config
    return body


# ----------------------------------------------------------------------------------------------------
# normalize out


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float):
        return max(int(value), 0)
    if isinstance(value, str) and value.isdigit():  # proto3 JSON may render int64 as a string
        return int(value)
    return 0


def normalize_usage(raw: Mapping[str, Any]) -> Usage:
    """usageMetadata → disjoint buckets. promptTokenCount includes cachedContentTokenCount;
    candidatesTokenCount excludes thoughtsTokenCount (providers.md §6, pitfalls 1 and 4)."""
    prompt = _int(raw.get("promptTokenCount"))
    cached = min(_int(raw.get("cachedContentTokenCount")), prompt)
    tool_prompt = _int(raw.get("toolUsePromptTokenCount"))
    thoughts = _int(raw.get("thoughtsTokenCount"))
    candidates = _int(raw.get("candidatesTokenCount"))
    return Usage(
        input_tokens=prompt - cached + tool_prompt,
        cached_input_tokens=cached,
        output_tokens=candidates + thoughts,
        reasoning_tokens=thoughts,
    )


def finish_reason(reason: str, *, has_calls: bool) -> str:
    if reason == "STOP":
        return "tool_calls" if has_calls else "stop"
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    if reason in ("MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"):
        return "tool_calls" if has_calls else "stop"
    return "stop"


def _call_id(part_id: Any, prefix: str, cand: int, position: int) -> str:
    if isinstance(part_id, str) and part_id:
        return part_id
    return f"call_{prefix}_{cand}_{position}"


def _tool_call(part: Mapping[str, Any], call_id: str) -> dict[str, Any]:
    """A `functionCall` part → an OpenAI tool call (arguments as a JSON string; the signature in the id)."""
    fc = part["functionCall"]
    return {
        "id": _signed_id(call_id, part),
        "type": "function",
        "function": {"name": fc.get("name") or "", "arguments": orjson.dumps(fc.get("args") or {}).decode()},
    }


def _id_prefix(obj: Mapping[str, Any]) -> str:
    rid = obj.get("responseId")
    if isinstance(rid, str) and rid:
        return "".join(c for c in rid if c.isalnum() or c in "-_")[:40] or secrets.token_hex(8)
    return secrets.token_hex(8)


def _load(data: bytes, what: str) -> dict[str, Any]:
    obj = load_json(data, what)
    if isinstance(obj, list) and len(obj) == 1 and isinstance(obj[0], dict):
        obj = obj[0]
    if not isinstance(obj, dict):
        raise UpstreamError(ErrorKind.SERVER, f"upstream sent {what} that is not a JSON object")
    if obj.get("error"):
        message, code, _details = _error_fields(orjson.dumps(obj))
        raise UpstreamError(ErrorKind.SERVER, redact(message or "upstream sent an error"), code=code)
    return obj


def parse_completion(request: ChatRequest, data: bytes) -> tuple[dict[str, Any], Usage]:
    obj = _load(data, "a 2xx body")
    prefix = _id_prefix(obj)
    candidates = obj.get("candidates")
    choices = []
    text_len = 0
    if not candidates:
        block = (obj.get("promptFeedback") or {}).get("blockReason")
        if not block and not obj.get("usageMetadata"):
            raise UpstreamError(ErrorKind.SERVER, "upstream answer has no candidates")
        choices.append(
            {"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "content_filter"}
        )
    for pos, cand in enumerate(candidates or ()):
        index = cand.get("index", pos) if isinstance(cand.get("index"), int) else pos
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in (cand.get("content") or {}).get("parts") or ():
            fc = part.get("functionCall")
            if fc:
                calls.append(_tool_call(part, _call_id(fc.get("id"), prefix, index, len(calls))))
                continue
            text = part.get("text")
            if isinstance(text, str) and text:
                (thoughts if part.get("thought") else texts).append(text)
        content = "".join(texts)
        text_len += len(content)
        reason = finish_reason(str(cand.get("finishReason") or "STOP"), has_calls=bool(calls))
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content or (None if calls or reason == "content_filter" else ""),
        }
        if calls:
            message["tool_calls"] = calls
        if thoughts and request.show_thinking:
            message["reasoning_content"] = "".join(thoughts)
        choices.append({"index": index, "message": message, "finish_reason": reason})
    completion = {
        "id": f"chatcmpl-{prefix}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": choices,
    }
    raw = obj.get("usageMetadata")
    if isinstance(raw, dict):
        usage = normalize_usage(raw)
    else:
        usage = Usage(input_tokens=request.estimated_input_tokens, output_tokens=(text_len + 3) // 4, estimated=True)
    return completion, usage


# ----------------------------------------------------------------------------------------------------
# errors


def _error_fields(data: bytes) -> tuple[str, str | None, list[Any]]:
    try:
        obj = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        text = data.decode("utf-8", "replace").strip()
        return (" ".join(text.split())[:500], None, [])
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        obj = obj[0]  # streamGenerateContent without alt=sse wraps everything in an array
    err = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(err, dict):
        return ("", None, [])
    message = err.get("message") if isinstance(err.get("message"), str) else ""
    status = err.get("status") if isinstance(err.get("status"), str) and err.get("status") else None
    details = err.get("details") if isinstance(err.get("details"), list) else []
    return (message, status, details)


def _retry_delay(details: list[Any]) -> float | None:
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return max(float(delay[:-1]), 0.0)
                except ValueError:
                    return None
    return None


def _reasons(details: list[Any]) -> set[str]:
    return {str(d.get("reason")) for d in details if isinstance(d, dict) and d.get("reason")}


def parse_error(status: int, headers: Mapping[str, str], data: bytes) -> UpstreamError:
    """Google's `{"error": {"code", "message", "status", "details"}}` → an UpstreamError whose kind
    decides failover. A bad API key is a 400 INVALID_ARGUMENT with reason API_KEY_INVALID: AUTH."""
    message, gstatus, details = _error_fields(data)
    message = redact(message or f"upstream answered HTTP {status}")[:2000]
    reasons = _reasons(details)
    lowered = message.lower()
    if status in (401, 403) or "API_KEY_INVALID" in reasons or gstatus in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        kind = ErrorKind.AUTH
    elif status == 404:
        kind = ErrorKind.NOT_FOUND
    elif status == 408 or status == 504 or gstatus == "DEADLINE_EXCEEDED":
        kind = ErrorKind.TIMEOUT
    elif status == 429:
        kind = ErrorKind.RATE_LIMITED
    elif status >= 500 or status < 400 or status == 499:
        kind = ErrorKind.SERVER
    elif gstatus == "FAILED_PRECONDITION" and ("billing" in lowered or "free tier" in lowered):
        kind = ErrorKind.QUOTA
    else:
        kind = ErrorKind.CLIENT
    retry_after = None
    if kind in (ErrorKind.RATE_LIMITED, ErrorKind.SERVER):
        retry_after = retry_after_seconds(headers)
        if retry_after is None:
            retry_after = _retry_delay(details)
    code = gstatus.lower() if gstatus else None
    return UpstreamError(kind=kind, message=message, status=status, code=code, retry_after=retry_after)


# ----------------------------------------------------------------------------------------------------
# streaming


class GeminiStreamDecoder:
    """SSE (`alt=sse`) → `chat.completion.chunk` dicts. Each event is a whole GenerateContentResponse
    holding only the new parts; `usageMetadata` is a running snapshot (the last one wins, never summed).
    There is no `[DONE]`: `finished` is set once every expected candidate carried a finishReason.
    Bytes may split anywhere (inside UTF-8 sequences, between CR and LF): only complete events decode.
    """

    __slots__ = (
        "_calls",
        "_done",
        "_expected",
        "_prefix",
        "_roled",
        "_sse",
        "created",
        "finish_reason",
        "finished",
        "id",
        "model",
        "show_thinking",
        "usage",
    )

    def __init__(self, model: str, *, show_thinking: bool = False, candidates: int = 1) -> None:
        self.model = model
        self.show_thinking = show_thinking
        self.usage: Usage | None = None
        self.finished = False
        self.finish_reason: str | None = None
        self.id = ""
        self.created = int(time.time())
        self._prefix = ""
        self._expected = max(candidates, 1)
        self._calls: dict[int, int] = {}  # candidate index → tool calls seen so far
        self._roled: set[int] = set()
        self._done: set[int] = set()
        self._sse = SSEFramer()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for payload in self._sse.feed(data):
            self._event(payload, out)
        return out

    def _event(self, payload: bytes, out: list[dict[str, Any]]) -> None:
        if payload == b"[DONE]":  # not Google's, but harmless
            self.finished = True
            return
        obj = _load(payload, "a stream event")
        if not self.id:
            self._prefix = _id_prefix(obj)
            self.id = f"chatcmpl-{self._prefix}"
        raw = obj.get("usageMetadata")
        if isinstance(raw, dict):
            self.usage = normalize_usage(raw)
        candidates = obj.get("candidates")
        if not candidates:
            if (obj.get("promptFeedback") or {}).get("blockReason"):
                self.finish_reason = "content_filter"
                self.finished = True
                out.append(
                    self._chunk([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": "content_filter"}])
                )
            return
        choices = []
        for pos, cand in enumerate(candidates):
            index = cand.get("index") if isinstance(cand.get("index"), int) else pos
            delta: dict[str, Any] = {}
            texts: list[str] = []
            thoughts: list[str] = []
            calls: list[dict[str, Any]] = []
            for part in (cand.get("content") or {}).get("parts") or ():
                fc = part.get("functionCall")
                if fc:
                    n = self._calls.get(index, 0)
                    self._calls[index] = n + 1
                    calls.append({"index": n, **_tool_call(part, _call_id(fc.get("id"), self._prefix, index, n))})
                    continue
                text = part.get("text")
                if isinstance(text, str) and text:
                    (thoughts if part.get("thought") else texts).append(text)
            if texts:
                delta["content"] = "".join(texts)
            if thoughts and self.show_thinking:
                delta["reasoning_content"] = "".join(thoughts)
            if calls:
                delta["tool_calls"] = calls
            reason = cand.get("finishReason")
            finish = None
            if reason:
                finish = finish_reason(str(reason), has_calls=self._calls.get(index, 0) > 0)
                self.finish_reason = finish
                self._done.add(index)
            if not delta and finish is None:
                continue
            if index not in self._roled:
                self._roled.add(index)
                delta = {"role": "assistant", **delta}
            choices.append({"index": index, "delta": delta, "finish_reason": finish})
        if len(self._done) >= self._expected:
            self.finished = True
        if choices:
            out.append(self._chunk(choices))

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }


# ----------------------------------------------------------------------------------------------------
# the adapter


class GoogleVertexAdapter:
    __slots__ = ()
    endpoint_type = ENDPOINT_TYPE

    def prepare(self, request: ChatRequest, route: Route) -> UpstreamRequest:
        body = build_body(request)
        headers = {
            "content-type": _JSON,
            "accept": _SSE if request.stream else _JSON,
            "x-goog-api-key": route.api_key,
        }
        return UpstreamRequest(url=upstream_url(route, stream=request.stream), headers=headers, body=orjson.dumps(body))

    def parse_completion(self, request: ChatRequest, route: Route, data: bytes) -> tuple[dict[str, Any], Usage]:
        return parse_completion(request, data)

    def parse_error(self, status: int, headers: Mapping[str, str], data: bytes) -> UpstreamError:
        return parse_error(status, headers, data)

    def stream_decoder(self, request: ChatRequest, route: Route) -> GeminiStreamDecoder:
        n = request.body.get("n")
        return GeminiStreamDecoder(
            request.model, show_thinking=request.show_thinking, candidates=n if isinstance(n, int) and n > 0 else 1
        )


adapter = register(GoogleVertexAdapter())
