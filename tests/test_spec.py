"""gateway.spec: requests checked against the catalog's model specs (billing/catalog/models.json, no database).

Each rule of DESIGN.md's "Requests" decisions and of the model page's "Request fields" table has a test here
that fails without it.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.spec import FieldSpec, ModelSpec, validate_chat
from gateway.types import ChatRequest, RequestRejected
from tests.reference import REFERENCE_PAYLOAD

ROOT = Path(__file__).resolve().parent.parent
CATALOG = {m["slug"]: m for m in json.loads((ROOT / "billing" / "catalog" / "models.json").read_text())["models"]}


def make_spec(slug: str, *, edit: Any = None, **overrides: Any) -> ModelSpec:
    """The catalog model's spec; `edit(entry)` may change a deep copy of the catalog entry first."""
    entry = copy.deepcopy(CATALOG[slug])
    if edit is not None:
        edit(entry)
    entry.update(overrides)
    return ModelSpec.from_catalog(
        slug=entry["slug"],
        reasoning=entry["reasoning"],
        context_window=entry["context_window"],
        max_output_tokens=entry["max_output_tokens"],
        capabilities=entry["capabilities"],
        spec=entry["spec"],
    )


CODEX = make_spec("codex-mini")
GPT = make_spec("gpt-4.1-mini")
GEMINI = make_spec("gemini-2.5-flash")
SPECS = {"codex-mini": CODEX, "gpt-4.1-mini": GPT, "gemini-2.5-flash": GEMINI}

TOOLS = copy.deepcopy(REFERENCE_PAYLOAD["tools"])
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PDF = "data:application/pdf;base64,JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK"


def body(model: str = "codex-mini", **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
    out.update(fields)
    return out


def ok(payload: Any, spec: ModelSpec = CODEX) -> ChatRequest:
    return validate_chat(payload, spec)


def rejected(payload: Any, spec: ModelSpec = CODEX) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        validate_chat(payload, spec)
    err = info.value
    assert err.status == 400
    return err


# --- the spec itself ---------------------------------------------------------------------------------------------


def test_spec_rows_are_the_catalog_rows_in_table_order() -> None:
    for slug, spec in SPECS.items():
        rows = [{"strip": False, "doc_only": False, **row} for row in CATALOG[slug]["spec"]["fields"]]
        assert [row.as_dict() for row in spec.fields] == rows
        assert spec.slug == slug
        assert spec.context_window == CATALOG[slug]["context_window"]
        assert spec.max_output_tokens == CATALOG[slug]["max_output_tokens"]
        assert spec.capabilities == frozenset(CATALOG[slug]["capabilities"])
        assert spec.default_max_output_tokens == CATALOG[slug]["spec"]["default_max_output_tokens"]
    assert CODEX.reasoning and not GPT.reasoning
    assert CODEX.roles == ("system", "developer", "user", "assistant", "tool")
    assert CODEX.content_parts == ("text", "image_url", "file")
    assert "logprobs" in GPT.extra_fields and "logprobs" not in CODEX.extra_fields


def test_rows_render_the_reference_pages_request_fields_table() -> None:
    page_path = ROOT.parent / "shared" / "reference" / "codex-mini-model-page.txt"
    if not page_path.exists():
        pytest.skip("shared/reference/ not found beside the repository (../shared): cannot compare with the page")
    page = page_path.read_text()
    table = page.split("Field Type Required Accepted values Description\n", 1)[1].split("\nReady to send", 1)[0]
    rendered = [
        f"{row.name} {row.type} {row.required_label} {row.accepted_label} {row.description}" for row in CODEX.fields
    ]
    assert rendered == table.splitlines()


def test_spec_is_frozen_and_hashable() -> None:
    with pytest.raises(AttributeError):
        CODEX.slug = "other"  # type: ignore[misc]
    assert hash(CODEX) == hash(make_spec("codex-mini"))
    assert CODEX == make_spec("codex-mini")
    assert CODEX.row("max_completion_tokens") is CODEX.row("max_tokens")
    assert CODEX.row("messages[].content") is None  # nested rows document message fields
    assert isinstance(CODEX.row("temperature"), FieldSpec) and CODEX.row("temperature").strip


def test_from_model_reads_attributes() -> None:
    class Row:
        slug = "gpt-4.1-mini"
        reasoning = False
        context_window = CATALOG["gpt-4.1-mini"]["context_window"]
        max_output_tokens = CATALOG["gpt-4.1-mini"]["max_output_tokens"]
        capabilities = CATALOG["gpt-4.1-mini"]["capabilities"]
        spec = CATALOG["gpt-4.1-mini"]["spec"]

    assert ModelSpec.from_model(Row()) == GPT


# --- the reference payload ------------------------------------------------------------------------------------------


def test_reference_payload_validates_for_codex_mini() -> None:
    sent = copy.deepcopy(REFERENCE_PAYLOAD)
    request = ok(sent)
    assert sent == REFERENCE_PAYLOAD  # the client's body is not mutated
    assert request.model == "codex-mini"
    assert request.stream is True
    assert request.include_usage is False
    assert request.max_output_tokens == 2048
    assert request.reasoning_effort == "low"
    assert request.show_thinking is True
    assert request.service_tier == "priority"
    assert 40 <= request.estimated_input_tokens <= 150
    assert "show_thinking" not in request.body
    assert request.body == {k: v for k, v in REFERENCE_PAYLOAD.items() if k != "show_thinking"}
    assert request.body["messages"] is sent["messages"]  # not copied


# --- body, model, unknown fields ---------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [[], "x", 3, None])
def test_body_must_be_an_object(payload: Any) -> None:
    err = rejected(payload)
    assert err.code == "invalid_type" and "JSON object" in err.message


def test_model_required_string_and_this_models_slug() -> None:
    payload = body()
    del payload["model"]
    err = rejected(payload)
    assert (err.param, err.code, err.message) == (
        "model",
        "missing_required_parameter",
        "Missing required parameter: 'model'.",
    )
    assert rejected(body(model=3)).code == "invalid_type"  # type: ignore[arg-type]
    err = rejected(body(model="gpt-4.1-mini"))
    assert (err.param, err.code) == ("model", "invalid_value")
    assert "'codex-mini'" in err.message


def test_unknown_field_is_named() -> None:
    err = rejected(body(foo=1))
    assert (err.param, err.code, err.message) == (
        "foo",
        "unsupported_parameter",
        "Unrecognized request argument supplied: foo",
    )


def test_attachments_are_refused_and_point_to_message_parts() -> None:
    err = rejected(body(attachments=[{"type": "image_url", "url": PNG}]))
    assert (err.param, err.code) == ("attachments", "unsupported_parameter")
    assert "messages[].content" in err.message
    assert rejected(body("gpt-4.1-mini", attachments=None), GPT).param == "attachments"


# --- sampling fields: validated, stripped where the row says so --------------------------------------------------


def test_temperature_and_top_p_stripped_for_codex_mini() -> None:
    request = ok(body(temperature=0.2, top_p=0.9))
    assert "temperature" not in request.body and "top_p" not in request.body


def test_temperature_and_top_p_kept_for_gpt_41_mini() -> None:
    request = ok(body("gpt-4.1-mini", temperature=0.2, top_p=0.9), GPT)
    assert request.body["temperature"] == 0.2 and request.body["top_p"] == 0.9


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("temperature", 2.5, "decimal_above_max_value"),
        ("temperature", -1, "integer_below_min_value"),
        ("temperature", "hot", "invalid_type"),
        ("temperature", True, "invalid_type"),
        ("top_p", 1.5, "decimal_above_max_value"),
        ("top_p", "all", "invalid_type"),
    ],
)
@pytest.mark.parametrize("spec", [CODEX, GPT], ids=["stripped", "kept"])
def test_temperature_and_top_p_validated_even_where_stripped(
    field: str, value: Any, code: str, spec: ModelSpec
) -> None:
    err = rejected(body(spec.slug, **{field: value}), spec)
    assert (err.param, err.code) == (field, code)


def test_null_optional_field_means_not_sent() -> None:
    request = ok(body("gpt-4.1-mini", temperature=None, stop=None, seed=None), GPT)
    assert "temperature" not in request.body and "stop" not in request.body and "seed" not in request.body
    err = rejected(body(messages=None))
    assert (err.param, err.code) == ("messages", "invalid_type")


# --- reasoning_effort, service_tier, show_thinking ---------------------------------------------------------------


def test_reasoning_effort_accepted_values_from_the_row() -> None:
    assert ok(body(reasoning_effort="high")).reasoning_effort == "high"
    err = rejected(body(reasoning_effort="minimal"))
    assert (err.param, err.code) == ("reasoning_effort", "invalid_value")
    assert (
        err.message
        == "Invalid value for 'reasoning_effort': 'minimal'. Supported values are: 'low', 'medium', and 'high'."
    )
    assert ok(body("gemini-2.5-flash", reasoning_effort="none"), GEMINI).reasoning_effort == "none"
    assert rejected(body(reasoning_effort="none")).code == "invalid_value"


def test_reasoning_effort_refused_for_gpt_41_mini() -> None:
    err = rejected(body("gpt-4.1-mini", reasoning_effort="low"), GPT)
    assert (err.param, err.code) == ("reasoning_effort", "unsupported_parameter")
    assert err.message == "Unsupported parameter: 'reasoning_effort' is not supported with this model."


def test_service_tier() -> None:
    request = ok(body(service_tier="priority"))
    assert request.service_tier == "priority" and request.body["service_tier"] == "priority"
    assert ok(body()).service_tier is None
    err = rejected(body(service_tier="flex"))
    assert (err.param, err.code) == ("service_tier", "invalid_value")
    assert "'auto', 'default', and 'priority'" in err.message
    err = rejected(body("gemini-2.5-flash", service_tier="auto"), GEMINI)  # no row in its table
    assert (err.param, err.code) == ("service_tier", "unsupported_parameter")


def test_show_thinking() -> None:
    request = ok(body(show_thinking=True))
    assert request.show_thinking is True and "show_thinking" not in request.body
    assert ok(body(show_thinking=False)).show_thinking is False
    assert ok(body()).show_thinking is False
    err = rejected(body(show_thinking="yes"))
    assert (err.param, err.code) == ("show_thinking", "invalid_type")
    assert rejected(body("gpt-4.1-mini", show_thinking=True), GPT).code == "unsupported_parameter"


# --- stream and stream_options -------------------------------------------------------------------------------------


def test_stream_must_be_boolean() -> None:
    assert ok(body(stream=True)).stream is True
    assert ok(body()).stream is False
    err = rejected(body(stream="true"))
    assert (err.param, err.code, err.message) == (
        "stream",
        "invalid_type",
        "Invalid type for 'stream': expected a boolean, but got a string instead.",
    )


@pytest.mark.parametrize("spec", [CODEX, GPT, GEMINI], ids=lambda s: s.slug)
def test_stream_options_always_accepted_and_removed(spec: ModelSpec) -> None:
    request = ok(body(spec.slug, stream=True, stream_options={"include_usage": True}), spec)
    assert request.include_usage is True
    assert "stream_options" not in request.body
    assert ok(body(spec.slug, stream=True, stream_options={"include_usage": False}), spec).include_usage is False
    assert ok(body(spec.slug, stream=True), spec).include_usage is False


@pytest.mark.parametrize(
    ("options", "param", "code"),
    [
        ("yes", "stream_options", "invalid_type"),
        ({"include_usage": "yes"}, "stream_options.include_usage", "invalid_type"),
        ({"bogus": True}, "stream_options.bogus", "unsupported_parameter"),
    ],
)
def test_stream_options_shape(options: Any, param: str, code: str) -> None:
    err = rejected(body(stream=True, stream_options=options))
    assert (err.param, err.code) == (param, code)


# --- output limit ----------------------------------------------------------------------------------------------------


def test_max_tokens_sets_max_output_tokens() -> None:
    assert ok(body(max_tokens=100)).max_output_tokens == 100
    assert ok(body(max_completion_tokens=200)).max_output_tokens == 200
    assert ok(body(max_tokens=300, max_completion_tokens=300)).max_output_tokens == 300
    assert ok(body()).max_output_tokens is None
    assert ok(body(max_tokens=100_000)).max_output_tokens == 100_000


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_max_output_above_the_models_limit_names_the_param_used(param: str) -> None:
    err = rejected(body(**{param: 100_001}))
    assert (err.param, err.code) == (param, "invalid_value")
    assert "100000" in err.message and "100001" in err.message
    err = rejected(body("gpt-4.1-mini", **{param: 32_769}), GPT)
    assert err.param == param and "32768" in err.message


def test_max_tokens_100001_refused_naming_max_tokens() -> None:
    err = rejected(body(max_tokens=100001))
    assert err.param == "max_tokens"
    assert err.message == (
        "max_tokens is too large: 100001. This model supports at most 100000 completion tokens, "
        "whereas you provided 100001."
    )


def test_max_tokens_and_max_completion_tokens_differ() -> None:
    err = rejected(body(max_tokens=100, max_completion_tokens=200))
    assert (err.param, err.code) == ("max_tokens", "invalid_value")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (0, "integer_below_min_value"),
        (-5, "integer_below_min_value"),
        (True, "invalid_type"),
        (1.5, "invalid_type"),
        ("9", "invalid_type"),
    ],
)
@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_is_a_positive_integer_not_a_bool(param: str, value: Any, code: str) -> None:
    err = rejected(body(**{param: value}))
    assert (err.param, err.code) == (param, code)


# --- context window ---------------------------------------------------------------------------------------------------


def test_estimate_is_set() -> None:
    short = ok(body()).estimated_input_tokens
    longer = ok(body(messages=[{"role": "user", "content": "Hi " * 1000}])).estimated_input_tokens
    assert 5 <= short < 20 and 800 <= longer <= 1200


def test_context_overflow_is_context_length_exceeded() -> None:
    huge = "The quick brown fox jumps over the lazy dog. " * 25_000  # ~250k tokens
    err = rejected(body(messages=[{"role": "user", "content": huge}]))
    assert (err.param, err.code) == ("messages", "context_length_exceeded")
    assert err.message.startswith(
        "This model's maximum context length is 200000 tokens. However, your messages resulted in"
    )
    assert ok(body("gpt-4.1-mini", messages=[{"role": "user", "content": huge}]), GPT).estimated_input_tokens > 200_000


def test_context_plus_max_output_names_the_max_param() -> None:
    small = make_spec("codex-mini", context_window=1000, max_output_tokens=900)
    messages = [{"role": "user", "content": "word " * 300}]
    ok(body(messages=messages, max_tokens=100), small)
    for param in ("max_tokens", "max_completion_tokens"):
        err = rejected(body(messages=messages, **{param: 900}), small)
        assert (err.param, err.code) == (param, "context_length_exceeded")
        assert "maximum context length is 1000 tokens" in err.message
    err = rejected(body(messages=[{"role": "user", "content": "word " * 1200}]), small)
    assert (err.param, err.code) == ("messages", "context_length_exceeded")


# --- messages -------------------------------------------------------------------------------------------------------


def msgs(*messages: Any) -> dict[str, Any]:
    return body(messages=list(messages))


USER = {"role": "user", "content": "Hi"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id":"1"}'}}


@pytest.mark.parametrize(
    ("payload", "param", "code", "message"),
    [
        (
            body(messages="hi"),
            "messages",
            "invalid_type",
            "Invalid type for 'messages': expected an array, but got a string instead.",
        ),
        (body(messages=[]), "messages", "empty_array", None),
        (
            msgs(USER, "hi"),
            "messages[1]",
            "invalid_type",
            "Invalid type for 'messages[1]': expected an object, but got a string instead.",
        ),
        (
            msgs({"content": "x"}),
            "messages[0].role",
            "missing_required_parameter",
            "Missing required parameter: 'messages[0].role'.",
        ),
        (
            msgs({"role": "robot", "content": "x"}),
            "messages[0].role",
            "invalid_value",
            "Invalid value for 'messages[0].role': 'robot'. Supported values are: 'system', 'developer', 'user', 'assistant', and 'tool'.",
        ),
        (msgs({"role": 1, "content": "x"}), "messages[0].role", "invalid_type", None),
        (msgs({"role": "user"}), "messages[0].content", "missing_required_parameter", None),
        (msgs(USER, {"role": "user", "content": None}), "messages[1].content", "invalid_type", None),
        (
            msgs(USER, {"role": "user", "content": 5}),
            "messages[1].content",
            "invalid_type",
            "Invalid type for 'messages[1].content': expected a string or an array of content parts, but got an integer instead.",
        ),
        (msgs(USER, {"role": "assistant", "content": None}), "messages[1].content", "invalid_type", None),
        (msgs({"role": "user", "content": []}), "messages[0].content", "empty_array", None),
        (msgs({"role": "user", "content": ["hi"]}), "messages[0].content[0]", "invalid_type", None),
        (
            msgs({"role": "user", "content": [{"text": "hi"}]}),
            "messages[0].content[0].type",
            "missing_required_parameter",
            None,
        ),
        (
            msgs({"role": "user", "content": [{"type": "video", "video": {}}]}),
            "messages[0].content[0].type",
            "invalid_value",
            "Invalid value for 'messages[0].content[0].type': 'video'. Supported values are: 'text', 'image_url', and 'file'.",
        ),
        (
            msgs({"role": "user", "content": [{"type": "text"}]}),
            "messages[0].content[0].text",
            "missing_required_parameter",
            None,
        ),
        (
            msgs({"role": "user", "content": [{"type": "text", "text": 3}]}),
            "messages[0].content[0].text",
            "invalid_type",
            None,
        ),
        (msgs({"role": "user", "name": 7, "content": "x"}), "messages[0].name", "invalid_type", None),
    ],
)
def test_message_shape_errors_name_the_json_path(payload: dict, param: str, code: str, message: str | None) -> None:
    err = rejected(payload)
    assert (err.param, err.code) == (param, code)
    if message is not None:
        assert err.message == message
    assert f"'{param}'" in err.message


def test_image_url_part_errors_name_the_json_path() -> None:
    def with_image(image: Any) -> dict:
        return msgs(USER, USER, {"role": "user", "content": [{"type": "image_url", "image_url": image}]})

    ok(with_image({"url": "https://example.com/cat.png", "detail": "low"}))
    ok(with_image({"url": PNG}))
    cases = [
        ({"url": 5}, "messages[2].content[0].image_url.url", "invalid_type"),
        ({}, "messages[2].content[0].image_url.url", "missing_required_parameter"),
        ({"url": "ftp://example.com/cat.png"}, "messages[2].content[0].image_url.url", "invalid_value"),
        ({"url": "data:image/png,notbase64"}, "messages[2].content[0].image_url.url", "invalid_value"),
        ({"url": "data:image/png;base64,***"}, "messages[2].content[0].image_url.url", "invalid_value"),
        ({"url": PNG, "detail": "ultra"}, "messages[2].content[0].image_url.detail", "invalid_value"),
        ("https://example.com/cat.png", "messages[2].content[0].image_url", "invalid_type"),
    ]
    for image, param, code in cases:
        err = rejected(with_image(image))
        assert (err.param, err.code) == (param, code), image
        assert f"'{param}'" in err.message
    err = rejected(msgs(USER, USER, {"role": "user", "content": [{"type": "image_url"}]}))
    assert err.param == "messages[2].content[0].image_url"


def test_file_parts() -> None:
    def with_file(file: Any) -> dict:
        return msgs(
            {"role": "user", "content": [{"type": "text", "text": "Summarise"}, {"type": "file", "file": file}]}
        )

    ok(with_file({"filename": "report.pdf", "file_data": PDF}))
    ok(with_file({"file_data": PDF.split(",", 1)[1]}))  # bare base64
    ok(with_file({"file_id": "file-abc123"}))
    cases = [
        ({"filename": "report.pdf"}, "messages[0].content[1].file", "missing_required_parameter"),
        ({"file_data": "hello world, not base64!"}, "messages[0].content[1].file.file_data", "invalid_value"),
        ({"file_data": "https://example.com/report.pdf"}, "messages[0].content[1].file.file_data", "invalid_value"),
        ({"file_data": 12}, "messages[0].content[1].file.file_data", "invalid_type"),
        ({"file_id": 12}, "messages[0].content[1].file.file_id", "invalid_type"),
        ({"file_data": PDF, "filename": 3}, "messages[0].content[1].file.filename", "invalid_type"),
        ("report.pdf", "messages[0].content[1].file", "invalid_type"),
    ]
    for file, param, code in cases:
        err = rejected(with_file(file))
        assert (err.param, err.code) == (param, code), file


def test_non_user_messages_take_text_parts_only() -> None:
    ok(msgs({"role": "system", "content": [{"type": "text", "text": "Be brief."}]}, USER))
    err = rejected(msgs({"role": "system", "content": [{"type": "image_url", "image_url": {"url": PNG}}]}, USER))
    assert err.param == "messages[0].content[0].type" and "'system'" in err.message


def test_image_parts_need_the_vision_capability() -> None:
    blind = make_spec("codex-mini", capabilities=["chat", "streaming", "tools"])
    payload = msgs({"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG}}]})
    ok(payload)
    err = rejected(payload, blind)
    assert (err.param, err.code) == ("messages[0].content[0].type", "invalid_value")


def test_content_part_types_come_from_the_spec() -> None:
    text_only = make_spec("codex-mini", edit=lambda e: e["spec"].update(content_parts=["text"]))
    payload = msgs({"role": "user", "content": [{"type": "file", "file": {"file_data": PDF}}]})
    ok(payload)
    err = rejected(payload, text_only)
    assert err.message == "Invalid value for 'messages[0].content[0].type': 'file'. Supported values are: 'text'."


def test_tool_messages_and_assistant_tool_calls() -> None:
    good = msgs(
        USER,
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
    )
    request = ok(good)
    assert request.estimated_input_tokens > ok(msgs(USER)).estimated_input_tokens
    ok(msgs(USER, {"role": "assistant", "tool_calls": [CALL]}))  # content may be left out with tool calls
    err = rejected(msgs(USER, {"role": "tool", "content": "x"}))
    assert (err.param, err.code) == ("messages[1].tool_call_id", "missing_required_parameter")
    err = rejected(msgs(USER, {"role": "tool", "tool_call_id": 1, "content": "x"}))
    assert (err.param, err.code) == ("messages[1].tool_call_id", "invalid_type")
    cases = [
        ("call", "messages[1].tool_calls", "invalid_type"),
        (["call"], "messages[1].tool_calls[0]", "invalid_type"),
        ([{**CALL, "id": None}], "messages[1].tool_calls[0].id", "missing_required_parameter"),
        ([{**CALL, "type": "custom"}], "messages[1].tool_calls[0].type", "invalid_value"),
        (
            [{**CALL, "function": {"name": "f"}}],
            "messages[1].tool_calls[0].function.arguments",
            "missing_required_parameter",
        ),
        (
            [{**CALL, "function": {"name": "f", "arguments": {"a": 1}}}],
            "messages[1].tool_calls[0].function.arguments",
            "invalid_type",
        ),
    ]
    for calls, param, code in cases:
        err = rejected(msgs(USER, {"role": "assistant", "content": None, "tool_calls": calls}))
        assert (err.param, err.code) == (param, code), calls
    err = rejected(msgs({"role": "user", "content": "x", "tool_calls": [CALL]}))
    assert err.param == "messages[0].tool_calls"


def test_tool_role_and_tools_need_the_tools_capability() -> None:
    no_tools = make_spec("codex-mini", capabilities=["chat", "streaming", "vision", "reasoning"])
    ok(body(), no_tools)
    err = rejected(msgs(USER, {"role": "tool", "tool_call_id": "c", "content": "x"}), no_tools)
    assert (err.param, err.code) == ("messages[1].role", "invalid_value")
    err = rejected(body(tools=TOOLS), no_tools)
    assert (err.param, err.code) == ("tools", "unsupported_parameter")
    err = rejected(msgs(USER, {"role": "assistant", "content": None, "tool_calls": [CALL]}), no_tools)
    assert (err.param, err.code) == ("messages[1].tool_calls", "unsupported_parameter")


def test_roles_come_from_the_spec() -> None:
    no_developer = make_spec(
        "codex-mini", edit=lambda e: e["spec"].update(roles=["system", "user", "assistant", "tool"])
    )
    payload = msgs({"role": "developer", "content": "Be brief."}, USER)
    ok(payload)
    assert rejected(payload, no_developer).param == "messages[0].role"


# --- stop, response_format ---------------------------------------------------------------------------------------------


def test_stop() -> None:
    ok(body(stop="END"))
    ok(body(stop=["a", "b", "c", "d"]))
    ok(body(stop=[]))
    err = rejected(body(stop=["a", "b", "c", "d", "e"]))
    assert (err.param, err.code) == ("stop", "array_above_max_length")
    assert rejected(body(stop=["a", 1])).param == "stop[1]"
    assert rejected(body(stop=5)).param == "stop"


@pytest.mark.parametrize(
    "fmt",
    [
        {"type": "text"},
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "order", "schema": {"type": "object"}, "strict": True}},
    ],
)
def test_response_format_accepted(fmt: dict) -> None:
    assert ok(body(response_format=fmt)).body["response_format"] == fmt


@pytest.mark.parametrize(
    ("fmt", "param", "code"),
    [
        ("json", "response_format", "invalid_type"),
        ({}, "response_format.type", "missing_required_parameter"),
        ({"type": "yaml"}, "response_format.type", "invalid_value"),
        ({"type": "json_schema"}, "response_format.json_schema", "missing_required_parameter"),
        (
            {"type": "json_schema", "json_schema": {"schema": {}}},
            "response_format.json_schema.name",
            "missing_required_parameter",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "bad name", "schema": {}}},
            "response_format.json_schema.name",
            "invalid_value",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "order"}},
            "response_format.json_schema.schema",
            "missing_required_parameter",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "order", "schema": "{}"}},
            "response_format.json_schema.schema",
            "invalid_type",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "order", "schema": {}, "strict": "yes"}},
            "response_format.json_schema.strict",
            "invalid_type",
        ),
    ],
)
def test_response_format_errors(fmt: Any, param: str, code: str) -> None:
    err = rejected(body(response_format=fmt))
    assert (err.param, err.code) == (param, code)


# --- tools and tool_choice ----------------------------------------------------------------------------------------------


def fn_tool(**function: Any) -> dict:
    return {"type": "function", "function": {"name": "lookup_order", **function}}


def test_tools_accepted() -> None:
    ok(body(tools=[fn_tool(), fn_tool(name="a-b_C9", strict=True, parameters={"type": "object"})]))


@pytest.mark.parametrize(
    ("tools", "param", "code"),
    [
        ({"type": "function"}, "tools", "invalid_type"),
        ([], "tools", "empty_array"),
        (["lookup_order"], "tools[0]", "invalid_type"),
        ([{"function": {"name": "f"}}], "tools[0].type", "missing_required_parameter"),
        ([{"type": "code_interpreter"}], "tools[0].type", "invalid_value"),
        ([{"type": "function"}], "tools[0].function", "missing_required_parameter"),
        ([{"type": "function", "function": {}}], "tools[0].function.name", "missing_required_parameter"),
        ([fn_tool(name="look up")], "tools[0].function.name", "invalid_value"),
        ([fn_tool(name="x" * 65)], "tools[0].function.name", "invalid_value"),
        ([fn_tool(name=5)], "tools[0].function.name", "invalid_type"),
        ([fn_tool(), fn_tool(parameters="{}")], "tools[1].function.parameters", "invalid_type"),
        ([fn_tool(description=1)], "tools[0].function.description", "invalid_type"),
        ([fn_tool(strict="yes")], "tools[0].function.strict", "invalid_type"),
    ],
)
def test_tools_errors(tools: Any, param: str, code: str) -> None:
    err = rejected(body(tools=tools))
    assert (err.param, err.code) == (param, code)


def test_tool_choice() -> None:
    for choice in ("auto", "none", "required", {"type": "function", "function": {"name": "lookup_order"}}):
        assert ok(body(tools=TOOLS, tool_choice=choice)).body["tool_choice"] == choice
    err = rejected(body(tool_choice="auto"))
    assert (err.param, err.code) == ("tool_choice", "invalid_value")
    assert "only allowed when 'tools' are specified" in err.message
    cases = [
        ("sometimes", "tool_choice", "invalid_value"),
        (3, "tool_choice", "invalid_type"),
        ({"function": {"name": "lookup_order"}}, "tool_choice.type", "missing_required_parameter"),
        ({"type": "tool", "function": {"name": "lookup_order"}}, "tool_choice.type", "invalid_value"),
        ({"type": "function"}, "tool_choice.function", "missing_required_parameter"),
        ({"type": "function", "function": {}}, "tool_choice.function.name", "missing_required_parameter"),
        ({"type": "function", "function": {"name": "cancel_order"}}, "tool_choice.function.name", "invalid_value"),
    ]
    for choice, param, code in cases:
        err = rejected(body(tools=TOOLS, tool_choice=choice))
        assert (err.param, err.code) == (param, code), choice


# --- OpenAI fields outside the table (extra_fields) ---------------------------------------------------------------------


def test_extra_fields_accepted_with_valid_values() -> None:
    request = ok(
        body(
            "gpt-4.1-mini",
            n=2,
            seed=7,
            user="u-1",
            parallel_tool_calls=False,
            logprobs=True,
            top_logprobs=20,
            presence_penalty=-2,
            frequency_penalty=1.5,
            logit_bias={"50256": -100},
            metadata={"team": "search"},
            store=False,
            safety_identifier="hash-1",
            prompt_cache_key="k",
        ),
        GPT,
    )
    assert request.body["n"] == 2 and request.body["logit_bias"] == {"50256": -100}


@pytest.mark.parametrize(
    ("field", "value", "param", "code"),
    [
        ("n", 0, "n", "integer_below_min_value"),
        ("n", True, "n", "invalid_type"),
        ("seed", "7", "seed", "invalid_type"),
        ("seed", 1.0, "seed", "invalid_type"),
        ("user", 1, "user", "invalid_type"),
        ("parallel_tool_calls", "yes", "parallel_tool_calls", "invalid_type"),
        ("logprobs", 1, "logprobs", "invalid_type"),
        ("top_logprobs", 21, "top_logprobs", "integer_above_max_value"),
        ("top_logprobs", -1, "top_logprobs", "integer_below_min_value"),
        ("presence_penalty", 2.5, "presence_penalty", "decimal_above_max_value"),
        ("frequency_penalty", -3, "frequency_penalty", "integer_below_min_value"),
        ("frequency_penalty", "high", "frequency_penalty", "invalid_type"),
        ("logit_bias", [], "logit_bias", "invalid_type"),
        ("logit_bias", {"hello": 1}, "logit_bias", "invalid_value"),
        ("logit_bias", {"50256": 101}, "logit_bias.50256", "integer_above_max_value"),
        ("metadata", {"team": 1}, "metadata.team", "invalid_type"),
        ("metadata", "x", "metadata", "invalid_type"),
        ("store", "no", "store", "invalid_type"),
        ("safety_identifier", 3, "safety_identifier", "invalid_type"),
    ],
)
def test_extra_field_type_checks(field: str, value: Any, param: str, code: str) -> None:
    err = rejected(body("gpt-4.1-mini", **{field: value}), GPT)
    assert (err.param, err.code) == (param, code)


def test_extra_fields_are_per_model() -> None:
    # logprobs is in gpt-4.1-mini's extra_fields, not codex-mini's; user is not in gemini's
    err = rejected(body(logprobs=True))
    assert (err.param, err.code) == ("logprobs", "unsupported_parameter")
    assert "not supported with this model" in err.message
    assert rejected(body("gemini-2.5-flash", user="u"), GEMINI).param == "user"
    assert ok(body("gemini-2.5-flash", seed=1, n=1), GEMINI).body["seed"] == 1


# --- catalog edits change validation without code ---------------------------------------------------------------------------


def test_a_rows_accepted_list_is_enforced_generically() -> None:
    def restrict(entry: dict) -> None:
        for row in entry["spec"]["fields"]:
            if row["name"] == "stop":
                row["accepted"] = ["END", "STOP"]
            if row["name"] == "service_tier":
                row["accepted"] = ["auto"]
        entry["spec"]["fields"].append(
            {"name": "verbosity", "type": "string", "required": False, "accepted": ["low", "high"], "description": "d"}
        )

    edited = make_spec("codex-mini", edit=restrict)
    ok(body(stop="END", verbosity="low"), edited)
    ok(body(stop=["END", "STOP"]), edited)
    assert rejected(body(stop="HALT"), edited).param == "stop"
    assert rejected(body(stop=["END", "HALT"]), edited).param == "stop[1]"
    assert rejected(body(service_tier="priority"), edited).param == "service_tier"
    err = rejected(body(verbosity="medium"), edited)
    assert (err.param, err.code) == ("verbosity", "invalid_value")
    assert rejected(body(verbosity=1), edited).code == "invalid_type"  # the row's type, generically
    assert rejected(body(verbosity="low")).code == "unsupported_parameter"  # not in the real table


def test_a_removed_row_is_unsupported_and_a_strip_flag_strips() -> None:
    def edit(entry: dict) -> None:
        entry["spec"]["fields"] = [r for r in entry["spec"]["fields"] if r["name"] != "stop"]
        for row in entry["spec"]["fields"]:
            if row["name"] == "temperature":
                row["strip"] = True

    edited = make_spec("gpt-4.1-mini", edit=edit)
    assert rejected(body("gpt-4.1-mini", stop="x"), edited).code == "unsupported_parameter"
    assert "temperature" not in ok(body("gpt-4.1-mini", temperature=1), edited).body


def test_new_extra_field_is_forwarded() -> None:
    edited = make_spec("codex-mini", edit=lambda e: e["spec"]["extra_fields"].append("verbosity"))
    assert ok(body(verbosity="low"), edited).body["verbosity"] == "low"


# --- speed -----------------------------------------------------------------------------------------------------------------


def test_reference_payload_validates_in_tens_of_microseconds() -> None:
    for _ in range(50):
        validate_chat(REFERENCE_PAYLOAD, CODEX)
    runs = 2000
    start = time.perf_counter()
    for _ in range(runs):
        validate_chat(REFERENCE_PAYLOAD, CODEX)
    per_call = (time.perf_counter() - start) / runs
    assert per_call < 500e-6, per_call  # ~30 µs measured; generous bound for a loaded CI machine


def test_new_rows_are_type_checked_from_their_type_column() -> None:
    def add_rows(entry: dict) -> None:
        for name, kind in [
            ("budget", "integer"),
            ("ratio", "number"),
            ("flag", "boolean"),
            ("opts", "object"),
            ("tags", "array"),
            ("mode", "string|object"),
        ]:
            entry["spec"]["fields"].append(
                {"name": name, "type": kind, "required": False, "accepted": None, "description": ""}
            )

    edited = make_spec("codex-mini", edit=add_rows)
    ok(body(budget=3, ratio=0.5, flag=True, opts={}, tags=[], mode="x"), edited)
    ok(body(ratio=1, mode={}), edited)
    for field, value, expected in [
        ("budget", True, "an integer"),
        ("budget", 1.0, "an integer"),
        ("ratio", False, "a number"),
        ("ratio", "0.5", "a number"),
        ("flag", 0, "a boolean"),
        ("opts", [], "an object"),
        ("tags", {}, "an array"),
        ("mode", 3, "a string or an object"),
    ]:
        err = rejected(body(**{field: value}), edited)
        assert (err.param, err.code) == (field, "invalid_type"), (field, value)
        assert f"expected {expected}, but got" in err.message


def test_model_must_be_the_slug_even_without_an_accepted_list() -> None:
    def open_model_row(entry: dict) -> None:
        entry["spec"]["fields"][0]["accepted"] = None

    edited = make_spec("codex-mini", edit=open_model_row)
    ok(body(), edited)
    err = rejected(body(model="gpt-4.1-mini"), edited)
    assert (err.param, err.code) == ("model", "invalid_value")


def test_a_broken_catalog_entry_fails_when_built_not_per_request() -> None:
    with pytest.raises(ValueError, match="messages"):
        make_spec("codex-mini", edit=lambda e: e["spec"].update(fields=e["spec"]["fields"][:1]))
    with pytest.raises(ValueError, match="accepted"):
        make_spec("codex-mini", edit=lambda e: e["spec"]["fields"][0].update(accepted="codex-mini"))


def test_reasoning_effort_resolves_to_the_models_thinking_budget():
    claude = make_spec("claude-sonnet-4-5")
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
    assert validate_chat({**body, "reasoning_effort": "medium"}, claude).reasoning_budget == 8192
    assert validate_chat(body, claude).reasoning_budget is None
    assert validate_chat({**body, "model": "codex-mini", "reasoning_effort": "low"}, CODEX).reasoning_budget is None


def test_a_models_own_range_narrows_openais_and_is_checked_before_any_route():
    claude = make_spec("claude-sonnet-4-5")
    gemini = make_spec("gemini-2.5-flash")
    body = {"messages": [{"role": "user", "content": "hi"}], "temperature": 1.5}
    assert validate_chat({**body, "model": "gemini-2.5-flash"}, gemini).body["temperature"] == 1.5
    with pytest.raises(RequestRejected) as caught:
        validate_chat({**body, "model": "claude-sonnet-4-5"}, claude)
    assert caught.value.param == "temperature"
    assert "<= 1" in caught.value.message
    assert validate_chat({**body, "model": "claude-sonnet-4-5", "temperature": 1}, claude).body["temperature"] == 1
    with pytest.raises(ValueError, match="maximum"):
        make_spec("codex-mini", edit=lambda e: e["spec"]["fields"][2].update(maximum="one"))


def test_a_models_response_format_row_lists_the_formats_its_family_has():
    claude = make_spec("claude-sonnet-4-5")
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(RequestRejected) as caught:
        validate_chat({**body, "response_format": {"type": "json_object"}}, claude)
    assert caught.value.param == "response_format.type"
    schema = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    assert validate_chat({**body, "response_format": schema}, claude).body["response_format"] == schema
    gemini = make_spec("gemini-2.5-flash")
    json_mode = {"type": "json_object"}
    assert validate_chat({**body, "model": "gemini-2.5-flash", "response_format": json_mode}, gemini)
