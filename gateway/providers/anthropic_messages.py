"""`anthropic_messages`: POST {base}/v1/messages with `x-api-key` and `anthropic-version: 2023-06-01`.

Pure (no I/O, no ORM, no settings). Sources: Anthropic's Messages API reference, streaming, extended
thinking and structured-outputs pages, and anthropic-sdk-python's generated types (message_create_params,
usage, message_delta_usage, stop_reason, tool_choice_*_param, shared/error_type).

Translate in (OpenAI chat → Messages):
- `system`/`developer` messages → top-level `system` text blocks (in order; Messages has no system role);
- `user`/`assistant` turns, consecutive same-role turns merged; `tool` messages → `tool_result` blocks in a
  user turn (consecutive results share one turn; results first, as the tool-use docs require);
- assistant `tool_calls` → `tool_use{id, name, input}` (arguments parsed: invalid JSON is a 400 naming it);
- parts: text (empty dropped), `image_url` data URL → base64 `image` (jpeg/png/gif/webp), http(s) URL →
  `image{source:{type:"url"}}`, `file` with base64 PDF → `document`; anything else a 400 naming the part;
- `max_tokens` (required upstream) = the client's limit, else the model's default; `temperature` (0-1 here:
  above 1 is a 400), `top_p`, `stop` → `stop_sequences`, `tools`, `tool_choice`, `parallel_tool_calls: false`
  → `tool_choice.disable_parallel_tool_use`, `user` → `metadata.user_id`, `response_format` json_schema →
  `output_config.format` (GA for Claude Sonnet 4.5 per the structured-outputs page);
- `reasoning_effort` → `thinking{type:"enabled", budget_tokens}`: the spec's budget (ChatRequest.reasoning_budget),
  else FALLBACK_BUDGETS. `budget_tokens` must be ≥ 1024 and < `max_tokens`: without a client limit `max_tokens`
  is budget + the model's default (the answer keeps its default room); a client limit covers thinking and answer
  (as `max_completion_tokens` does on reasoning models): when it is not above the budget, the budget shrinks to
  half of it (at least 1024), and a limit ≤ 1024 is a 400.
  Thinking is incompatible with temperature changes (dropped, as the model page says) and with forced tool use
  (`required`/named: a 400); `top_p` is kept only within 0.95-1. A turn that continues a tool loop (tool results
  for the last assistant turn's tool calls) keeps thinking only when that assistant message carries the
  `thinking_blocks` Omixa returned with its tool calls (Anthropic requires the turn to start with its signed
  thinking); without them the continuation goes without thinking, and stale thinking blocks are dropped.

Normalize out: text blocks joined → `content`, `thinking` → `reasoning_content` (only with show_thinking),
`tool_use` → `tool_calls` (with the signed `thinking`/`redacted_thinking` blocks, verbatim, as the message's
`thinking_blocks`; in a stream, one delta before the finish chunk), `stop_reason` → `finish_reason`, usage →
disjoint buckets (input_tokens excludes cache reads and writes; output_tokens includes thinking). Stream usage
is cumulative: overwritten, never added.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.providers import register
from gateway.providers._openai_family import normalize_base_url, redact, retry_after_seconds
from gateway.providers._sse import SSEFramer
from gateway.providers._wire import load_object
from gateway.types import ChatRequest, ErrorKind, RequestRejected, Route, UpstreamError, UpstreamRequest, Usage

ANTHROPIC_VERSION = "2023-06-01"
# Used only when the model's spec carries no reasoning budgets (ChatRequest.reasoning_budget is None).
FALLBACK_BUDGETS = {"low": 2048, "medium": 8192, "high": 24576}
MIN_THINKING_BUDGET = 1024  # extended thinking: budget_tokens ≥ 1024 and < max_tokens
IMAGE_MEDIA_TYPES = frozenset(("image/jpeg", "image/png", "image/gif", "image/webp"))
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Top-level fields of a validated chat body this adapter translates (or owns). Any other is a 400 naming it.
HANDLED_FIELDS = frozenset(
    (
        "model messages stream stream_options show_thinking max_tokens max_completion_tokens temperature top_p "
        "stop tools tool_choice parallel_tool_calls reasoning_effort response_format user metadata service_tier n"
    ).split()
)

_JSON = "application/json"
_SSE = "text/event-stream"


def _reject(message: str, param: str, code: str = "invalid_value") -> RequestRejected:
    return RequestRejected(message, param=param, code=code)


# ----------------------------------------------------------------------------------------------------
# translate in


def _text_blocks(content: Any, path: str) -> list[dict[str, Any]]:
    """Text of a system/developer/tool/assistant message as non-empty text blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, part in enumerate(content):
        kind = part.get("type")
        text = part.get("text") if kind == "text" else part.get("refusal") if kind == "refusal" else None
        if not isinstance(text, str):
            raise _reject(
                f"Invalid '{path}[{j}]': only text parts can be sent here, not '{kind}'.", f"{path}[{j}].type"
            )
        if text:
            blocks.append({"type": "text", "text": text})
    return blocks


def _split_data_url(url: str) -> tuple[str, str] | None:
    """`data:<media>;base64,<payload>` → (media, payload); None when it is not a base64 data URL."""
    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        return None
    return head[5:-7].strip().lower(), payload


def _image_block(part: dict[str, Any], path: str) -> dict[str, Any]:
    image = part.get("image_url") or {}
    url = image.get("url") if isinstance(image, dict) else None
    upath = f"{path}.image_url.url"
    if not isinstance(url, str) or not url:
        raise _reject(f"Invalid '{upath}': expected an image URL or a base64 data URL.", upath)
    if url.startswith("data:"):
        split = _split_data_url(url)
        if split is None:
            raise _reject(f"Invalid '{upath}': expected a base64 data URL such as 'data:image/png;base64,...'.", upath)
        media, data = split
        if media not in IMAGE_MEDIA_TYPES:
            raise _reject(
                f"Invalid '{upath}': image type '{media}' is not supported by this model's provider; "
                "use image/jpeg, image/png, image/gif or image/webp.",
                upath,
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _reject(f"Invalid '{upath}': expected an http(s) URL or a base64 data URL.", upath)


def _document_block(part: dict[str, Any], path: str) -> dict[str, Any]:
    file = part.get("file") or {}
    if not isinstance(file, dict):
        raise _reject(f"Invalid '{path}.file': expected an object.", f"{path}.file")
    data = file.get("file_data")
    if not isinstance(data, str) or not data:
        raise _reject(
            f"Invalid '{path}.file': this model's provider takes inline files only ('file_data' with base64 PDF "
            "data); 'file_id' is not supported.",
            f"{path}.file",
            "unsupported_parameter",
        )
    if data.startswith("data:"):
        split = _split_data_url(data)
        if split is None or split[0] != "application/pdf":
            raise _reject(
                f"Invalid '{path}.file.file_data': only PDF documents are supported "
                "('data:application/pdf;base64,...').",
                f"{path}.file.file_data",
            )
        data = split[1]
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": data},
    }
    filename = file.get("filename")
    if isinstance(filename, str) and filename:
        block["title"] = filename
    return block


def _user_blocks(content: Any, path: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, part in enumerate(content or ()):
        ppath = f"{path}[{j}]"
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(_image_block(part, ppath))
        elif kind == "file":
            blocks.append(_document_block(part, ppath))
        else:
            raise _reject(
                f"Invalid value for '{ppath}.type': '{kind}' parts are not supported by this model's provider.",
                f"{ppath}.type",
            )
    return blocks


def _tool_use_blocks(calls: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    blocks = []
    for k, call in enumerate(calls):
        fn = call.get("function") or {}
        arguments = fn.get("arguments")
        apath = f"{path}[{k}].function.arguments"
        if arguments in (None, ""):
            parsed: Any = {}
        else:
            try:
                parsed = orjson.loads(arguments)
            except (orjson.JSONDecodeError, TypeError):
                raise _reject(f"Invalid '{apath}': the arguments are not valid JSON.", apath) from None
        if not isinstance(parsed, dict):
            raise _reject(f"Invalid '{apath}': the arguments must be a JSON object.", apath)
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": parsed})
    return blocks


def _signed_thinking(value: Any, path: str) -> list[dict[str, Any]]:
    """An assistant message's `thinking_blocks` (as Omixa returned them) → Anthropic's blocks, verbatim."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _reject(f"Invalid type for '{path}': expected an array of thinking blocks.", path, "invalid_type")
    blocks = []
    for k, block in enumerate(value):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "thinking" and isinstance(block.get("thinking"), str) and isinstance(block.get("signature"), str):
            blocks.append({"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]})
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": block["data"]})
        else:
            raise _reject(
                f"Invalid '{path}[{k}]': expected a thinking block as returned in 'thinking_blocks' "
                '({"type": "thinking", "thinking": ..., "signature": ...} or {"type": "redacted_thinking", "data": ...}).',
                f"{path}[{k}]",
            )
    return blocks


def _strip_thinking(turns: list[dict[str, Any]]) -> None:
    for turn in turns:
        if turn["role"] == "assistant":
            turn["content"] = [b for b in turn["content"] if b["type"] not in _THINKING_BLOCKS]
    turns[:] = [turn for turn in turns if turn["content"]]


def translate_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages → (system text blocks, Messages turns)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        path = f"messages[{i}].content"
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_text_blocks(content, path))
            continue
        if role == "tool":
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
            texts = _text_blocks(content, path)
            if texts:
                result["content"] = texts[0]["text"] if isinstance(content, str) else texts
            role, blocks = "user", [result]
        elif role == "user":
            blocks = _user_blocks(content, path)
        elif role == "assistant":
            # signed thinking first: Anthropic checks that a tool-loop turn starts with it
            blocks = _signed_thinking(message.get("thinking_blocks"), f"messages[{i}].thinking_blocks")
            blocks.extend(_text_blocks(content, path))
            calls = message.get("tool_calls")
            if calls:
                blocks.extend(_tool_use_blocks(calls, f"messages[{i}].tool_calls"))
        else:
            raise _reject(f"Invalid value for 'messages[{i}].role': '{role}'.", f"messages[{i}].role")
        if not blocks:
            continue  # an empty turn (e.g. content "") says nothing; Anthropic rejects empty content
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        content = turn["content"]
        if turn["role"] == "user" and len(content) > 1 and any(b["type"] == "tool_result" for b in content):
            # tool results first, then any text (stable: order kept within each group)
            content.sort(key=lambda b: b["type"] != "tool_result")
    if not turns:
        raise _reject(
            "Invalid 'messages': at least one user or assistant message with content is required.", "messages"
        )
    return system, turns


_THINKING_BLOCKS = ("thinking", "redacted_thinking")


def continues_tool_loop(turns: list[dict[str, Any]]) -> bool:
    """True when the last assistant turn called tools and the turn after it carries their results."""
    for k in range(len(turns) - 1, -1, -1):
        if turns[k]["role"] == "assistant":
            if k + 1 >= len(turns) or not any(b["type"] == "tool_use" for b in turns[k]["content"]):
                return False
            return any(b["type"] == "tool_result" for b in turns[k + 1]["content"])
    return False


def _loop_is_signed(turns: list[dict[str, Any]]) -> bool:
    """The last assistant turn starts with the signed thinking block Anthropic returned for it."""
    for turn in reversed(turns):
        if turn["role"] == "assistant":
            return turn["content"][0]["type"] in _THINKING_BLOCKS
    return False


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        fn = tool.get("function") or {}
        item: dict[str, Any] = {
            "name": fn.get("name"),
            "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
        }
        if fn.get("description"):
            item["description"] = fn["description"]
        if fn.get("strict") is True:
            item["strict"] = True
        out.append(item)
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "tool", "name": choice["function"].get("name")}
    raise _reject(f"Invalid value for 'tool_choice': {orjson.dumps(choice).decode()}.", "tool_choice")


class AnthropicMessagesAdapter:
    endpoint_type = "anthropic_messages"

    def url(self, route: Route) -> str:
        return normalize_base_url(route.base_url) + "/v1/messages"

    def prepare(self, request: ChatRequest, route: Route) -> UpstreamRequest:
        src = request.body
        for name in src:
            if name not in HANDLED_FIELDS:
                raise _reject(
                    f"Unsupported parameter: '{name}' is not supported by this model's provider.",
                    name,
                    "unsupported_parameter",
                )
        n = src.get("n")
        if n is not None and n != 1:
            raise _reject("Unsupported value: 'n' must be 1 with this model's provider.", "n", "unsupported_value")

        system, turns = translate_messages(src["messages"])
        body: dict[str, Any] = {"model": route.deployment or route.model_slug}
        if system:
            body["system"] = system
        body["messages"] = turns

        limit = request.max_output_tokens
        max_param = "max_completion_tokens" if "max_completion_tokens" in src else "max_tokens"
        max_tokens = limit if limit is not None else request.default_max_output_tokens

        effort = request.reasoning_effort or src.get("reasoning_effort")
        # With thinking on, Anthropic requires the last assistant turn of a tool loop (tool_use answered by
        # tool_result) to start with its signed thinking block. Omixa returns it as `thinking_blocks` on the
        # assistant message; a client that sends it back keeps thinking on, one that does not continues the
        # loop without thinking (the effort applies to the next fresh turn).
        thinking = effort is not None and (not continues_tool_loop(turns) or _loop_is_signed(turns))
        if not thinking:
            _strip_thinking(turns)
        if thinking:
            budget = request.reasoning_budget or FALLBACK_BUDGETS.get(effort)
            if budget is None:
                raise _reject(
                    f"Invalid value for 'reasoning_effort': '{effort}'. Supported values are: 'low', 'medium' and "
                    "'high'.",
                    "reasoning_effort",
                )
            budget = max(budget, MIN_THINKING_BUDGET)
            if limit is None:
                # the model's default is the answer's room; thinking comes on top of it
                max_tokens = budget + request.default_max_output_tokens
            elif max_tokens <= budget:
                if limit > MIN_THINKING_BUDGET:
                    # the client's limit covers thinking and answer, as on reasoning models: half each
                    budget = max(MIN_THINKING_BUDGET, limit // 2)
                else:
                    raise _reject(
                        f"Invalid '{max_param}': with 'reasoning_effort' it must be more than {MIN_THINKING_BUDGET} "
                        f"(the provider's minimum thinking budget), but got {limit}.",
                        max_param,
                    )
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        body["max_tokens"] = max_tokens

        temperature = src.get("temperature")
        top_p = src.get("top_p")
        if thinking:
            # Thinking is incompatible with temperature changes (dropped); top_p only within 0.95-1.
            if top_p is not None and 0.95 <= top_p <= 1:
                body["top_p"] = top_p
        else:
            if temperature is not None:
                if temperature > 1:
                    raise _reject(
                        f"Invalid 'temperature': {temperature}. This model's provider accepts 0 to 1.", "temperature"
                    )
                body["temperature"] = temperature
            if top_p is not None:
                body["top_p"] = top_p

        stop = src.get("stop")
        if stop:
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)

        tools = src.get("tools")
        if tools:
            body["tools"] = _tools(tools)
            choice = _tool_choice(src.get("tool_choice"))
            if thinking and choice is not None and choice["type"] in ("any", "tool"):
                raise _reject(
                    "Invalid 'tool_choice': forcing tool use ('required' or a named function) is not supported "
                    "together with 'reasoning_effort' by this model's provider. Use 'auto' or drop "
                    "'reasoning_effort'.",
                    "tool_choice",
                )
            if src.get("parallel_tool_calls") is False and (choice is None or choice["type"] != "none"):
                choice = choice or {"type": "auto"}
                choice["disable_parallel_tool_use"] = True
            if choice is not None:
                body["tool_choice"] = choice

        fmt = src.get("response_format")
        if isinstance(fmt, dict):
            kind = fmt.get("type")
            if kind == "json_schema":
                schema = (fmt.get("json_schema") or {}).get("schema")
                body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
            elif kind == "json_object":
                raise _reject(
                    "Invalid 'response_format': 'json_object' is not supported by this model's provider; use "
                    "{'type': 'json_schema', 'json_schema': {...}} instead.",
                    "response_format.type",
                )

        user_id = src.get("user")
        metadata = src.get("metadata")
        if metadata:
            for key, value in metadata.items():
                if key != "user_id":
                    raise _reject(
                        f"Unsupported parameter: 'metadata.{key}'. This model's provider takes only "
                        "'metadata.user_id'.",
                        f"metadata.{key}",
                        "unsupported_parameter",
                    )
                user_id = user_id or value
        if user_id:
            body["metadata"] = {"user_id": user_id}

        tier = request.service_tier or src.get("service_tier")
        if tier and route.supports_priority:
            body["service_tier"] = "standard_only" if tier == "default" else "auto"

        if request.stream:
            body["stream"] = True

        headers = {
            "content-type": _JSON,
            "accept": _SSE if request.stream else _JSON,
            "x-api-key": route.api_key,
            "anthropic-version": ANTHROPIC_VERSION,
        }
        return UpstreamRequest(url=self.url(route), headers=headers, body=orjson.dumps(body))

    # -- normalize out ---------------------------------------------------------------------------

    def parse_completion(self, request: ChatRequest, route: Route, data: bytes) -> tuple[dict[str, Any], Usage]:
        obj = load_object(data, "a 2xx body")
        if obj.get("type") == "error":
            message, etype = _error_fields(obj)
            raise UpstreamError(ErrorKind.SERVER, redact(message or "upstream answered an error"), code=etype)
        content = obj.get("content")
        if not isinstance(content, list):
            raise UpstreamError(ErrorKind.SERVER, "upstream answer has no content blocks")
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[dict[str, Any]] = []
        signed: list[dict[str, Any]] = []
        for block in content:
            if not isinstance(block, dict):
                raise UpstreamError(ErrorKind.SERVER, "upstream answer has a malformed content block")
            kind = block.get("type")
            if kind == "text":
                texts.append(block.get("text") or "")
            elif kind == "thinking":
                thoughts.append(block.get("thinking") or "")
                signed.append(
                    {
                        "type": "thinking",
                        "thinking": block.get("thinking") or "",
                        "signature": block.get("signature") or "",
                    }
                )
            elif kind == "redacted_thinking":
                signed.append({"type": "redacted_thinking", "data": block.get("data") or ""})
            elif kind == "tool_use":
                calls.append(
                    {
                        "id": block.get("id"),
                        "type": "function",
                        "function": {
                            "name": block.get("name"),
                            "arguments": orjson.dumps(block.get("input") or {}).decode(),
                        },
                    }
                )
            # server tool blocks: nothing to show in chat-completions shape
        text = "".join(texts)
        message: dict[str, Any] = {"role": "assistant", "content": text if (text or not calls) else None}
        if calls:
            message["tool_calls"] = calls
            if signed:
                # what the client sends back with the tool results so that thinking stays on (see prepare)
                message["thinking_blocks"] = signed
        if request.show_thinking and thoughts:
            message["reasoning_content"] = "".join(thoughts)
        message["refusal"] = None
        completion = {
            "id": "chatcmpl-" + str(obj.get("id") or "anthropic"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish_reason(obj.get("stop_reason")),
                }
            ],
        }
        raw_usage = obj.get("usage")
        if isinstance(raw_usage, dict):
            usage = normalize_usage(raw_usage)
        else:
            usage = Usage(
                input_tokens=request.estimated_input_tokens,
                output_tokens=(len(text) + sum(len(t) for t in thoughts) + 3) // 4,
                estimated=True,
            )
        return completion, usage

    def parse_error(self, status: int, headers: Mapping[str, str], data: bytes) -> UpstreamError:
        return parse_error(status, headers, data)

    def stream_decoder(self, request: ChatRequest, route: Route) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(request.model, show_thinking=request.show_thinking)


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if stop_reason else "stop"


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(int(value), 0)


def normalize_usage(raw: Mapping[str, Any]) -> Usage:
    """Messages usage → disjoint buckets: `input_tokens` already excludes cache reads and writes
    (providers.md §5, pitfall 2); `output_tokens` includes thinking (`output_tokens_details.thinking_tokens`
    when reported is the reasoning share, else 0)."""
    output = _int(raw.get("output_tokens"))
    details = raw.get("output_tokens_details")
    reasoning = _int(details.get("thinking_tokens")) if isinstance(details, Mapping) else 0
    tier = raw.get("service_tier")
    return Usage(
        input_tokens=_int(raw.get("input_tokens")),
        cached_input_tokens=_int(raw.get("cache_read_input_tokens")),
        cache_write_tokens=_int(raw.get("cache_creation_input_tokens")),
        output_tokens=output,
        reasoning_tokens=min(reasoning, output),
        service_tier=tier if isinstance(tier, str) else "",
    )


# ----------------------------------------------------------------------------------------------------
# errors


def _error_fields(obj: Any) -> tuple[str, str | None]:
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        message = err.get("message")
        etype = err.get("type")
        return (message if isinstance(message, str) else "", etype if isinstance(etype, str) and etype else None)
    if isinstance(err, str):
        return err, None
    if isinstance(obj, dict) and isinstance(obj.get("message"), str):
        return obj["message"], None
    return "", None


def parse_error(status: int, headers: Mapping[str, str], data: bytes) -> UpstreamError:
    """Anthropic's `{"type":"error","error":{"type","message"},"request_id"}` → an UpstreamError whose kind
    decides failover. Non-JSON bodies (proxies, Cloudflare's 413 page) keep their text."""
    try:
        obj = orjson.loads(data) if data else None
        message, etype = _error_fields(obj)
    except orjson.JSONDecodeError:
        message, etype = " ".join(data.decode("utf-8", "replace").split())[:500], None
    if not message:
        message = f"upstream answered HTTP {status}"
    message = redact(message)[:2000]
    low = message.lower()

    if etype == "billing_error" or status == 402 or "credit balance" in low:
        kind = ErrorKind.QUOTA  # Anthropic answers a drained prepaid balance with a 400 naming it
    elif status in (401, 403) or etype in ("authentication_error", "permission_error"):
        kind = ErrorKind.AUTH
    elif status == 404:
        kind = ErrorKind.NOT_FOUND
    elif status == 408 or etype == "timeout_error":
        kind = ErrorKind.TIMEOUT
    elif status == 429 or etype == "rate_limit_error":
        kind = ErrorKind.RATE_LIMITED
    elif status >= 500 or status < 400 or etype in ("overloaded_error", "api_error"):
        kind = ErrorKind.SERVER  # 500 api_error, 529 overloaded_error, gateways
    else:
        kind = ErrorKind.CLIENT  # 400 invalid_request_error, 413 request_too_large, ...
    retry_after = retry_after_seconds(headers) if kind in (ErrorKind.RATE_LIMITED, ErrorKind.SERVER) else None
    return UpstreamError(kind=kind, message=message, status=status, code=etype, retry_after=retry_after)


# ----------------------------------------------------------------------------------------------------
# streaming


class AnthropicStreamDecoder:
    """Incremental Messages SSE (`event: <type>` + `data: {...}`) → `chat.completion.chunk` dicts.

    Bytes may split anywhere; only complete events are decoded, so splitting cannot change the output.
    `usage` is None until the answer's first content (so `message_start`'s snapshot never commits a
    stream on its own); from then on it is `message_start`'s snapshot with an output estimate, marked
    `estimated`, until `message_delta` brings the cumulative usage, which overwrites the snapshot.
    """

    __slots__ = (
        "_blocks",
        "_chars",
        "_content_seen",
        "_final",
        "_raw_usage",
        "_signed",
        "_sse",
        "_tools",
        "created",
        "finish_reason",
        "finished",
        "id",
        "model",
        "show_thinking",
    )

    def __init__(self, model: str, *, show_thinking: bool = False) -> None:
        self.model = model
        self.show_thinking = show_thinking
        self.finished = False
        self.finish_reason: str | None = None
        self.id = ""
        self.created = int(time.time())
        self._sse = SSEFramer()
        self._blocks: dict[int, list[Any]] = {}  # index → [kind, tool_calls index, arguments seen]
        self._tools = 0
        # index → the thinking block being received (text parts, signature): sent back with tool results
        self._signed: dict[int, dict[str, Any]] = {}
        self._raw_usage: dict[str, Any] = {}
        self._final = False
        self._content_seen = False
        self._chars = 0

    @property
    def usage(self) -> Usage | None:
        if self._final:
            return normalize_usage(self._raw_usage)
        if not self._content_seen:
            return None
        usage = normalize_usage(self._raw_usage)
        usage.output_tokens = max(usage.output_tokens, -(-self._chars // 4))
        usage.estimated = True
        return usage

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for payload in self._sse.feed(data):
            self._event(payload, out)
        return out

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _event(self, payload: bytes, out: list[dict[str, Any]]) -> None:
        obj = load_object(payload, "a stream event")
        kind = obj.get("type")
        if kind == "content_block_delta":
            self._delta(obj, out)
        elif kind == "content_block_start":
            self._block_start(obj, out)
        elif kind == "content_block_stop":
            state = self._blocks.get(obj.get("index"))
            if state is not None and state[0] == "tool" and not state[2]:
                # a tool call without arguments: OpenAI clients parse `arguments`, so send "{}"
                state[2] = True
                self._emit(out, {"tool_calls": [{"index": state[1], "function": {"arguments": "{}"}}]}, 2)
        elif kind == "message_start":
            message = obj.get("message") or {}
            self.id = "chatcmpl-" + str(message.get("id") or "anthropic")
            usage = message.get("usage")
            if isinstance(usage, dict):
                self._merge_usage(usage)
            out.append(self._chunk({"role": "assistant", "content": ""}))
        elif kind == "message_delta":
            delta = obj.get("delta") or {}
            usage = obj.get("usage")
            if isinstance(usage, dict):
                self._merge_usage(usage)
                self._final = True
            stop = delta.get("stop_reason")
            if stop:
                self.finish_reason = finish_reason(stop)
                if self._signed and self._tools:
                    out.append(self._chunk({"thinking_blocks": self._thinking_blocks()}))
                out.append(self._chunk({}, self.finish_reason))
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            message, etype = _error_fields(obj)
            raise UpstreamError(
                ErrorKind.SERVER, redact(message or "upstream sent an error event mid-stream"), code=etype
            )
        # ping and unknown event types are ignored (Anthropic's versioning policy adds new ones)

    def _thinking_blocks(self) -> list[dict[str, Any]]:
        blocks = []
        for index in sorted(self._signed):
            block = self._signed[index]
            if block["type"] == "thinking":
                blocks.append(
                    {"type": "thinking", "thinking": "".join(block["parts"]), "signature": block["signature"]}
                )
            else:
                blocks.append(block)
        return blocks

    def _merge_usage(self, usage: dict[str, Any]) -> None:
        raw = self._raw_usage
        for key, value in usage.items():
            if value is not None:
                raw[key] = value  # cumulative: overwrite, never add

    def _emit(self, out: list[dict[str, Any]], delta: dict[str, Any], chars: int) -> None:
        self._content_seen = True
        self._chars += chars
        out.append(self._chunk(delta))

    def _block_start(self, obj: dict[str, Any], out: list[dict[str, Any]]) -> None:
        index = obj.get("index")
        block = obj.get("content_block") or {}
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = ["text", None, False]
            text = block.get("text")
            if text:
                self._emit(out, {"content": text}, len(text))
        elif kind == "thinking":
            self._blocks[index] = ["thinking", None, False]
            text = block.get("thinking")
            self._signed[index] = {"type": "thinking", "parts": [text] if text else [], "signature": ""}
            if text and self.show_thinking:
                self._emit(out, {"reasoning_content": text}, len(text))
        elif kind == "tool_use":
            tool_index = self._tools
            self._tools += 1
            given = block.get("input")
            arguments = orjson.dumps(given).decode() if given else ""
            self._blocks[index] = ["tool", tool_index, bool(arguments)]
            call = {
                "index": tool_index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": arguments},
            }
            self._emit(out, {"tool_calls": [call]}, len(arguments))
        else:
            self._blocks[index] = ["other", None, False]  # redacted_thinking, server tools: not shown
            if kind == "redacted_thinking":
                self._signed[index] = {"type": "redacted_thinking", "data": block.get("data") or ""}

    def _delta(self, obj: dict[str, Any], out: list[dict[str, Any]]) -> None:
        delta = obj.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if text:
                self._emit(out, {"content": text}, len(text))
        elif kind == "input_json_delta":
            state = self._blocks.get(obj.get("index"))
            partial = delta.get("partial_json")
            if state is not None and state[0] == "tool" and partial:
                state[2] = True
                self._emit(out, {"tool_calls": [{"index": state[1], "function": {"arguments": partial}}]}, len(partial))
        elif kind == "thinking_delta":
            text = delta.get("thinking")
            if text:
                signed = self._signed.get(obj.get("index"))
                if signed is not None:
                    signed["parts"].append(text)
                if self.show_thinking:
                    self._emit(out, {"reasoning_content": text}, len(text))
                else:
                    self._chars += len(text)  # billed output even when not shown
        elif kind == "signature_delta":
            signed = self._signed.get(obj.get("index"))
            if signed is not None:
                signed["signature"] = delta.get("signature") or ""
        # citations_delta: nothing to show


adapter = register(AnthropicMessagesAdapter())
