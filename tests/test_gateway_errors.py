"""Every error status of the gateway, through the real HTTP surface (uvicorn, raw HTTP and the SDK).

Each answer must be OpenAI's error shape `{"error": {"message", "type", "param", "code"}}` with the
right status and an `x-request-id` (DESIGN.md, "Answers and errors"). Never a 500 or an HTML page for
bad input.
"""

from __future__ import annotations

import json
import socket
import string
from collections.abc import Iterator

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from billing.models import UsageEvent
from gateway.services import provider_key_add
from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.mocks.upstream import Scenario

CODEX = {"model": "codex-mini", "messages": [{"role": "user", "content": "hello"}]}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    500: "api_error",
}
ANY = object()


def assert_openai_error(response: httpx.Response, status: int, *, code=ANY, param=ANY) -> dict:
    """The status, `x-request-id`, JSON content type and exactly OpenAI's error shape; returns the error."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers.get("x-request-id"), dict(response.headers)
    assert response.headers["content-type"].startswith("application/json"), response.headers["content-type"]
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["type"] == ERROR_TYPES.get(status, error["type"]) and isinstance(error["type"], str), error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    if code is not ANY:
        assert error["code"] == code, error
    if param is not ANY:
        assert error["param"] == param, error
    return error


@pytest.fixture
def route(world, gateway, mock_upstream):
    """codex-mini → the mock (Azure v1), so that valid bodies get a real answer."""
    return mock_route(gateway, mock_upstream, name="primary")


@pytest.fixture
def http(gateway, world) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.api, headers={"Authorization": f"Bearer {world.key}"}, timeout=30) as client:
        yield client


def chat(http: httpx.Client, body=None, *, content: bytes | None = None, **kwargs) -> httpx.Response:
    if content is not None:
        headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
        return http.post("/chat/completions", content=content, headers=headers, **kwargs)
    return http.post("/chat/completions", json=CODEX if body is None else body, **kwargs)


# --- 404 / 405 -----------------------------------------------------------------------------------


def test_unknown_model_is_404_model_not_found(http, route):
    response = chat(http, {**CODEX, "model": "gpt-99-ultra"})
    error = assert_openai_error(response, 404, code="model_not_found", param="model")
    assert "gpt-99-ultra" in error["message"]


def test_unknown_model_detail_is_404(http):
    assert_openai_error(http.get("/models/gpt-99-ultra"), 404, code="model_not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/chat/nothing"),
        ("GET", "/chat/nothing"),
        ("POST", "/chat/completions/extra"),
        ("GET", "/models/"),
        ("POST", "/responses/extra"),
    ],
)
def test_unknown_gateway_paths_are_openai_404s_not_html(http, method, path):
    response = http.request(method, path, content=b"{}" if method == "POST" else None)
    error = assert_openai_error(response, 404, code="unknown_url")
    assert path in error["message"]


@pytest.mark.parametrize("path", ["/embeddings", "/completions", "/nothing"])
def test_other_openai_paths_under_api_v1_are_openai_404s(http, path):
    assert_openai_error(http.post(path, json={"model": "codex-mini", "input": "x"}), 404)


def test_get_chat_completions_is_405_with_allow(http):
    response = http.get("/chat/completions")
    assert_openai_error(response, 405, code="method_not_allowed")
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize("path", ["/models", "/models/codex-mini"])
def test_post_to_models_is_405_with_allow(http, path):
    response = http.post(path, json={})
    assert_openai_error(response, 405, code="method_not_allowed")
    assert response.headers["allow"] == "GET"


# --- 400: the body ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b'{"model": "codex-mini", "messages": [', "invalid_json"),
        (b"", "invalid_json"),
        (b"not json at all", "invalid_json"),
        (b"\xff\xfe{\x00}", "invalid_json"),  # not UTF-8
        (b'[{"model": "codex-mini"}]', "invalid_json"),  # a JSON array
        (b'"codex-mini"', "invalid_json"),
        (b"null", "invalid_json"),
        (b"42", "invalid_json"),
        (b'{"model": "codex-mini", "messages": [{"role": "user", "content": NaN}]}', "invalid_json"),
    ],
)
def test_malformed_or_non_object_json_is_400(http, route, content, code):
    assert_openai_error(chat(http, content=content), 400, code=code)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": CODEX["messages"]}, "model", "missing_required_parameter"),
        ({"model": "codex-mini"}, "messages", "missing_required_parameter"),
        ({**CODEX, "model": 123}, "model", "invalid_type"),
        ({**CODEX, "model": ["codex-mini"]}, "model", "invalid_type"),
        ({**CODEX, "messages": "hello"}, "messages", "invalid_type"),
        ({**CODEX, "messages": [{"role": "user", "content": 5}]}, "messages[0].content", ANY),
        ({**CODEX, "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", ANY),
        ({**CODEX, "max_tokens": "100"}, "max_tokens", "invalid_type"),
        ({**CODEX, "max_tokens": 1.5}, "max_tokens", "invalid_type"),
        ({**CODEX, "stream": "yes"}, "stream", "invalid_type"),
        ({**CODEX, "temperature": "hot"}, "temperature", "invalid_type"),
        ({**CODEX, "reasoning_effort": "extreme"}, "reasoning_effort", "invalid_value"),
        ({**CODEX, "tools": {"type": "function"}}, "tools", "invalid_type"),
        ({**CODEX, "frequency_penalty": 0.5}, "frequency_penalty", "unsupported_parameter"),
        ({**CODEX, "logprobs": True}, "logprobs", "unsupported_parameter"),
        ({**CODEX, "made_up_field": 1}, "made_up_field", "unsupported_parameter"),
        ({**CODEX, "attachments": [{"type": "file"}]}, "attachments", "unsupported_parameter"),
        ({**CODEX, "max_tokens": 100_001}, "max_tokens", ANY),
        ({**CODEX, "max_completion_tokens": 100_001}, "max_completion_tokens", ANY),
        ({**CODEX, "max_tokens": 100, "max_completion_tokens": 200}, "max_tokens", ANY),
    ],
)
def test_invalid_bodies_are_400_naming_the_param(http, route, mock_upstream, body, param, code):
    error = assert_openai_error(chat(http, body), 400, code=code, param=param)
    assert param.split(".")[0].split("[")[0] in error["message"]
    assert mock_upstream.requests == []  # refused before any upstream call


def test_reasoning_effort_is_refused_for_a_non_reasoning_model(http, world, gateway, mock_upstream):
    provider_key_add(
        model_slug="gpt-4.1-mini",
        provider="openai",
        base_url=mock_upstream.url,
        api_key=mock_upstream.openai_key,
        deployment="gpt-4.1-mini",
    )
    gateway.refresh()
    body = {"model": "gpt-4.1-mini", "messages": CODEX["messages"], "reasoning_effort": "low"}
    error = assert_openai_error(chat(http, body), 400, code="unsupported_parameter", param="reasoning_effort")
    assert "reasoning_effort" in error["message"]
    # The same body without it is served.
    del body["reasoning_effort"]
    assert chat(http, body).status_code == 200


def test_attachments_error_points_to_message_parts(http, route):
    error = assert_openai_error(chat(http, {**CODEX, "attachments": []}), 400, param="attachments")
    assert "messages[].content" in error["message"]


def test_max_tokens_above_the_model_limit_names_the_param_and_the_limit(http, route):
    error = assert_openai_error(chat(http, {**CODEX, "max_tokens": 100_001}), 400, param="max_tokens")
    assert "100000" in error["message"].replace(",", "")
    # At the limit it is accepted.
    assert chat(http, {**CODEX, "max_tokens": 100_000}).status_code == 200


def test_equal_max_tokens_and_max_completion_tokens_are_accepted(http, route, mock_upstream):
    response = chat(http, {**CODEX, "max_tokens": 300, "max_completion_tokens": 300})
    assert response.status_code == 200, response.text
    assert mock_upstream.last.json["max_completion_tokens"] == 300


def test_context_too_long_is_400_context_length_exceeded(http, route, mock_upstream):
    huge = "hello world " * 150_000  # ~1.8 MB: below the body limit, ~270k tokens over a 200k window
    response = chat(http, {**CODEX, "messages": [{"role": "user", "content": huge}]})
    error = assert_openai_error(response, 400, code="context_length_exceeded", param="messages")
    assert "200000" in error["message"].replace(",", "")
    assert mock_upstream.requests == []


# --- 413 -------------------------------------------------------------------------------------------

SMALL_LIMIT = 4096


@pytest.fixture
def small_body_limit(settings):
    # Before `gateway` starts (the views read the setting per request; set it first all the same).
    settings.OMIXA_MAX_REQUEST_BYTES = SMALL_LIMIT
    return SMALL_LIMIT


def _padded_body(size: int) -> bytes:
    """A valid codex-mini body of exactly `size` bytes (JSON whitespace as padding)."""
    raw = orjson.dumps(CODEX)
    assert len(raw) <= size
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def test_body_over_the_limit_with_content_length_is_413(small_body_limit, http, route, mock_upstream):
    response = chat(http, content=_padded_body(SMALL_LIMIT + 1))
    error = assert_openai_error(response, 413, code="request_too_large")
    assert str(SMALL_LIMIT) in error["message"]
    assert mock_upstream.requests == []


def test_body_over_the_limit_chunked_is_413(small_body_limit, http, route, mock_upstream):
    body = _padded_body(SMALL_LIMIT * 4)

    def pieces():
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = http.post("/chat/completions", content=pieces(), headers={"content-type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert_openai_error(response, 413, code="request_too_large")
    assert mock_upstream.requests == []


def test_body_far_over_the_limit_is_413_not_500(small_body_limit, http, route):
    # Far over Django's own DATA_UPLOAD_MAX_MEMORY_SIZE path too: still our 413, never a 500.
    assert_openai_error(chat(http, content=b"x" * (SMALL_LIMIT * 64)), 413, code="request_too_large")


def test_a_body_of_exactly_the_limit_is_served(small_body_limit, http, route):
    chunked = iter([_padded_body(SMALL_LIMIT)])
    assert chat(http, content=_padded_body(SMALL_LIMIT)).status_code == 200
    response = http.post("/chat/completions", content=chunked, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text


def test_body_limit_comes_before_authentication(small_body_limit, gateway, route):
    response = httpx.post(gateway.api + "/chat/completions", content=b"x" * (SMALL_LIMIT + 1), timeout=20)
    assert_openai_error(response, 413)


def _early_answer(gateway, head: bytes, body_part: bytes, wait: float = 3.0) -> bytes:
    """Send the request head and part of an over-limit body, never the rest; return what the server
    answers within `wait` seconds (b"" when it keeps waiting for the rest of the body)."""
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(head + body_part)
        try:
            return sock.recv(65536)
        except TimeoutError:
            return b""


def test_endless_chunked_body_is_refused_once_over_the_limit(small_body_limit, gateway, route):
    head = (
        b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 1024
    part = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * (SMALL_LIMIT * 2 // len(chunk))  # no final 0-chunk
    assert _early_answer(gateway, head, part).startswith(b"HTTP/1.1 413")


def test_declared_content_length_over_the_limit_is_refused_without_reading_it(small_body_limit, gateway, route):
    head = (
        b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (SMALL_LIMIT * 1000)
    )
    assert _early_answer(gateway, head, b"x" * 100).startswith(b"HTTP/1.1 413")


# --- 500: a bug of ours is still an OpenAI-shaped answer ----------------------------------------------


def test_an_unexpected_server_error_is_an_openai_shaped_500(http, route, monkeypatch):
    from gateway import pipeline

    async def broken(call):
        raise RuntimeError("boom: an internal bug")

    monkeypatch.setattr(pipeline, "run", broken)
    error = assert_openai_error(chat(http), 500)
    assert "boom" not in error["message"]  # internals are not shown to the client


# --- upstream 4xx: the client's fault, passed on, no failover ----------------------------------------


def test_upstream_400_is_passed_on_without_failover_and_recorded_once(http, world, gateway, mock_upstream):
    mock_upstream.add_deployment("codex-mini-backup", reasoning=True)
    first = provider_key_add(
        model_slug="codex-mini",
        provider="azure-openai",
        base_url=mock_upstream.url,
        api_key=mock_upstream.azure_key,
        deployment="codex-mini",
        priority=1,
        name="primary",
    )
    provider_key_add(
        model_slug="codex-mini",
        provider="azure-openai",
        base_url=mock_upstream.url,
        api_key=mock_upstream.azure_key,
        deployment="codex-mini-backup",
        priority=2,
        name="backup",
    )
    gateway.refresh()
    provider_message = "Invalid prompt: your prompt was flagged as potentially violating our usage policy."
    mock_upstream.script(
        Scenario(
            status=400,
            body={
                "error": {
                    "message": provider_message,
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "invalid_prompt",
                }
            },
        ),
        deployment="codex-mini",
    )
    response = chat(http)
    error = assert_openai_error(response, 400)
    assert error["message"] == provider_message
    assert error["code"] == "invalid_prompt"
    assert response.headers["x-omixa-route"] == str(first.pk)
    assert len(mock_upstream.requests_for("codex-mini")) == 1
    assert mock_upstream.requests_for("codex-mini-backup") == []
    gateway.flush_usage()
    events = list(UsageEvent.objects.filter(workspace=world.workspace))
    assert len(events) == 1
    event = events[0]
    assert str(event.request_id) == response.headers["x-request-id"]
    assert event.outcome == "upstream_error" and event.http_status == 400
    assert event.route_id == first.pk
    assert [a["route_id"] for a in event.attempts] == [first.pk]


# --- never a 500 for bad input ------------------------------------------------------------------------

_FIELD_NAMES = (
    "model messages stream max_tokens max_completion_tokens temperature top_p stop response_format tools "
    "tool_choice reasoning_effort show_thinking attachments service_tier n seed user parallel_tool_calls "
    "stream_options metadata store safety_identifier prompt_cache_key logprobs frequency_penalty "
    "functions function_call modalities audio prediction"
).split()

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
# Values a real client might send, so that fuzzed bodies get past the first check and deeper in.
_plausible_scalars = st.sampled_from(
    [None, True, False, 0, 1, -1, 2, 100, 100_000, 0.5, 1.5, 2.5, "", "auto", "none", "required", "low", "medium",
     "high", "priority", "default", "flex", "text", "json_object", "json_schema", "function", "user", "lookup", "\n"]
)  # fmt: skip
_PLAUSIBLE_KEYS = (
    "type function name parameters include_usage json_schema schema strict url description properties arguments "
    "id text image_url detail file_data filename"
).split()
_plausible = st.recursive(
    _plausible_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(_PLAUSIBLE_KEYS), children, max_size=4)
    ),
    max_leaves=10,
)
_any_value = _plausible | _json_values
_names = st.sampled_from(_FIELD_NAMES) | st.text(alphabet=string.ascii_letters + "_.[]-", min_size=1, max_size=12)
_parts = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image_url", "file", "input_audio", "x"])},
        optional={"text": st.text(max_size=20) | _any_value, "image_url": _any_value, "file": _any_value},
    ),
    max_size=3,
)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "user", "system", "developer", "assistant", "tool", "x"])},
    optional={
        "content": st.text(max_size=30) | _parts | _any_value,
        "name": _any_value,
        "tool_calls": _any_value,
        "tool_call_id": _any_value,
    },
)
_valid_message = st.fixed_dictionaries({"role": st.just("user"), "content": st.text(min_size=1, max_size=30)})
_bodies = st.one_of(
    _json_values,
    st.dictionaries(_names, _any_value, max_size=6),
    # a valid body with a few fields added or changed: most of the examples
    st.builds(
        lambda extra, messages: {"model": "codex-mini", "messages": messages, **extra},
        st.dictionaries(_names.filter(lambda n: n not in ("model", "messages")), _any_value, max_size=3),
        st.lists(_valid_message, min_size=1, max_size=2),
    ),
    st.builds(
        lambda extra, messages: {"model": "codex-mini", "messages": messages, **extra},
        st.dictionaries(st.sampled_from(_FIELD_NAMES[2:]), _plausible, max_size=2),
        st.lists(st.one_of(_valid_message, _message), min_size=1, max_size=3),
    ),
    st.builds(
        lambda extra, messages: {"model": "codex-mini", "messages": messages, **extra},
        st.dictionaries(st.sampled_from(_FIELD_NAMES[2:]), _plausible, max_size=2),
        st.lists(_valid_message, min_size=1, max_size=2),
    ),
)


def test_fuzzed_bodies_never_get_a_5xx(http, route):
    statuses: list[int] = []

    @hypothesis_settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
        derandomize=True,
    )
    @given(body=_bodies)
    def check(body):
        response = http.post(
            "/chat/completions", content=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )
        statuses.append(response.status_code)
        assert response.status_code < 500, (body, response.status_code, response.text[:300])
        assert response.headers.get("x-request-id")
        if response.status_code >= 400:
            assert_openai_error(response, response.status_code)

    check()
    # The bodies reached both sides: refused by validation, and served by the mock.
    assert any(s == 400 for s in statuses) and any(s == 200 for s in statuses), sorted(statuses)


# --- the official SDK reads these answers as OpenAI's -------------------------------------------------


def test_the_sdk_maps_each_status_to_its_exception_with_code_and_param(gateway, world, route):
    import openai

    from workspaces.services import api_key_issue

    client = openai.OpenAI(base_url=gateway.api, api_key=world.key, max_retries=0, timeout=20)
    messages = CODEX["messages"]
    cases = [
        (openai.BadRequestError, 400, "max_tokens", {"model": "codex-mini", "max_tokens": 100_001}),
        (openai.BadRequestError, 400, "logprobs", {"model": "codex-mini", "logprobs": True}),
        (openai.NotFoundError, 404, "model", {"model": "no-such-model"}),
    ]
    for exc_type, status, param, kwargs in cases:
        with pytest.raises(exc_type) as info:
            client.chat.completions.create(messages=messages, **kwargs)
        assert info.value.status_code == status and info.value.param == param
        assert info.value.response.headers["x-request-id"]
    _, restricted = api_key_issue(workspace=world.workspace, name="mini", allowed_models=["gpt-4.1-mini"])
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.with_options(api_key=restricted).chat.completions.create(model="codex-mini", messages=messages)
    assert denied.value.code == "model_not_allowed"


def test_a_bug_after_the_upstream_answered_still_records_usage(http, route, gateway, mock_upstream, monkeypatch):
    from billing.models import UsageEvent
    from gateway.providers import get_adapter

    adapter = get_adapter("azure_openai_v1_chat")

    def broken(*args, **kwargs):
        raise KeyError("choices")

    monkeypatch.setattr(type(adapter), "parse_completion", broken)  # adapters have __slots__
    response = chat(http)
    assert_openai_error(response, 500)
    gateway.flush_usage()
    event = UsageEvent.objects.get(request_id=response.headers["x-request-id"])
    assert event.outcome == "upstream_error" and event.http_status == 500
    assert event.route_id == route.pk and event.estimated and event.input_tokens > 0
