"""A chat request checked against its model's spec: the same rows the docs page renders.

Pure (no ORM, no I/O) and on the hot path: `ModelSpec.from_catalog` is built once per catalog model and
cached by the gateway; `validate_chat` walks the body once, copies only its top-level dict (never the
messages), and raises `RequestRejected` with OpenAI's wording and the JSON path of the offending value in
`param` (e.g. ``messages[2].content[0].image_url.url``).

Rules (DESIGN.md, "Decisions that close open questions" → "Requests", and the model page):
- the body's top-level fields are the spec's table rows, the model's `extra_fields` (OpenAI fields outside
  the table that it takes) and `stream_options` (always accepted); anything else is a 400 naming it
  (`unsupported_parameter`);
- each row's `type` and, where not null, its `accepted` values are enforced generically, so a catalog edit
  changes validation without a code change; known fields get their shape checked on top;
- rows flagged `strip` (temperature/top_p on reasoning models) are validated, then dropped silently;
- rows flagged `doc_only` (attachments) are documentation: sending one is a 400 pointing to message parts;
- `show_thinking` and `stream_options` leave the body and become `ChatRequest` fields; a JSON `null` for an
  optional field means "not sent" and is dropped;
- the output limit and the context window are enforced with an offline token estimate (gateway/tokens.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.tokens import estimate_chat_input_tokens
from gateway.types import ChatRequest, RequestRejected

__all__ = ["FieldSpec", "ModelSpec", "validate_chat"]

_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/_\-\s]*={0,2}\s*")

# OpenAI chat-completions fields: one of these that the model's table does not list is "not supported with
# this model"; any other name is an unrecognized argument. Both are 400 `unsupported_parameter`.
_OPENAI_FIELDS = frozenset(
    (
        "model messages audio frequency_penalty function_call functions logit_bias logprobs max_completion_tokens "
        "max_tokens metadata modalities n parallel_tool_calls prediction presence_penalty prompt_cache_key "
        "reasoning_effort response_format safety_identifier seed service_tier stop store stream stream_options "
        "temperature tool_choice tools top_logprobs top_p user verbosity web_search_options show_thinking"
    ).split()
)
# Omixa-only fields that become ChatRequest attributes and never travel upstream as sent.
_NOT_FORWARDED = frozenset(("show_thinking", "stream_options"))
_IMAGE_DETAILS = ("auto", "low", "high")
_TOOL_CHOICES = ("auto", "none", "required")
_RESPONSE_FORMATS = ("text", "json_object", "json_schema")
_MISSING: Any = object()


# --- error wording (OpenAI's) --------------------------------------------------------------------


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _quoted_list(values: tuple[str, ...] | list[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _invalid_type(path: str, expected: str, value: Any) -> RequestRejected:
    return RequestRejected(
        f"Invalid type for '{path}': expected {expected}, but got {_describe(value)} instead.",
        param=path,
        code="invalid_type",
    )


def _missing(path: str) -> RequestRejected:
    return RequestRejected(f"Missing required parameter: '{path}'.", param=path, code="missing_required_parameter")


def _invalid_value(path: str, value: Any, supported: tuple[str, ...] | list[str]) -> RequestRejected:
    shown = value if isinstance(value, str) else _json_scalar(value)
    return RequestRejected(
        f"Invalid value for '{path}': '{shown}'. Supported values are: {_quoted_list(supported)}.",
        param=path,
        code="invalid_value",
    )


def _invalid(path: str, why: str, code: str = "invalid_value") -> RequestRejected:
    return RequestRejected(f"Invalid '{path}': {why}", param=path, code=code)


def _out_of_range(path: str, value: int | float, low: float | None, high: float | None) -> RequestRejected:
    kind = "integer" if isinstance(value, int) else "decimal"
    if low is not None and value < low:
        return RequestRejected(
            f"Invalid '{path}': {kind} below minimum value. Expected a value >= {low:g}, but got {value} instead.",
            param=path,
            code=f"{kind}_below_min_value",
        )
    return RequestRejected(
        f"Invalid '{path}': {kind} above maximum value. Expected a value <= {high:g}, but got {value} instead.",
        param=path,
        code=f"{kind}_above_max_value",
    )


def _unsupported(name: str) -> RequestRejected:
    return RequestRejected(
        f"Unsupported parameter: '{name}' is not supported with this model.", param=name, code="unsupported_parameter"
    )


def _json_scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return str(value)


# --- type predicates for the table's `type` column -----------------------------------------------


def _is_number(v: Any) -> bool:
    t = type(v)
    return t is int or (t is float and math.isfinite(v))


# the table's `type` column → the Python types json gives for it (bool is not an integer) and the wording
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "string": ((str,), "a string"),
    "integer": ((int,), "an integer"),
    "number": ((int, float), "a number"),
    "boolean": ((bool,), "a boolean"),
    "array": ((list,), "an array"),
    "object": ((dict,), "an object"),
}


def _expected_phrase(phrases: list[str]) -> str:
    if len(phrases) <= 2:
        return " or ".join(phrases)
    return ", ".join(phrases[:-1]) + ", or " + phrases[-1]


# --- the spec ------------------------------------------------------------------------------------


def _bound(row: Mapping[str, Any], name: str) -> float | None:
    value = row.get(name)
    if value is not None and not _is_number(value):
        raise ValueError(f"spec row {row.get('name')!r}: {name!r} must be a number or null")
    return value


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One row of the model's request-fields table, exactly as the docs page renders it."""

    name: str
    type: str
    required: bool
    accepted: tuple[str, ...] | None
    description: str
    strip: bool = False
    doc_only: bool = False
    # A model's own bounds for a number row (Claude's temperature is 0-1), on top of OpenAI's range.
    minimum: float | None = None
    maximum: float | None = None
    # derived once: the row's top-level parameter names, the Python types its `type` allows, its accepted set
    params: tuple[str, ...] = field(init=False, compare=False, repr=False)
    py_types: frozenset[type] | None = field(init=False, compare=False, repr=False)
    expected: str = field(init=False, compare=False, repr=False)
    accepted_set: frozenset[str] | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = tuple(n.strip() for n in self.name.split("|"))
        object.__setattr__(self, "params", tuple(n for n in names if n and "[" not in n and "." not in n))
        known = [_TYPES[t.strip()] for t in self.type.split("|") if t.strip() in _TYPES]
        py_types = frozenset(t for types, _ in known for t in types)
        object.__setattr__(self, "py_types", py_types or None)  # None: a type the validator does not know
        object.__setattr__(self, "expected", _expected_phrase([phrase for _, phrase in known]))
        object.__setattr__(self, "accepted_set", None if self.accepted is None else frozenset(self.accepted))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> FieldSpec:
        accepted = row.get("accepted")
        if accepted is not None and not isinstance(accepted, list | tuple):
            raise ValueError(f"spec row {row.get('name')!r}: 'accepted' must be a list or null")
        return cls(
            name=str(row["name"]),
            type=str(row["type"]),
            required=bool(row.get("required", False)),
            accepted=None if accepted is None else tuple(str(a) for a in accepted),
            description=str(row.get("description", "")),
            strip=bool(row.get("strip", False)),
            doc_only=bool(row.get("doc_only", False)),
            minimum=_bound(row, "minimum"),
            maximum=_bound(row, "maximum"),
        )

    @property
    def required_label(self) -> str:
        return "Yes" if self.required else "No"

    @property
    def accepted_label(self) -> str:
        """The page's "Accepted values" cell: the accepted values and the row's own number range."""
        parts = [] if self.accepted is None else [", ".join(self.accepted)]
        if self.minimum is not None and self.maximum is not None:
            parts.append(f"{self.minimum:g} to {self.maximum:g}")
        elif self.minimum is not None:
            parts.append(f"at least {self.minimum:g}")
        elif self.maximum is not None:
            parts.append(f"at most {self.maximum:g}")
        return "; ".join(parts) or "Any valid value"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "accepted": None if self.accepted is None else list(self.accepted),
            "description": self.description,
            "strip": self.strip,
            "doc_only": self.doc_only,
        }


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What one catalog model accepts. Build it once per catalog version (`from_catalog`) and cache it."""

    slug: str
    reasoning: bool
    context_window: int
    max_output_tokens: int
    capabilities: frozenset[str]
    fields: tuple[FieldSpec, ...]
    roles: tuple[str, ...]
    content_parts: tuple[str, ...]
    extra_fields: tuple[str, ...]
    default_max_output_tokens: int
    # reasoning_effort value → a thinking-token budget, for families that take budgets (Gemini, Anthropic)
    reasoning_budgets: tuple[tuple[str, int], ...] = ()
    # derived lookups for validate_chat
    rows_by_param: Mapping[str, FieldSpec] = field(init=False, compare=False, repr=False)
    required_params: tuple[str, ...] = field(init=False, compare=False, repr=False)
    allowed_roles: frozenset[str] = field(init=False, compare=False, repr=False)
    allowed_parts: frozenset[str] = field(init=False, compare=False, repr=False)
    extra: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        by_param: dict[str, FieldSpec] = {}
        for row in self.fields:
            for param in row.params:
                by_param[param] = row
        object.__setattr__(self, "rows_by_param", MappingProxyType(by_param))
        object.__setattr__(
            self,
            "required_params",
            tuple(p for row in self.fields if row.required and not row.doc_only for p in row.params[:1]),
        )
        roles = frozenset(self.roles)
        if not self.has_tools:
            roles -= {"tool"}
        object.__setattr__(self, "allowed_roles", roles)
        parts = frozenset(self.content_parts)
        if "vision" not in self.capabilities:
            parts -= {"image_url"}
        object.__setattr__(self, "allowed_parts", parts)
        object.__setattr__(self, "extra", frozenset(self.extra_fields) | {"stream_options"})

    @property
    def has_tools(self) -> bool:
        return "tools" in self.capabilities

    def row(self, param: str) -> FieldSpec | None:
        """The table row that documents a top-level parameter (None when the table has none)."""
        return self.rows_by_param.get(param)

    @classmethod
    def from_catalog(
        cls,
        *,
        slug: str,
        reasoning: bool,
        context_window: int,
        max_output_tokens: int,
        capabilities: Any,
        spec: Mapping[str, Any],
    ) -> ModelSpec:
        """Build from a catalog entry (billing/catalog/models.json, or the Model row's columns)."""
        rows = spec.get("fields")
        if not isinstance(rows, list) or not rows:
            raise ValueError(f"model {slug!r}: spec.fields must be a non-empty list")
        default_max = spec.get("default_max_output_tokens") or min(4096, int(max_output_tokens))
        built = cls(
            slug=slug,
            reasoning=bool(reasoning),
            context_window=int(context_window),
            max_output_tokens=int(max_output_tokens),
            capabilities=frozenset(capabilities or ()),
            fields=tuple(FieldSpec.from_row(r) for r in rows),
            roles=tuple(spec.get("roles") or ("system", "developer", "user", "assistant")),
            content_parts=tuple(spec.get("content_parts") or ("text",)),
            extra_fields=tuple(spec.get("extra_fields") or ()),
            reasoning_budgets=tuple((str(k), int(v)) for k, v in (spec.get("reasoning_budgets") or {}).items()),
            default_max_output_tokens=int(default_max),
        )
        for needed in ("model", "messages"):
            row = built.rows_by_param.get(needed)
            if row is None or not row.required:
                raise ValueError(f"model {slug!r}: spec.fields needs a required {needed!r} row")
        return built

    @classmethod
    def from_model(cls, model: Any) -> ModelSpec:
        """Build from any object with the catalog attributes (e.g. billing.models.Model); reads, no queries."""
        return cls.from_catalog(
            slug=model.slug,
            reasoning=model.reasoning,
            context_window=model.context_window,
            max_output_tokens=model.max_output_tokens,
            capabilities=model.capabilities,
            spec=model.spec,
        )


# --- per-field checks (after the row's generic type check) -----------------------------------------


def _check_range(path: str, value: int | float, low: float | None, high: float | None) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        raise _out_of_range(path, value, low, high)


def _check_int(path: str, value: Any, low: int | None = None, high: int | None = None) -> None:
    if type(value) is not int:
        raise _invalid_type(path, "an integer", value)
    _check_range(path, value, low, high)


def _check_number(path: str, value: Any, low: float | None = None, high: float | None = None) -> None:
    if not _is_number(value):
        raise _invalid_type(path, "a number", value)
    _check_range(path, value, low, high)


def _check_str(path: str, value: Any) -> None:
    if type(value) is not str:
        raise _invalid_type(path, "a string", value)


def _check_bool(path: str, value: Any) -> None:
    if type(value) is not bool:
        raise _invalid_type(path, "a boolean", value)


def _check_object(path: str, value: Any) -> None:
    if type(value) is not dict:
        raise _invalid_type(path, "an object", value)


def _check_base64(path: str, data: str, *, media: str) -> None:
    """`data:<mime>;base64,<payload>` or a bare base64 payload."""
    payload = data
    if data.startswith("data:"):
        head, sep, payload = data.partition(",")
        if not sep or not head.endswith(";base64"):
            raise _invalid(path, f"expected a base64 data URL such as 'data:{media};base64,...'.")
    if not payload or _BASE64.fullmatch(payload) is None:
        raise _invalid(path, f"expected base64 data or a base64 data URL such as 'data:{media};base64,...'.")


def _check_text_part(part: dict, path: str) -> None:
    text = part.get("text", _MISSING)
    if text is _MISSING:
        raise _missing(f"{path}.text")
    _check_str(f"{path}.text", text)


def _check_image_part(part: dict, path: str) -> None:
    image = part.get("image_url", _MISSING)
    if image is _MISSING:
        raise _missing(f"{path}.image_url")
    _check_object(f"{path}.image_url", image)
    url = image.get("url", _MISSING)
    if url is _MISSING:
        raise _missing(f"{path}.image_url.url")
    _check_str(f"{path}.image_url.url", url)
    if url.startswith("data:"):
        _check_base64(f"{path}.image_url.url", url, media="image/png")
    elif not url.startswith(("https://", "http://")):
        raise _invalid(
            f"{path}.image_url.url", "expected an http(s) URL or a base64 data URL ('data:image/png;base64,...')."
        )
    detail = image.get("detail")
    if detail is not None and detail not in _IMAGE_DETAILS:
        raise _invalid_value(f"{path}.image_url.detail", detail, _IMAGE_DETAILS)


def _check_file_part(part: dict, path: str) -> None:
    file = part.get("file", _MISSING)
    if file is _MISSING:
        raise _missing(f"{path}.file")
    _check_object(f"{path}.file", file)
    data = file.get("file_data")
    file_id = file.get("file_id")
    if data is None and file_id is None:
        raise RequestRejected(
            f"Invalid '{path}.file': expected 'file_data' (base64 or a base64 data URL) or 'file_id'.",
            param=f"{path}.file",
            code="missing_required_parameter",
        )
    if data is not None:
        _check_str(f"{path}.file.file_data", data)
        _check_base64(f"{path}.file.file_data", data, media="application/pdf")
    if file_id is not None:
        _check_str(f"{path}.file.file_id", file_id)
    filename = file.get("filename")
    if filename is not None:
        _check_str(f"{path}.file.filename", filename)


def _check_audio_part(part: dict, path: str) -> None:
    audio = part.get("input_audio", _MISSING)
    if audio is _MISSING:
        raise _missing(f"{path}.input_audio")
    _check_object(f"{path}.input_audio", audio)
    data = audio.get("data", _MISSING)
    if data is _MISSING:
        raise _missing(f"{path}.input_audio.data")
    _check_str(f"{path}.input_audio.data", data)
    fmt = audio.get("format", _MISSING)
    if fmt is _MISSING:
        raise _missing(f"{path}.input_audio.format")
    if fmt not in ("wav", "mp3"):
        raise _invalid_value(f"{path}.input_audio.format", fmt, ("wav", "mp3"))


_PART_CHECKS: dict[str, Callable[[dict, str], None]] = {
    "text": _check_text_part,
    "image_url": _check_image_part,
    "file": _check_file_part,
    "input_audio": _check_audio_part,
}


def _check_parts(content: list, i: int, role: str, spec: ModelSpec) -> None:
    if not content:
        path = f"messages[{i}].content"
        raise _invalid(
            path, "empty array. Expected an array with minimum length 1, but got an empty array instead.", "empty_array"
        )
    allowed = spec.allowed_parts
    for j, part in enumerate(content):
        if type(part) is not dict:
            raise _invalid_type(f"messages[{i}].content[{j}]", "an object", part)
        kind = part.get("type", _MISSING)
        if kind is _MISSING:
            raise _missing(f"messages[{i}].content[{j}].type")
        if role != "user":
            # OpenAI: system, developer and tool messages take text parts; assistant messages text or refusal
            if kind == "refusal" and role == "assistant":
                _check_str(f"messages[{i}].content[{j}].refusal", part.get("refusal"))
                continue
            if kind != "text":
                raise RequestRejected(
                    f"Invalid 'messages[{i}].content[{j}]': messages with role '{role}' accept only text parts, "
                    f"but this part has type '{_json_scalar(kind)}'. Send images and files in a 'user' message.",
                    param=f"messages[{i}].content[{j}].type",
                    code="invalid_value",
                )
        elif kind not in allowed:
            raise _invalid_value(
                f"messages[{i}].content[{j}].type", kind, [p for p in spec.content_parts if p in allowed]
            )
        check = _PART_CHECKS.get(kind)
        if check is not None:
            check(part, f"messages[{i}].content[{j}]")


def _check_tool_calls(calls: Any, i: int) -> None:
    path = f"messages[{i}].tool_calls"
    if type(calls) is not list:
        raise _invalid_type(path, "an array", calls)
    for k, call in enumerate(calls):
        cpath = f"{path}[{k}]"
        if type(call) is not dict:
            raise _invalid_type(cpath, "an object", call)
        for key in ("id", "type", "function"):
            if call.get(key) is None:
                raise _missing(f"{cpath}.{key}")
        _check_str(f"{cpath}.id", call["id"])
        if call["type"] != "function":
            raise _invalid_value(f"{cpath}.type", call["type"], ("function",))
        fn = call["function"]
        _check_object(f"{cpath}.function", fn)
        for key in ("name", "arguments"):
            value = fn.get(key, _MISSING)
            if value is _MISSING:
                raise _missing(f"{cpath}.function.{key}")
            _check_str(f"{cpath}.function.{key}", value)


def _check_messages(messages: list, spec: ModelSpec) -> None:
    if not messages:
        raise _invalid(
            "messages",
            "empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "empty_array",
        )
    roles = spec.allowed_roles
    for i, message in enumerate(messages):
        if type(message) is not dict:
            raise _invalid_type(f"messages[{i}]", "an object", message)
        role = message.get("role", _MISSING)
        if role is _MISSING:
            raise _missing(f"messages[{i}].role")
        if role not in roles:
            if type(role) is not str:
                raise _invalid_type(f"messages[{i}].role", "a string", role)
            if role == "tool" and "tool" in spec.roles:
                raise RequestRejected(
                    f"Invalid value for 'messages[{i}].role': 'tool'. This model does not support tool calling.",
                    param=f"messages[{i}].role",
                    code="invalid_value",
                )
            raise _invalid_value(f"messages[{i}].role", role, [r for r in spec.roles if r in roles])
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            if role != "assistant":
                raise _invalid(
                    f"messages[{i}].tool_calls", f"only 'assistant' messages carry tool calls, not '{role}'."
                )
            if not spec.has_tools:
                raise _unsupported(f"messages[{i}].tool_calls")
            _check_tool_calls(tool_calls, i)
        content = message.get("content")
        if type(content) is str:
            pass
        elif type(content) is list:
            _check_parts(content, i, role, spec)
        elif content is None:
            if role != "assistant" or not tool_calls:
                if "content" not in message:
                    raise _missing(f"messages[{i}].content")
                raise _invalid_type(f"messages[{i}].content", "a string or an array of content parts", content)
        else:
            raise _invalid_type(f"messages[{i}].content", "a string or an array of content parts", content)
        if role == "tool":
            call_id = message.get("tool_call_id", _MISSING)
            if call_id is _MISSING:
                raise _missing(f"messages[{i}].tool_call_id")
            _check_str(f"messages[{i}].tool_call_id", call_id)
        name = message.get("name")
        if name is not None:
            _check_str(f"messages[{i}].name", name)


def _check_tools(tools: list, spec: ModelSpec) -> None:
    if not spec.has_tools:
        raise _unsupported("tools")
    if not tools:
        raise _invalid(
            "tools",
            "empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "empty_array",
        )
    for k, tool in enumerate(tools):
        path = f"tools[{k}]"
        _check_object(path, tool)
        kind = tool.get("type", _MISSING)
        if kind is _MISSING:
            raise _missing(f"{path}.type")
        if kind != "function":
            raise _invalid_value(f"{path}.type", kind, ("function",))
        fn = tool.get("function", _MISSING)
        if fn is _MISSING:
            raise _missing(f"{path}.function")
        _check_object(f"{path}.function", fn)
        name = fn.get("name", _MISSING)
        if name is _MISSING:
            raise _missing(f"{path}.function.name")
        _check_str(f"{path}.function.name", name)
        if _TOOL_NAME.fullmatch(name) is None:
            raise _invalid(
                f"{path}.function.name",
                f"string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$', "
                f"but got '{name}' instead.",
                "invalid_value",
            )
        for key, check in (("description", _check_str), ("parameters", _check_object), ("strict", _check_bool)):
            value = fn.get(key)
            if value is not None:
                check(f"{path}.function.{key}", value)


def _check_tool_choice(choice: Any, tools: Any) -> None:
    if not tools:
        raise RequestRejected(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
            code="invalid_value",
        )
    if type(choice) is str:
        if choice not in _TOOL_CHOICES:
            raise _invalid_value("tool_choice", choice, _TOOL_CHOICES)
        return
    if type(choice) is not dict:
        raise _invalid_type("tool_choice", "a string or an object", choice)
    kind = choice.get("type", _MISSING)
    if kind is _MISSING:
        raise _missing("tool_choice.type")
    if kind != "function":
        raise _invalid_value("tool_choice.type", kind, ("function",))
    fn = choice.get("function", _MISSING)
    if fn is _MISSING:
        raise _missing("tool_choice.function")
    _check_object("tool_choice.function", fn)
    name = fn.get("name", _MISSING)
    if name is _MISSING:
        raise _missing("tool_choice.function.name")
    _check_str("tool_choice.function.name", name)
    names = [t["function"]["name"] for t in tools]
    if name not in names:
        raise _invalid(
            "tool_choice.function.name",
            f"no function named '{name}' is declared in 'tools' (declared: {_quoted_list(names)}).",
        )


def _check_stop(value: Any, spec: ModelSpec) -> None:
    if type(value) is str:
        return
    if type(value) is not list:
        raise _invalid_type("stop", "a string or an array of strings", value)
    if len(value) > 4:
        raise _invalid(
            "stop",
            f"array too long. Expected an array with maximum length 4, but got an array with length {len(value)} instead.",
            "array_above_max_length",
        )
    for k, item in enumerate(value):
        _check_str(f"stop[{k}]", item)


def _check_response_format(value: dict, spec: ModelSpec) -> None:
    kind = value.get("type", _MISSING)
    if kind is _MISSING:
        raise _missing("response_format.type")
    if kind not in _RESPONSE_FORMATS:
        raise _invalid_value("response_format.type", kind, _RESPONSE_FORMATS)
    row = spec.rows_by_param.get("response_format")
    if row is not None and row.accepted is not None and kind not in row.accepted:
        # the model's row lists the formats its family has (Claude: no json_object mode)
        raise _invalid_value("response_format.type", kind, row.accepted)
    if kind != "json_schema":
        return
    schema = value.get("json_schema", _MISSING)
    if schema is _MISSING:
        raise _missing("response_format.json_schema")
    _check_object("response_format.json_schema", schema)
    name = schema.get("name", _MISSING)
    if name is _MISSING:
        raise _missing("response_format.json_schema.name")
    _check_str("response_format.json_schema.name", name)
    if _TOOL_NAME.fullmatch(name) is None:
        raise _invalid(
            "response_format.json_schema.name",
            f"string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$', but got '{name}' instead.",
        )
    body = schema.get("schema", _MISSING)
    if body is _MISSING:
        raise _missing("response_format.json_schema.schema")
    _check_object("response_format.json_schema.schema", body)
    for key, check in (("description", _check_str), ("strict", _check_bool)):
        item = schema.get(key)
        if item is not None:
            check(f"response_format.json_schema.{key}", item)


def _check_max(name: str) -> Callable[[Any, ModelSpec], None]:
    def check(value: Any, spec: ModelSpec) -> None:
        _check_int(name, value, 1, None)

    return check


# Checks for the table's rows, run after the row's generic type check (so `value` has the row's type).
_ROW_CHECKS: dict[str, Callable[[Any, ModelSpec], None]] = {
    "messages": _check_messages,
    "max_tokens": _check_max("max_tokens"),
    "max_completion_tokens": _check_max("max_completion_tokens"),
    "temperature": lambda v, s: _check_number("temperature", v, 0, 2),
    "top_p": lambda v, s: _check_number("top_p", v, 0, 1),
    "stop": _check_stop,
    "response_format": _check_response_format,
    "tools": _check_tools,
}


def _check_metadata(value: Any) -> None:
    _check_object("metadata", value)
    if len(value) > 16:
        raise _invalid("metadata", f"too many keys. Expected at most 16 keys, but got {len(value)} instead.")
    for key, item in value.items():
        if len(key) > 64:
            raise _invalid("metadata", f"key '{key[:64]}...' is longer than 64 characters.")
        _check_str(f"metadata.{key}", item)
        if len(item) > 512:
            raise _invalid(f"metadata.{key}", "string too long. Expected a string with maximum length 512.")


def _check_logit_bias(value: Any) -> None:
    _check_object("logit_bias", value)
    for key, item in value.items():
        if not key.isdigit():
            raise _invalid("logit_bias", f"keys must be token ids (integers as strings), but got '{key}'.")
        _check_number(f"logit_bias.{key}", item, -100, 100)


def _check_stream_options(value: Any) -> None:
    _check_object("stream_options", value)
    for key, item in value.items():
        if key in ("include_usage", "include_obfuscation"):
            if item is not None:
                _check_bool(f"stream_options.{key}", item)
        else:
            raise RequestRejected(
                f"Unrecognized request argument supplied: stream_options.{key}",
                param=f"stream_options.{key}",
                code="unsupported_parameter",
            )


# OpenAI fields outside the table that a model may take (its `extra_fields`); names without a check here
# are forwarded unchecked, so adding one to the catalog needs no code.
_EXTRA_CHECKS: dict[str, Callable[[Any], None]] = {
    "n": lambda v: _check_int("n", v, 1, 128),
    "seed": lambda v: _check_int("seed", v),
    "user": lambda v: _check_str("user", v),
    "safety_identifier": lambda v: _check_str("safety_identifier", v),
    "prompt_cache_key": lambda v: _check_str("prompt_cache_key", v),
    "parallel_tool_calls": lambda v: _check_bool("parallel_tool_calls", v),
    "logprobs": lambda v: _check_bool("logprobs", v),
    "top_logprobs": lambda v: _check_int("top_logprobs", v, 0, 20),
    "presence_penalty": lambda v: _check_number("presence_penalty", v, -2, 2),
    "frequency_penalty": lambda v: _check_number("frequency_penalty", v, -2, 2),
    "logit_bias": _check_logit_bias,
    "metadata": _check_metadata,
    "store": lambda v: _check_bool("store", v),
    "stream_options": _check_stream_options,
}


def _check_accepted(row: FieldSpec, param: str, value: Any) -> None:
    accepted = row.accepted_set
    assert accepted is not None and row.accepted is not None
    if type(value) is list:
        for k, item in enumerate(value):
            if type(item) not in (list, dict) and _as_accepted(item) not in accepted:
                raise _invalid_value(f"{param}[{k}]", item, row.accepted)
    elif type(value) is not dict and _as_accepted(value) not in accepted:
        raise _invalid_value(param, value, row.accepted)


def _as_accepted(value: Any) -> str:
    return value if type(value) is str else _json_scalar(value)


def _doc_only(param: str, row: FieldSpec) -> RequestRejected:
    if param == "attachments":
        message = (
            "Unsupported parameter: 'attachments' is not a request field. Send images and documents as content "
            'parts inside \'messages[].content\': {"type": "image_url", "image_url": {"url": '
            '"data:image/png;base64,..."}} or {"type": "file", "file": {"filename": "doc.pdf", '
            '"file_data": "data:application/pdf;base64,..."}}.'
        )
    else:
        message = f"Unsupported parameter: '{param}' is documentation only, not a request field. {row.description}"
    return RequestRejected(message, param=param, code="unsupported_parameter")


# --- the entry point -----------------------------------------------------------------------------


def validate_chat(body: object, spec: ModelSpec) -> ChatRequest:
    """Check a chat-completions body against `spec`; return the ChatRequest or raise RequestRejected (400).

    The returned `body` is a new top-level dict (messages and other values are shared with the input, not
    copied): `strip` rows, `show_thinking`, `stream_options` and optional fields sent as null are left out.
    """
    if type(body) is not dict:
        raise RequestRejected(
            f"Invalid type for request body: expected a JSON object, but got {_describe(body)} instead.",
            param=None,
            code="invalid_type",
        )
    for param in spec.required_params:
        if body.get(param, _MISSING) is _MISSING:
            raise _missing(param)

    model = body.get("model")
    if model is None:
        raise _missing("model")
    if type(model) is not str:
        raise _invalid_type("model", "a string", model)
    if model != spec.slug:
        raise _invalid_value("model", model, (spec.slug,))

    out: dict[str, Any] = {}
    rows = spec.rows_by_param
    extra = spec.extra
    for key, value in body.items():
        row = rows.get(key)
        if row is not None:
            if row.doc_only:
                raise _doc_only(key, row)
            if value is None:
                if row.required:
                    raise _invalid_type(key, row.expected or "a value", value)
                continue  # null: not sent
            py_types = row.py_types
            if py_types is not None and type(value) not in py_types:
                raise _invalid_type(key, row.expected, value)
            check = _ROW_CHECKS.get(key)
            if check is not None:
                check(value, spec)
            if (row.minimum is not None or row.maximum is not None) and _is_number(value):
                _check_range(key, value, row.minimum, row.maximum)
            accepted = row.accepted_set
            if accepted is not None and (type(value) is not str or value not in accepted):
                _check_accepted(row, key, value)
            if row.strip or key in _NOT_FORWARDED:
                continue
            out[key] = value
        elif key in extra:
            if value is None:
                continue
            extra_check = _EXTRA_CHECKS.get(key)
            if extra_check is not None:
                extra_check(value)
            if key not in _NOT_FORWARDED:
                out[key] = value
        elif key in _OPENAI_FIELDS:
            raise _unsupported(key)
        else:
            raise RequestRejected(
                f"Unrecognized request argument supplied: {key}", param=key, code="unsupported_parameter"
            )

    tools = out.get("tools")
    if "tool_choice" in out:
        _check_tool_choice(out["tool_choice"], tools)

    # the output limit: one value, within the model's maximum
    max_tokens = out.get("max_tokens")
    max_completion = out.get("max_completion_tokens")
    if max_tokens is not None and max_completion is not None and max_tokens != max_completion:
        raise RequestRejected(
            f"Invalid 'max_tokens': 'max_tokens' ({max_tokens}) and 'max_completion_tokens' ({max_completion}) "
            "are both set and differ. Send only 'max_completion_tokens' (or only 'max_tokens').",
            param="max_tokens",
            code="invalid_value",
        )
    max_param, max_output = (
        ("max_completion_tokens", max_completion) if max_completion is not None else ("max_tokens", max_tokens)
    )
    if max_output is not None and max_output > spec.max_output_tokens:
        raise RequestRejected(
            f"{max_param} is too large: {max_output}. This model supports at most {spec.max_output_tokens} "
            f"completion tokens, whereas you provided {max_output}.",
            param=max_param,
            code="invalid_value",
        )

    # the context window, with the offline estimate
    messages = out["messages"]
    estimate = estimate_chat_input_tokens(messages, tools)
    window = spec.context_window
    if estimate > window:
        raise RequestRejected(
            f"This model's maximum context length is {window} tokens. However, your messages resulted in "
            f"{estimate} tokens (estimated). Please reduce the length of the messages.",
            param="messages",
            code="context_length_exceeded",
        )
    if max_output is not None and estimate + max_output > window:
        raise RequestRejected(
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{estimate + max_output} tokens ({estimate} in the messages (estimated), {max_output} in the "
            f"completion). Please reduce the length of the messages or the '{max_param}' value.",
            param=max_param,
            code="context_length_exceeded",
        )

    stream_options = body.get("stream_options")
    return ChatRequest(
        model=spec.slug,
        body=out,
        stream=out.get("stream") is True,
        include_usage=bool(stream_options and stream_options.get("include_usage") is True),
        max_output_tokens=max_output,
        default_max_output_tokens=spec.default_max_output_tokens,
        reasoning_effort=out.get("reasoning_effort"),
        reasoning_budget=dict(spec.reasoning_budgets).get(out.get("reasoning_effort") or ""),
        show_thinking=body.get("show_thinking") is True,
        service_tier=out.get("service_tier"),
        estimated_input_tokens=estimate,
    )
