"""The management API and the gateway together, over HTTP against the served ASGI app: a key made
through the API answers on the gateway; the request's record, found by its x-request-id, has the
answer's tokens and exact cost; revoking or rotating through the API takes the old key off the gateway."""

from __future__ import annotations

import httpx
import openai
import pytest

from billing.services import usage_price
from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from workspaces.models import ApiKey
from workspaces.services import api_key_issue

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def management(gateway, world):
    _, secret = api_key_issue(workspace=world.workspace, name="ops", scope=ApiKey.Scope.ADMIN)
    with httpx.Client(
        base_url=f"{gateway.url}/api/v1/workspaces/{world.workspace.slug}/",
        headers={"Authorization": f"Bearer {secret}"},
        timeout=20,
    ) as client:
        yield client


def sdk(gateway, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.api, api_key=secret, max_retries=0, timeout=20)


def test_a_key_made_through_the_api_serves_and_its_request_record_matches_the_answer(
    gateway, world, management, mock_upstream
):
    mock_route(gateway, mock_upstream)
    created = management.post("keys/", json={"name": "made-by-api"})
    assert created.status_code == 201
    secret = created.json()["key"]
    gateway.refresh()

    raw = sdk(gateway, secret).chat.completions.with_raw_response.create(model="codex-mini", messages=HELLO)
    answer = raw.parse()
    request_id = raw.headers["x-request-id"]
    gateway.flush_usage()
    usage_price(request_ids=[request_id])

    record = management.get(f"requests/{request_id}/")
    assert record.status_code == 200, record.text
    body = record.json()
    assert body["key"]["id"] == created.json()["id"] and body["status"] == "completed"
    assert body["usage"]["prompt_tokens"] == answer.usage.prompt_tokens
    assert body["usage"]["completion_tokens"] == answer.usage.completion_tokens
    assert body["cost"] == raw.http_response.json()["usage"]["cost"]  # the gateway's exact figure, as a string
    assert body["route"]["id"] == int(raw.headers["x-omixa-route"])
    assert [a["route_id"] for a in body["attempts"]] == [body["route"]["id"]]


def test_revoking_and_rotating_through_the_api_take_the_old_key_off_the_gateway(gateway, world, management):
    created = management.post("keys/", json={"name": "short-lived"}).json()
    gateway.refresh()
    assert sdk(gateway, created["key"]).models.list().data

    rotated = management.post(f"keys/{created['id']}/rotate/", json={}).json()
    gateway.refresh()
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, created["key"]).models.list()
    assert sdk(gateway, rotated["key"]["key"]).models.list().data

    assert management.post(f"keys/{rotated['key']['id']}/revoke/").status_code == 200
    gateway.refresh()
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, rotated["key"]["key"]).models.list()


def test_over_the_served_app_an_inference_key_gets_403_and_no_key_401(gateway, world):
    url = f"{gateway.url}/api/v1/workspaces/{world.workspace.slug}/keys/"
    assert httpx.get(url, headers={"Authorization": f"Bearer {world.key}"}).status_code == 403
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "authentication_error"
    # And a management key on the gateway is refused there (403), as before.
    _, admin = api_key_issue(workspace=world.workspace, name="ops2", scope=ApiKey.Scope.ADMIN)
    gateway.refresh()
    assert httpx.get(f"{gateway.api}/models", headers={"Authorization": f"Bearer {admin}"}).status_code == 403
