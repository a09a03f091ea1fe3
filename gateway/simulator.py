"""A simulated OpenAI-family upstream: pure, deterministic generation of chat-completion answers.

Used by the offline simulator views (`make run`) and by the test mock upstream (tests/mocks/upstream.py).
It plays the *provider*, not Omixa: it validates what the real services validate, answers in their exact
wire shape (OpenAI, or Azure OpenAI v1 with its content-filter annotations) and shares no code with the
adapters, so an adapter bug cannot hide behind a mock that makes the same assumption.

    answer = simulate(body, flavor="azure", reasoning=True)
    answer.completion()      # non-stream JSON body (dict)
    answer.sse()             # list of SSE event bytes, ending with b"data: [DONE]\\n\\n"
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Flavor = Literal["openai", "azure"]

# What the real endpoints accept at the top level (openai-openapi CreateChatCompletionRequest; Azure v1).
OPENAI_FIELDS = frozenset(
    "model messages audio frequency_penalty function_call functions logit_bias logprobs max_completion_tokens "
    "max_tokens metadata modalities n parallel_tool_calls prediction presence_penalty prompt_cache_key "
    "prompt_cache_retention reasoning_effort response_format safety_identifier seed service_tier stop store "
    "stream stream_options temperature tool_choice tools top_logprobs top_p user verbosity web_search_options".split()
)
AZURE_FIELDS = (OPENAI_FIELDS | {"data_sources", "user_security_context"}) - {"web_search_options"}
ROLES = ("developer", "system", "user", "assistant", "tool", "function")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_REASONING_UNSUPPORTED = (
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
)
_EFFORT_TOKENS = {"none": 0, "minimal": 16, "low": 64, "medium": 192, "high": 512, "xhigh": 1024}

_SAFE = {"filtered": False, "severity": "safe"}
CONTENT_FILTER_RESULTS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
PROMPT_FILTER_RESULTS = [
    {
        "prompt_index": 0,
        "content_filter_results": {
            **CONTENT_FILTER_RESULTS,
            "jailbreak": {"filtered": False, "detected": False},
        },
    }
]


def is_reasoning_deployment(name: str) -> bool:
    """Name heuristic for the offline simulator (the test mock configures deployments explicitly)."""
    n = name.lower()
    return n.startswith(("o1", "o3", "o4", "gpt-5")) or "codex" in n or "reason" in n


# ----------------------------------------------------------------------------------------------------
# provider-faithful validation


@dataclass(slots=True)
class ProviderError(Exception):
    """A provider error answer: HTTP status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def openai_error(
    status: int,
    message: str,
    *,
    type: str | None = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> ProviderError:
    return ProviderError(status, {"error": {"message": message, "type": type, "param": param, "code": code}})


def error_for(
    status: int, flavor: Flavor, *, code: str | None = None, retry_after: float | None = None
) -> ProviderError:
    """The body each provider really sends for a status (providers.md §1-2)."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["retry-after"] = str(max(int(retry_after + 0.999), 0))
        headers["retry-after-ms"] = str(int(retry_after * 1000))
    azure = flavor == "azure"
    if status == 401:
        if azure:
            err = ProviderError(
                401,
                {
                    "error": {
                        "code": "401",
                        "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
                        "provide a valid key for an active subscription and use a correct regional API endpoint for "
                        "your resource.",
                    }
                },
            )
        else:
            err = openai_error(
                401,
                "Incorrect API key provided: sk-****. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
    elif status == 403:
        err = openai_error(
            403,
            "Country, region, or territory not supported",
            type="request_forbidden",
            code="unsupported_country_region_territory",
        )
    elif status == 404:
        err = not_found("", flavor)
    elif status == 408:
        err = openai_error(408, "Request timed out.", type="timeout", code="request_timeout")
    elif status == 429 and code == "insufficient_quota":
        err = openai_error(
            429,
            "You exceeded your current quota, please check your plan and billing details. For more information on "
            "this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
            type="insufficient_quota",
            code="insufficient_quota",
        )
    elif status == 429:
        secs = int(retry_after + 0.999) if retry_after is not None else 1
        if azure:
            err = ProviderError(
                429,
                {
                    "error": {
                        "code": "429",
                        "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version v1 "
                        "have exceeded token rate limit of your current AIServices S0 pricing tier. Please retry "
                        f"after {secs} seconds.",
                    }
                },
            )
        else:
            err = openai_error(
                429,
                f"Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in {secs}s.",
                type="requests",
                code="rate_limit_exceeded",
            )
    elif status == 503:
        err = openai_error(
            503, "The engine is currently overloaded, please try again later.", type="server_error", code=code
        )
    elif status >= 500:
        if azure:
            err = ProviderError(
                status,
                {
                    "error": {
                        "code": "InternalServerError",
                        "message": "The server had an error while processing your request. Sorry about that!",
                    }
                },
            )
        else:
            err = openai_error(
                status,
                "The server had an error while processing your request. Sorry about that!",
                type="server_error",
                code=code,
            )
    else:
        err = openai_error(status, "Invalid request.", code=code)
    err.headers.update(headers)
    return err


def not_found(deployment: str, flavor: Flavor) -> ProviderError:
    if flavor == "azure":
        return ProviderError(
            404,
            {
                "error": {
                    "code": "DeploymentNotFound",
                    "message": "The API deployment for this resource does not exist. If you created the deployment "
                    "within the last 5 minutes, please wait a moment and try again.",
                }
            },
        )
    return openai_error(
        404, f"The model `{deployment}` does not exist or you do not have access to it.", code="model_not_found"
    )


def unauthorized(flavor: Flavor) -> ProviderError:
    return error_for(401, flavor)


def validate(body: Any, flavor: Flavor, *, reasoning: bool) -> None:
    """Raise ProviderError for what the real endpoint rejects with a 400."""
    if not isinstance(body, dict):
        raise openai_error(400, "We could not parse the JSON body of your request.")
    allowed = AZURE_FIELDS if flavor == "azure" else OPENAI_FIELDS
    for name in body:
        if name not in allowed:
            raise openai_error(400, f"Unrecognized request argument supplied: {name}")
    for name in ("model", "messages"):
        if name not in body:
            raise openai_error(
                400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise openai_error(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param="messages",
            code="empty_array",
        )
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ROLES:
            raise openai_error(
                400,
                f"Invalid value: '{role}'. Supported values are: 'developer', 'system', 'user', 'assistant', 'tool', and 'function'.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
    if "stream_options" in body and not body.get("stream"):
        raise openai_error(
            400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    if reasoning:
        for name in _REASONING_UNSUPPORTED:
            if name in body:
                hint = " Use 'max_completion_tokens' instead." if name == "max_tokens" else ""
                raise openai_error(
                    400,
                    f"Unsupported parameter: '{name}' is not supported with this model.{hint}",
                    param=name,
                    code="unsupported_parameter",
                )
        for name in ("temperature", "top_p"):
            if name in body and body[name] != 1:
                raise openai_error(
                    400,
                    f"Unsupported value: '{name}' does not support {body[name]} with this model. Only the default (1) value is supported.",
                    param=name,
                    code="unsupported_value",
                )
        effort = body.get("reasoning_effort")
        if effort is not None and effort not in REASONING_EFFORTS:
            raise openai_error(
                400,
                f"Invalid value: '{effort}'. Supported values are: 'low', 'medium', and 'high'.",
                param="reasoning_effort",
                code="invalid_value",
            )
    elif "reasoning_effort" in body:
        raise openai_error(
            400,
            "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
            param="reasoning_effort",
            code="unsupported_parameter",
        )


# ----------------------------------------------------------------------------------------------------
# generation


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                if part.get("type") == "text" and isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif part.get("type") in ("image_url", "input_image"):
                    out.append("[image]")
                elif part.get("type") == "file":
                    out.append("[file]")
        return " ".join(out)
    return ""


def prompt_tokens_of(body: dict[str, Any]) -> int:
    """~4 characters per token over every message's text, 3 tokens of framing per message, plus tools."""
    total = 3
    for msg in body.get("messages") or ():
        if not isinstance(msg, dict):
            continue
        total += 3 + estimate_tokens(_text_of(msg.get("content")))
        for call in msg.get("tool_calls") or ():
            total += estimate_tokens(json.dumps(call, sort_keys=True))
        # an image part costs more than its placeholder
        if isinstance(msg.get("content"), list):
            total += 85 * sum(1 for p in msg["content"] if isinstance(p, dict) and p.get("type") == "image_url")
    if body.get("tools"):
        total += estimate_tokens(json.dumps(body["tools"], sort_keys=True))
    return total


def cached_tokens_of(prompt_tokens: int) -> int:
    """OpenAI-like prompt caching: a 1024-token-aligned prefix is a cache hit once the prompt is long."""
    if prompt_tokens <= 1024:
        return 0
    return ((prompt_tokens - 1) // 1024) * 1024


def last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _text_of(msg.get("content"))
    return ""


def answer_text(body: dict[str, Any]) -> str:
    words = last_user_text(body).split()
    if not words:
        return "Hello! This is a simulated answer with nothing to summarize."
    gist = " ".join(words[:12]) + (" ..." if len(words) > 12 else "")
    return f"You asked about: {gist}. This simulated answer has {len(words)} words to summarize, and no real model behind it."


def _schema_value(name: str, schema: Any, user_text: str) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if isinstance(schema, dict) and schema.get("enum"):
        return schema["enum"][0]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    digits = next((w.strip(".,;:!?\"'()") for w in user_text.split() if any(c.isdigit() for c in w)), None)
    return digits or f"sim-{name}"


def choose_tool_calls(body: dict[str, Any]) -> list[tuple[str, str]]:
    """[(function name, JSON arguments)] when the request calls for a tool call, else []."""
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("type", "function") == "function"]
    if not tools:
        return []
    choice = body.get("tool_choice", "auto")
    user_text = last_user_text(body)
    by_name = {t.get("function", {}).get("name"): t for t in tools}
    picked = None
    if isinstance(choice, dict):
        picked = by_name.get((choice.get("function") or {}).get("name"))
    elif choice == "required":
        picked = tools[0]
    elif choice == "auto":
        # a tool whose name the user mentions (with or without underscores)
        low = user_text.lower()
        picked = next(
            (t for n, t in by_name.items() if n and (n.lower() in low or n.replace("_", " ").lower() in low)), None
        )
        # the conversation already answered the call: reply in text
        if (body.get("messages") or [{}])[-1].get("role") == "tool":
            picked = None
    if not picked:
        return []
    fn = picked.get("function") or {}
    params = fn.get("parameters") or {}
    props = params.get("properties") or {}
    required = params.get("required") or list(props)
    args = {name: _schema_value(name, props.get(name, {}), user_text) for name in required}
    return [(fn.get("name", "tool"), json.dumps(args, separators=(",", ":")))]


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(slots=True)
class Answer:
    """One simulated answer; render it with `completion()` or `sse()`."""

    flavor: Flavor
    model: str
    id: str
    created: int
    text: str | None
    tool_calls: list[tuple[str, str]]
    tool_call_ids: list[str]
    reasoning_text: str | None
    finish_reason: str
    n: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    service_tier: str | None
    include_usage: bool
    system_fingerprint: str = "fp_omixa_sim"
    word_chunks: list[str] = field(default_factory=list)
    arg_chunk_chars: int = 7

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": self.text, "refusal": None, "annotations": []}
        if self.tool_calls:
            msg["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, (name, args) in zip(self.tool_call_ids, self.tool_calls, strict=True)
            ]
        if self.reasoning_text is not None:
            msg["reasoning_content"] = self.reasoning_text
        return msg

    def completion(self) -> dict[str, Any]:
        """The non-stream 200 body."""
        choices = []
        for i in range(self.n):
            choice: dict[str, Any] = {
                "index": i,
                "message": self._message(),
                "logprobs": None,
                "finish_reason": self.finish_reason,
            }
            if self.flavor == "azure":
                choice = {"content_filter_results": CONTENT_FILTER_RESULTS, **choice}
            choices.append(choice)
        out: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage(),
            "service_tier": self.service_tier,
            "system_fingerprint": self.system_fingerprint,
        }
        if self.flavor == "azure":
            out["prompt_filter_results"] = PROMPT_FILTER_RESULTS
        return out

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": self.service_tier,
            "system_fingerprint": self.system_fingerprint,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def _choice(self, index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        if self.flavor == "azure":
            choice = {"content_filter_results": {} if finish or "role" in delta else CONTENT_FILTER_RESULTS, **choice}
        return choice

    def annotation_chunk(self) -> dict[str, Any]:
        """Azure's first stream event: prompt filter results only."""
        return {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": PROMPT_FILTER_RESULTS,
        }

    def content_chunks(self, index: int = 0) -> list[dict[str, Any]]:
        """The chunks of one choice between the role chunk and the finish chunk."""
        out = []
        if self.reasoning_text:
            for word in _split_words(self.reasoning_text):
                out.append(self._chunk([self._choice(index, {"reasoning_content": word})]))
        if self.tool_calls:
            for ti, ((_name, args), _cid) in enumerate(zip(self.tool_calls, self.tool_call_ids, strict=True)):
                step = self.arg_chunk_chars
                for j in range(0, len(args), step):
                    out.append(
                        self._chunk(
                            [
                                self._choice(
                                    index,
                                    {"tool_calls": [{"index": ti, "function": {"arguments": args[j : j + step]}}]},
                                )
                            ]
                        )
                    )
        elif self.text:
            for word in self.word_chunks:
                out.append(self._chunk([self._choice(index, {"content": word})]))
        return out

    def role_chunk(self, index: int = 0) -> dict[str, Any]:
        delta: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        if self.tool_calls:
            delta = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"index": ti, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
                    for ti, ((name, _a), cid) in enumerate(zip(self.tool_calls, self.tool_call_ids, strict=True))
                ],
                "refusal": None,
            }
        return self._chunk([self._choice(index, delta)])

    def content_delta(self, text: str, index: int = 0) -> dict[str, Any]:
        return self._chunk([self._choice(index, {"content": text})])

    def finish_chunk(self, index: int = 0) -> dict[str, Any]:
        return self._chunk([self._choice(index, {}, self.finish_reason)])

    def trailing_annotation_chunk(self, index: int = 0) -> dict[str, Any]:
        """Azure: a content-filter annotation for the choice, with no delta (after the finish chunk)."""
        chunk = self._chunk(
            [
                {
                    "index": index,
                    "finish_reason": None,
                    "content_filter_offsets": {
                        "check_offset": 0,
                        "start_offset": 0,
                        "end_offset": len(self.text or ""),
                    },
                    "content_filter_results": CONTENT_FILTER_RESULTS,
                }
            ]
        )
        chunk.pop("usage", None)
        return chunk

    def usage_chunk(self) -> dict[str, Any]:
        chunk = self._chunk([])
        chunk["usage"] = self.usage()
        return chunk

    def chunks(self) -> list[dict[str, Any]]:
        """Every stream event (as dicts) before `[DONE]`, in the provider's order."""
        out: list[dict[str, Any]] = []
        if self.flavor == "azure":
            out.append(self.annotation_chunk())
        for i in range(self.n):
            out.append(self.role_chunk(i))
            out.extend(self.content_chunks(i))
            out.append(self.finish_chunk(i))
            if self.flavor == "azure":
                out.append(self.trailing_annotation_chunk(i))
        if self.include_usage:
            out.append(self.usage_chunk())
        return out

    def sse(self) -> list[bytes]:
        return [sse_event(c) for c in self.chunks()] + [DONE]


DONE = b"data: [DONE]\n\n"


def sse_event(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _split_words(text: str) -> list[str]:
    """'a b c' → ['a', ' b', ' c'] (token-like pieces whose concatenation is the text)."""
    parts = text.split(" ")
    return [parts[0]] + [" " + p for p in parts[1:]] if parts else []


def simulate(
    body: dict[str, Any],
    *,
    flavor: Flavor = "openai",
    reasoning: bool | None = None,
    supports_priority: bool = True,
    created: int | None = None,
    text: str | None = None,
    tool_calls: list[tuple[str, dict[str, Any] | str]] | None = None,
    reasoning_text: str | None = None,
    arg_chunk_chars: int = 7,
) -> Answer:
    """Generate the deterministic answer to `body` (already validated). Overrides: `text`, `tool_calls`
    (forced [(name, args)]), `reasoning_text` (emitted as `reasoning_content`, which some routes send)."""
    model = str(body.get("model", ""))
    if reasoning is None:
        reasoning = is_reasoning_deployment(model)
    digest = _digest(body)
    if tool_calls is not None:
        calls = [(n, a if isinstance(a, str) else json.dumps(a, separators=(",", ":"))) for n, a in tool_calls]
    else:
        calls = choose_tool_calls(body)
    content = None if calls else (text if text is not None else answer_text(body))
    words = _split_words(content) if content else []

    reasoning_tokens = 0
    if reasoning:
        reasoning_tokens = _EFFORT_TOKENS.get(str(body.get("reasoning_effort") or "medium"), 192)
    out_tokens = sum(estimate_tokens(a) + 8 for _n, a in calls) if calls else max(len(words), 1 if content else 0)
    finish = "tool_calls" if calls else "stop"
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and not isinstance(limit, bool) and reasoning_tokens + out_tokens > limit:
        reasoning_tokens = min(reasoning_tokens, limit)
        room = max(limit - reasoning_tokens, 0)
        calls = []
        words = words[:room] if content else []
        content = "".join(words)
        out_tokens = len(words)
        finish = "length"
    n = body.get("n") or 1
    n = n if isinstance(n, int) and 1 <= n <= 8 else 1

    requested = body.get("service_tier")
    if flavor == "azure":
        tier = "priority" if requested == "priority" and supports_priority else ("default" if requested else None)
    else:
        tier = (
            "priority"
            if requested in ("priority", "fast") and supports_priority
            else (requested if requested in ("flex", "scale") else "default")
        )

    prompt = prompt_tokens_of(body)
    stream_options = body.get("stream_options") or {}
    return Answer(
        flavor=flavor,
        model=model,
        id="chatcmpl-sim" + digest[:20],
        created=int(time.time()) if created is None else created,
        text=content,
        tool_calls=calls,
        tool_call_ids=["call_" + hashlib.sha256(f"{digest}{i}".encode()).hexdigest()[:24] for i in range(len(calls))],
        reasoning_text=reasoning_text,
        finish_reason=finish,
        n=n,
        prompt_tokens=prompt,
        cached_tokens=cached_tokens_of(prompt),
        completion_tokens=(out_tokens + reasoning_tokens) * n,
        reasoning_tokens=reasoning_tokens * n,
        service_tier=tier,
        include_usage=bool(
            body.get("stream") and isinstance(stream_options, dict) and stream_options.get("include_usage")
        ),
        word_chunks=words,
        arg_chunk_chars=max(arg_chunk_chars, 1),
    )
