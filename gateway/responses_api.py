"""`POST /api/v1/responses`: OpenAI's Responses API shape in, served by the chat pipeline, Responses shape out.

Reverse translation: the Responses request becomes a chat-completions body, validated against the model's spec
like any chat request, so the same pipeline (auth, limits, failover over chat and Responses routes, usage
record, cost) serves it; the chat answer is then re-shaped (`object: "response"`, `output` items, usage with
`input_tokens`/`output_tokens`, their details and Omixa's `cost`), and a chat stream becomes the Responses
event sequence (gateway/responses_stream.py). Pure: no I/O, no ORM.

Stateless: nothing is stored, so `previous_response_id` and `conversation` are a 400 saying so (send the
whole conversation in `input`; earlier `output` items may be passed back as input items), and `store` is
answered `false` (a Responses route still sends `store: false` upstream unless its operator turned retention
on). Reasoning items passed back in `input` carry nothing a chat route can use and are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.http import HttpResponse

from gateway.spec import ModelSpec, validate_chat
from gateway.types import ChatRequest, RequestRejected

# Top-level fields accepted here, and where each goes in the chat body (None: handled below).
_SAME = (
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "metadata",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
    "presence_penalty",
    "frequency_penalty",
    "top_logprobs",
)
_HANDLED = frozenset(
    (
        "model input instructions max_output_tokens reasoning text tools tool_choice stream stream_options store "
        "include truncation background previous_response_id conversation prompt max_tool_calls"
    ).split()
) | frozenset(_SAME)
# Chat-completions fields sent here by mistake: the Responses API's own answer names the new place.
_MOVED = {
    "messages": "input",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
    "max_completion_tokens": "max_output_tokens",
}
_STATEFUL = {
    "previous_response_id": "Omixa's Responses endpoint is stateless and stores no responses, so "
    "'previous_response_id' is not supported. Send the whole conversation in 'input' (earlier output items, "
    "function calls and their outputs can be passed back as input items).",
    "conversation": "Omixa's Responses endpoint is stateless and stores no conversations, so 'conversation' is not "
    "supported. Send the whole conversation in 'input'.",
    "prompt": "Stored prompts are not supported by Omixa's Responses endpoint. Send 'instructions' and 'input'.",
}
_CHAT_TO_RESPONSES = (
    ("max_completion_tokens", "max_output_tokens"),
    ("show_thinking", "reasoning.summary"),
    ("verbosity", "text.verbosity"),
    ("reasoning_effort", "reasoning.effort"),
    ("response_format.json_schema", "text.format"),
    ("response_format", "text.format"),
)
_MESSAGE_PATH = re.compile(r"^messages\[(\d+)\]")


def _reject(message: str, param: str | None, code: str | None = "invalid_value") -> RequestRejected:
    return RequestRejected(message, param=param, code=code)


def _type_error(path: str, expected: str, value: Any) -> RequestRejected:
    kind = (
        "null"
        if value is None
        else "a boolean"
        if isinstance(value, bool)
        else "a string"
        if isinstance(value, str)
        else "an array"
        if isinstance(value, list)
        else "an object"
        if isinstance(value, dict)
        else "a number"
    )
    return _reject(f"Invalid type for '{path}': expected {expected}, but got {kind} instead.", path, "invalid_type")


@dataclass(slots=True)
class Context:
    """What the answer echoes of the request, and where each chat message came from (for error paths)."""

    request: dict[str, Any]
    origins: list[str] = field(default_factory=list)
    show_thinking: bool = False


# ----------------------------------------------------------------------------------------------------
# request: Responses → chat


def _content(value: Any, path: str, role: str) -> Any:
    """Responses message content → chat content (a string stays a string)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _type_error(path, "a string or an array of content parts", value)
    parts: list[dict[str, Any]] = []
    for k, part in enumerate(value):
        ppath = f"{path}[{k}]"
        if not isinstance(part, dict):
            raise _type_error(ppath, "an object", part)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text")})
        elif kind == "refusal" and role == "assistant":
            parts.append({"type": "refusal", "refusal": part.get("refusal")})
        elif kind == "input_image":
            if not part.get("image_url"):
                raise _reject(
                    f"Invalid '{ppath}': Omixa takes images as 'image_url' (an https URL or a base64 data URL); "
                    "'file_id' is not supported.",
                    f"{ppath}.image_url",
                    "unsupported_parameter",
                )
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file":
            file = {key: part[key] for key in ("file_data", "file_id", "filename") if part.get(key) is not None}
            if part.get("file_url"):
                raise _reject(
                    f"Invalid '{ppath}.file_url': remote files are not fetched; send 'file_data' (base64).",
                    f"{ppath}.file_url",
                    "unsupported_parameter",
                )
            parts.append({"type": "file", "file": file})
        else:
            raise _reject(
                f"Invalid value for '{ppath}.type': '{kind}'. Supported values are: 'input_text', 'input_image' and "
                "'input_file' (and 'output_text' or 'refusal' in assistant messages).",
                f"{ppath}.type",
            )
    return parts


def _messages(value: Any, instructions: Any) -> tuple[list[dict[str, Any]], list[str]]:
    messages: list[dict[str, Any]] = []
    origins: list[str] = []
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _type_error("instructions", "a string", instructions)
        messages.append({"role": "system", "content": instructions})
        origins.append("instructions")
    if isinstance(value, str):
        messages.append({"role": "user", "content": value})
        origins.append("input")
        return messages, origins
    if not isinstance(value, list):
        raise _type_error("input", "a string or an array of input items", value)
    for i, item in enumerate(value):
        path = f"input[{i}]"
        if not isinstance(item, dict):
            raise _type_error(path, "an input item", item)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise _reject(
                    f"Invalid value for '{path}.role': '{role}'. Supported values are: 'user', 'assistant', 'system' "
                    "and 'developer'.",
                    f"{path}.role",
                )
            if "content" not in item:
                raise _reject(
                    f"Missing required parameter: '{path}.content'.", f"{path}.content", "missing_required_parameter"
                )
            messages.append({"role": role, "content": _content(item["content"], f"{path}.content", role)})
            origins.append(path)
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":  # parallel calls, or text then calls: one turn
                last.setdefault("tool_calls", []).append(call)
                if last.get("content") == "":
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
                origins.append(path)
        elif kind == "function_call_output":
            output = item.get("output")
            if isinstance(output, list):  # output content parts: their text
                output = "".join(p.get("text") or "" for p in output if isinstance(p, dict))
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": output})
            origins.append(path)
        elif kind == "reasoning":
            continue  # a previous turn's reasoning: nothing a stateless chat route can take
        elif kind == "item_reference":
            raise _reject(
                f"Invalid '{path}': item references need stored responses, which Omixa's stateless Responses endpoint "
                "does not keep. Send the item itself.",
                f"{path}.type",
            )
        else:
            raise _reject(
                f"Invalid value for '{path}.type': '{kind}'. Supported values are: 'message', 'function_call', "
                "'function_call_output' and 'reasoning'.",
                f"{path}.type",
            )
    return messages, origins


def _tools(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _type_error("tools", "an array", value)
    tools = []
    for k, tool in enumerate(value):
        path = f"tools[{k}]"
        if not isinstance(tool, dict):
            raise _type_error(path, "an object", tool)
        if tool.get("type") != "function":
            raise _reject(
                f"Invalid value for '{path}.type': '{tool.get('type')}'. Omixa serves function tools only.",
                f"{path}.type",
            )
        if "function" in tool and "name" not in tool:
            raise _reject(
                f"Missing required parameter: '{path}.name'. Responses tools are flat: "
                '{"type": "function", "name": ..., "parameters": ...}.',
                f"{path}.name",
                "missing_required_parameter",
            )
        fn = {key: tool[key] for key in ("name", "description", "parameters") if tool.get(key) is not None}
        if tool.get("strict") is not None:
            fn["strict"] = tool["strict"]
        tools.append({"type": "function", "function": fn})
    return tools


def _tool_choice(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("type") != "function" or "name" not in value:
            raise _reject(
                "Invalid 'tool_choice': expected 'none', 'auto', 'required' or "
                '{"type": "function", "name": ...}.',
                "tool_choice",
            )
        return {"type": "function", "function": {"name": value["name"]}}
    return value


def _text(value: Any, chat: dict[str, Any]) -> None:
    if not isinstance(value, dict):
        raise _type_error("text", "an object", value)
    fmt = value.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict):
            raise _type_error("text.format", "an object", fmt)
        kind = fmt.get("type")
        if kind == "json_schema":
            schema = {key: fmt[key] for key in ("name", "schema", "description", "strict") if fmt.get(key) is not None}
            chat["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif kind in ("text", "json_object"):
            chat["response_format"] = {"type": kind}
        else:
            raise _reject(
                f"Invalid value for 'text.format.type': '{kind}'. Supported values are: 'text', 'json_object' and "
                "'json_schema'.",
                "text.format.type",
            )
    if value.get("verbosity") is not None:
        chat["verbosity"] = value["verbosity"]


def to_chat(payload: dict[str, Any], spec: ModelSpec) -> tuple[ChatRequest, Context]:
    """A Responses request → the chat request the pipeline serves, validated against the model's spec."""
    body = {k: v for k, v in payload.items() if v is not None or k == "model"}  # null: not sent
    for key in body:
        if key in _MOVED:
            raise _reject(
                f"Unsupported parameter: '{key}'. In the Responses API, this parameter has moved to '{_MOVED[key]}'.",
                key,
                "unsupported_parameter",
            )
        if key not in _HANDLED:
            raise _reject(f"Unknown parameter: '{key}'.", key, "unknown_parameter")
    for key, message in _STATEFUL.items():
        if key in body:
            raise _reject(message, key, "unsupported_parameter")
    if body.get("background"):
        raise _reject("Background responses are not supported: Omixa answers in the request.", "background")
    if body.get("include"):
        raise _reject(
            "Unsupported parameter: 'include'. Omixa's Responses endpoint returns no extra output data "
            "(nothing is stored, no encrypted reasoning, no logprobs).",
            "include",
            "unsupported_parameter",
        )
    if body.get("truncation", "disabled") != "disabled":
        raise _reject("Unsupported value: 'truncation' must be 'disabled' (the default).", "truncation")
    if "max_tool_calls" in body:
        raise _reject("Unsupported parameter: 'max_tool_calls'.", "max_tool_calls", "unsupported_parameter")
    if "input" not in body:
        raise _reject("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or set(options) - {"include_obfuscation"}):
        raise _reject("Invalid 'stream_options': only 'include_obfuscation' is accepted.", "stream_options")

    messages, origins = _messages(body["input"], body.get("instructions"))
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if "tools" in body:
        chat["tools"] = _tools(body["tools"])
    if "tool_choice" in body:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if "max_output_tokens" in body:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    show_thinking = False
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise _type_error("reasoning", "an object", reasoning)
        if reasoning.get("effort") is not None:
            chat["reasoning_effort"] = reasoning["effort"]
        summary = reasoning.get("summary") or reasoning.get("generate_summary")
        if summary is not None:
            if summary not in ("auto", "concise", "detailed"):
                raise _reject(
                    f"Invalid value: '{summary}'. Supported values are: 'concise', 'detailed', and 'auto'.",
                    "reasoning.summary",
                )
            show_thinking = True
            chat["show_thinking"] = True
    if "text" in body:
        _text(body["text"], chat)
    for key in _SAME:
        if key in body:
            chat[key] = body[key]
    if "store" in body and not isinstance(body["store"], bool):
        raise _type_error("store", "a boolean", body["store"])
    # `store` asks for a stored response object; this endpoint stores none and answers `store: false`, and
    # it is not chat's `store` (distillation), so it is not forwarded. A Responses route stores per its flag.
    if body.get("stream") is not None:
        chat["stream"] = body["stream"]

    try:
        request = validate_chat(chat, spec)
    except RequestRejected as exc:
        raise _renamed(exc, origins) from None
    if request.stream:
        request.include_usage = True  # the usage chunk becomes response.completed's usage
    return request, Context(request=body, origins=origins, show_thinking=show_thinking)


def _renamed(exc: RequestRejected, origins: list[str]) -> RequestRejected:
    """A chat validation error, with the Responses request's names for the parameter."""
    param, message = exc.param, exc.message
    if param:
        new = param
        match = _MESSAGE_PATH.match(param)
        if match and int(match.group(1)) < len(origins):
            new = origins[int(match.group(1))] + param[match.end() :]
        elif param == "messages":
            new = "input"
        else:
            for old, replacement in _CHAT_TO_RESPONSES:
                if param == old or param.startswith(old + "."):
                    new = replacement + param[len(old) :]
                    break
            new = re.sub(r"^tools\[(\d+)\]\.function\.", r"tools[\1].", new).replace(
                "tool_choice.function.", "tool_choice."
            )
        if new != param:
            message = message.replace(param, new)
            param = new
    for old, replacement in _CHAT_TO_RESPONSES:
        message = message.replace(f"'{old}'", f"'{replacement}'")
    return RequestRejected(message, param=param, code=exc.code, status=exc.status)


# ----------------------------------------------------------------------------------------------------
# answer: chat → Responses


def response_id(request_id: str) -> str:
    return "resp_" + request_id.replace("-", "")


def usage_object(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat usage (with Omixa's cost) → Responses usage."""
    if not usage:
        return None
    out = {
        "input_tokens": usage.get("prompt_tokens", 0),
        "input_tokens_details": {"cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)},
        "output_tokens": usage.get("completion_tokens", 0),
        "output_tokens_details": {
            "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
        },
        "total_tokens": usage.get("total_tokens", 0),
        "cost": usage.get("cost"),
    }
    if usage.get("estimated"):
        out["estimated"] = True
    return out


def base_response(ctx: Context, rid: str, model: str, created: int) -> dict[str, Any]:
    """The `response` object before any output: what the request asked, echoed."""
    req = ctx.request
    reasoning = req.get("reasoning") if isinstance(req.get("reasoning"), dict) else {}
    text = req.get("text") if isinstance(req.get("text"), dict) else {}
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "service_tier": req.get("service_tier", "auto"),
        "store": False,
        "temperature": req.get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity", "medium")},
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": req.get("tools") or [],
        "top_logprobs": req.get("top_logprobs", 0),
        "top_p": req.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": req.get("user"),
        "metadata": req.get("metadata") or {},
    }


def finish(response: dict[str, Any], finish_reason: str | None) -> None:
    """Set the terminal status from chat's finish reason."""
    if finish_reason == "length":
        response["status"], response["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        response["status"], response["incomplete_details"] = "incomplete", {"reason": "content_filter"}
    else:
        response["status"] = "completed"


def output_items(rid: str, message: dict[str, Any], *, complete: bool = True) -> list[dict[str, Any]]:
    """A chat answer's message → Responses output items (reasoning, message, function calls)."""
    items: list[dict[str, Any]] = []
    tag = rid[5:]
    reasoning = message.get("reasoning_content")
    if reasoning:
        items.append({"id": f"rs_{tag}", "type": "reasoning", "summary": [{"type": "summary_text", "text": reasoning}]})
    parts: list[dict[str, Any]] = []
    if message.get("content"):
        parts.append({"type": "output_text", "text": message["content"], "annotations": [], "logprobs": []})
    if message.get("refusal"):
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    if parts or not message.get("tool_calls"):
        items.append(
            {
                "id": f"msg_{tag}",
                "type": "message",
                "status": "completed" if complete else "incomplete",
                "role": "assistant",
                "content": parts,
            }
        )
    for k, call in enumerate(message.get("tool_calls") or ()):
        fn = call.get("function") or {}
        items.append(
            {
                "id": f"fc_{tag}_{k}",
                "type": "function_call",
                "status": "completed",
                "arguments": fn.get("arguments") or "",
                "call_id": call.get("id"),
                "name": fn.get("name"),
            }
        )
    return items


def completion_to_response(completion: dict[str, Any], ctx: Context, request_id: str) -> dict[str, Any]:
    rid = response_id(request_id)
    response = base_response(ctx, rid, completion.get("model") or "", int(completion.get("created") or 0))
    choice = (completion.get("choices") or [{}])[0]
    finish(response, choice.get("finish_reason"))
    response["output"] = output_items(rid, choice.get("message") or {}, complete=response["status"] == "completed")
    if completion.get("service_tier"):
        response["service_tier"] = completion["service_tier"]
    response["usage"] = usage_object(completion.get("usage"))
    return response


def answer(chat_response: HttpResponse, ctx: Context, request_id: str) -> HttpResponse:
    """The pipeline's non-stream answer, re-shaped; errors (already OpenAI's shape) pass unchanged."""
    if chat_response.status_code != 200:
        return chat_response
    completion = orjson.loads(chat_response.content)
    response = HttpResponse(
        orjson.dumps(completion_to_response(completion, ctx, request_id)), content_type="application/json"
    )
    copy_headers(chat_response, response)
    return response


def copy_headers(source: HttpResponse, target: HttpResponse) -> None:
    for name, value in source.items():
        if name.lower() not in ("content-type", "content-length"):
            target[name] = value
