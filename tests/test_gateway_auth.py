"""Gateway authentication and authorization through the real HTTP surface.

401 for a missing, malformed, unknown, revoked or expired key; 403 for a valid key that may not do
this (scope, model not allowed); revocation and expiry honoured within 5 s while the gateway runs; a
key created while it runs works at once; usage lands in the caller's workspace only.
"""

from __future__ import annotations

import base64
import io
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import openai
import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.models import UsageEvent
from gateway.services import provider_key_add
from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.test_gateway_errors import assert_openai_error
from workspaces.models import ApiKey
from workspaces.services import api_key_issue, api_key_revoke, hash_api_key

BODY = {"model": "codex-mini", "messages": [{"role": "user", "content": "hello"}]}
WITHIN = 5.0  # DESIGN: revocation and expiry reach every worker within 5 s


@pytest.fixture
def route(world, gateway, mock_upstream):
    return mock_route(gateway, mock_upstream)


@pytest.fixture
def http(gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.api, timeout=30) as client:
        yield client


def chat(http: httpx.Client, key: str | None, body=None, *, authorization: str | None = None) -> httpx.Response:
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return http.post("/chat/completions", json=body or BODY, headers=headers)


def models(http: httpx.Client, key: str, path: str = "/models") -> httpx.Response:
    return http.get(path, headers={"Authorization": f"Bearer {key}"})


def poll_until(
    check: Callable[[], httpx.Response], status: int, within: float = WITHIN
) -> tuple[httpx.Response, float]:
    """Poll (no sleep-then-assert) until the answer has `status`; fail after `within` seconds."""
    started = time.monotonic()
    while True:
        response = check()
        elapsed = time.monotonic() - started
        if response.status_code == status:
            return response, elapsed
        assert elapsed < within, f"still {response.status_code} after {elapsed:.1f}s: {response.text[:300]}"
        time.sleep(0.1)


# --- 401 -------------------------------------------------------------------------------------------


def test_no_authorization_header_is_401(http, route, mock_upstream):
    error = assert_openai_error(chat(http, None), 401, code="missing_api_key", param=None)
    assert "API key" in error["message"]
    assert_openai_error(http.get("/models"), 401, code="missing_api_key")
    assert_openai_error(http.get("/models/codex-mini"), 401, code="missing_api_key")
    assert mock_upstream.requests == []


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic {basic}",
        "Token {key}",
        "{key}",  # no scheme at all
        "Bearer",
        "Bearer omx_",
        "Bearer sk-proj-not-an-omixa-key-0123456789",
        "Bearer omx_live_",
        "Bearer omx_live_thisKeyDoesNotExist0123456789abcdefghijklm",
        "Bearer omx_admin_thisKeyDoesNotExist0123456789abcdefghijkl",
    ],
)
def test_malformed_or_unknown_keys_are_401(http, world, route, mock_upstream, authorization):
    basic = base64.b64encode(f"user:{world.key}".encode()).decode()
    header = authorization.format(key=world.key, basic=basic)
    response = chat(http, None, authorization=header)
    error = assert_openai_error(response, 401, code="invalid_api_key")
    assert world.key not in response.text and "thisKeyDoesNotExist" not in error["message"]
    assert mock_upstream.requests == []
    # The models endpoints answer the same.
    assert_openai_error(http.get("/models", headers={"Authorization": header}), 401, code="invalid_api_key")


def test_unknown_key_stays_401_when_repeated(http, route):
    # The negative cache answers repeats; they must never turn into a success or a 500.
    for _ in range(5):
        assert_openai_error(chat(http, "omx_live_unknownButWellFormed0123456789abcdefghijkl"), 401)


def test_bearer_scheme_is_case_insensitive(http, world, route):
    assert chat(http, None, authorization=f"bearer {world.key}").status_code == 200
    assert chat(http, None, authorization=f"BEARER  {world.key}").status_code == 200


def test_the_sdk_raises_authentication_error_for_a_bad_key(gateway, route):
    client = openai.OpenAI(base_url=gateway.api, api_key="omx_live_wrongwrongwrong", max_retries=0, timeout=20)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(**BODY)
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    assert info.value.response.headers["x-request-id"]


@pytest.mark.parametrize("how", ["service", "command"])
def test_revoked_key_is_refused_within_5s(http, world, route, how):
    assert chat(http, world.key).status_code == 200
    assert models(http, world.key).status_code == 200
    if how == "service":
        api_key_revoke(api_key=world.key_row)
    else:
        call_command("revoke_api_key", "--key-id", str(world.key_row.pk), stdout=io.StringIO())
    response, elapsed = poll_until(lambda: chat(http, world.key), 401)
    error = assert_openai_error(response, 401, code="invalid_api_key")
    assert "revoked" in error["message"]
    assert elapsed < WITHIN
    # It stays refused, on every endpoint, after the snapshot reloads too.
    assert_openai_error(models(http, world.key), 401, code="invalid_api_key")
    for _ in range(3):
        assert_openai_error(chat(http, world.key), 401)


def test_revoking_one_key_leaves_the_others_working(http, world, route):
    second_row, second = api_key_issue(workspace=world.workspace, name="second")
    assert chat(http, second).status_code == 200
    api_key_revoke(api_key=second_row)
    poll_until(lambda: chat(http, second), 401)
    assert chat(http, world.key).status_code == 200
    assert chat(http, world.other_key).status_code == 200


def test_key_created_while_running_works_at_once_and_its_revocation_is_honoured(http, world, gateway, route):
    # The snapshot was loaded before the key existed: the DB lookup on a miss must find it now.
    row, secret = api_key_issue(workspace=world.workspace, name="fresh")
    response = chat(http, secret)
    assert response.status_code == 200, response.text
    assert models(http, secret).status_code == 200
    # A key first seen through the miss path is revoked just as fast.
    api_key_revoke(api_key=row)
    response, _ = poll_until(lambda: chat(http, secret), 401)
    assert_openai_error(response, 401, code="invalid_api_key")


def test_unknown_key_that_is_then_created_is_not_refused_forever(http, world, route):
    # An unknown hash is remembered briefly (negative cache); the remembered miss must expire, even when
    # nothing moves the config revision (bulk_create sends no signal, so no snapshot reload helps).
    secret = "omx_live_" + secrets.token_urlsafe(30)
    assert_openai_error(chat(http, secret), 401, code="invalid_api_key")
    ApiKey.objects.bulk_create(
        [ApiKey(workspace=world.workspace, name="late", prefix=secret[:13], key_hash=hash_api_key(secret))]
    )
    poll_until(lambda: chat(http, secret), 200)


def test_expired_key_is_401(http, world, gateway, route):
    row, secret = api_key_issue(workspace=world.workspace, name="short", expires_at=timezone.now() + timedelta(hours=1))
    row.expires_at = timezone.now() - timedelta(seconds=1)
    row.save(update_fields=["expires_at"])
    gateway.refresh()
    error = assert_openai_error(chat(http, secret), 401, code="expired_api_key")
    assert "expired" in error["message"]
    assert_openai_error(models(http, secret), 401, code="expired_api_key")


def test_expired_key_unknown_to_the_snapshot_is_401(http, world, route):
    # Expired before the gateway ever saw it: the DB lookup path must check expiry too.
    row, secret = api_key_issue(workspace=world.workspace, name="short", expires_at=timezone.now() + timedelta(hours=1))
    ApiKey.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_openai_error(chat(http, secret), 401, code="expired_api_key")


def test_key_that_expires_while_the_gateway_runs_is_refused_within_5s(http, world, gateway, route):
    lifetime = 2.0
    _, secret = api_key_issue(
        workspace=world.workspace, name="brief", expires_at=timezone.now() + timedelta(seconds=lifetime)
    )
    gateway.refresh()
    issued = time.monotonic()
    assert chat(http, secret).status_code == 200
    response, _ = poll_until(lambda: chat(http, secret), 401, within=lifetime + WITHIN)
    assert time.monotonic() - issued < lifetime + WITHIN
    assert_openai_error(response, 401, code="expired_api_key")
    assert chat(http, world.key).status_code == 200


# --- 403 -------------------------------------------------------------------------------------------


def test_admin_scope_key_is_403(http, world, route, mock_upstream):
    _, admin = api_key_issue(workspace=world.workspace, name="mgmt", scope="admin")
    assert admin.startswith("omx_admin_")
    error = assert_openai_error(chat(http, admin), 403, code="wrong_key_scope")
    assert "inference" in error["message"]
    assert_openai_error(models(http, admin), 403, code="wrong_key_scope")
    assert_openai_error(models(http, admin, "/models/codex-mini"), 403, code="wrong_key_scope")
    assert mock_upstream.requests == []


@pytest.fixture
def restricted(world, gateway, mock_upstream, route):
    provider_key_add(
        model_slug="gpt-4.1-mini",
        provider="openai",
        base_url=mock_upstream.url,
        api_key=mock_upstream.openai_key,
        deployment="gpt-4.1-mini",
    )
    _, secret = api_key_issue(workspace=world.workspace, name="mini-only", allowed_models=["gpt-4.1-mini"])
    gateway.refresh()
    return secret


def test_key_whose_allowed_models_exclude_the_model_is_403(http, restricted, mock_upstream):
    error = assert_openai_error(chat(http, restricted), 403, code="model_not_allowed", param="model")
    assert "codex-mini" in error["message"]
    assert mock_upstream.requests == []
    allowed = chat(http, restricted, {**BODY, "model": "gpt-4.1-mini"})
    assert allowed.status_code == 200, allowed.text
    # An unknown model is still a 404, not a 403 (nothing to hide about the catalog).
    assert_openai_error(chat(http, restricted, {**BODY, "model": "nope"}), 404, code="model_not_found")


def test_restricted_key_lists_only_its_models(http, restricted, world):
    listed = models(http, restricted)
    assert listed.status_code == 200 and listed.headers["x-request-id"]
    assert [m["id"] for m in listed.json()["data"]] == ["gpt-4.1-mini"]
    assert models(http, restricted, "/models/gpt-4.1-mini").json()["id"] == "gpt-4.1-mini"
    assert_openai_error(models(http, restricted, "/models/codex-mini"), 404, code="model_not_found")
    # An unrestricted key sees the whole catalog.
    everything = {m["id"] for m in models(http, world.key).json()["data"]}
    assert {"codex-mini", "gpt-4.1-mini", "gemini-2.5-flash"} <= everything


def test_restricted_key_created_while_running_is_restricted_at_once(http, world, route):
    _, secret = api_key_issue(workspace=world.workspace, name="fresh-mini", allowed_models=["gpt-4.1-mini"])
    assert_openai_error(chat(http, secret), 403, code="model_not_allowed")


# --- tenants ---------------------------------------------------------------------------------------


def test_usage_is_recorded_under_the_callers_workspace_only(http, world, gateway, route):
    response = chat(http, world.other_key)
    assert response.status_code == 200, response.text
    gateway.flush_usage()
    event = UsageEvent.objects.get(request_id=response.headers["x-request-id"])
    other_key = ApiKey.objects.get(workspace=world.other_workspace)
    assert event.workspace_id == world.other_workspace.id
    assert event.api_key_id == other_key.id
    assert not UsageEvent.objects.filter(workspace=world.workspace).exists()
    # And acme's own request lands in acme's workspace.
    mine = chat(http, world.key)
    gateway.flush_usage()
    assert UsageEvent.objects.get(request_id=mine.headers["x-request-id"]).workspace_id == world.workspace.id
    assert UsageEvent.objects.filter(workspace=world.other_workspace).count() == 1


def test_refused_requests_record_no_usage(http, world, gateway, route):
    _, admin = api_key_issue(workspace=world.workspace, name="mgmt", scope="admin")
    assert_openai_error(chat(http, admin), 403)
    assert_openai_error(chat(http, "omx_live_nopenopenope0123456789"), 401)
    assert_openai_error(chat(http, world.key, {**BODY, "max_tokens": "x"}), 400)
    gateway.flush_usage()
    assert not UsageEvent.objects.exists()
