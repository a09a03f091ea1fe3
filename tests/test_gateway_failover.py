"""Failover, one case at a time, through the real surface against the mock upstream."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest

from audit.models import AuditLog
from billing.models import UsageEvent
from gateway import breaker
from gateway.models import ProviderKey
from gateway.services import provider_key_add
from tests.gateway_fixtures import free_port, gateway, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.mocks.upstream import (
    Scenario,
    auth_failure,
    insufficient_quota,
    rate_limited,
    server_error,
    unavailable,
)

BODY = {"model": "codex-mini", "messages": [{"role": "user", "content": "hello"}]}


def add_route(mock, *, name: str, priority: int, deployment: str = "codex-mini", **kwargs) -> ProviderKey:
    return provider_key_add(
        model_slug="codex-mini",
        provider="azure-openai",
        base_url=kwargs.pop("base_url", mock.url),
        api_key=kwargs.pop("api_key", mock.azure_key),
        deployment=deployment,
        priority=priority,
        name=name,
        **kwargs,
    )


@pytest.fixture
def two_routes(world, gateway, mock_upstream):
    mock_upstream.add_deployment("codex-mini-backup", reasoning=True)
    first = add_route(mock_upstream, name="primary", priority=1)
    second = add_route(mock_upstream, name="backup", priority=2, deployment="codex-mini-backup")
    gateway.refresh()
    return first, second


def post(gateway, world, body=None, **kwargs) -> httpx.Response:
    return httpx.post(
        gateway.api + "/chat/completions",
        headers={"Authorization": f"Bearer {world.key}"},
        json=body or BODY,
        timeout=kwargs.pop("timeout", 20),
        **kwargs,
    )


def served_by(response: httpx.Response) -> int:
    return int(response.headers["x-omixa-route"])


@pytest.mark.parametrize(
    ("scenario", "outcome"),
    [
        (rate_limited(retry_after=1), "rate_limited"),
        (server_error(500), "server"),
        (server_error(502), "server"),
        (unavailable(), "server"),
        (Scenario(status=408), "timeout"),
    ],
)
def test_retryable_upstream_errors_fail_over_to_the_next_route(
    gateway, world, two_routes, mock_upstream, scenario, outcome
):
    first, second = two_routes
    mock_upstream.script(scenario, deployment="codex-mini")
    response = post(gateway, world)
    assert response.status_code == 200
    assert served_by(response) == second.pk
    assert response.headers["x-omixa-attempts"] == f"{first.pk}:{outcome},{second.pk}:ok"
    gateway.flush_usage()
    event = UsageEvent.objects.get(request_id=response.headers["x-request-id"])
    assert [a["outcome"] for a in event.attempts] == [outcome, "ok"]
    assert event.route_id == second.pk and event.outcome == "completed"


def test_connect_error_fails_over(gateway, world, mock_upstream):
    dead = add_route(mock_upstream, name="dead", priority=1, base_url=f"http://127.0.0.1:{free_port()}")
    alive = add_route(mock_upstream, name="alive", priority=2)
    gateway.refresh()
    response = post(gateway, world)
    assert response.status_code == 200 and served_by(response) == alive.pk
    assert response.headers["x-omixa-attempts"] == f"{dead.pk}:connect,{alive.pk}:ok"


def test_first_byte_timeout_fails_over_and_a_lone_timeout_is_504(gateway, world, mock_upstream):
    slow = add_route(mock_upstream, name="slow", priority=1, first_byte_timeout=0.3)
    mock_upstream.always(Scenario(delay=2.0), deployment="codex-mini")
    mock_upstream.add_deployment("codex-mini-backup", reasoning=True)
    backup = add_route(mock_upstream, name="backup", priority=2, deployment="codex-mini-backup")
    gateway.refresh()
    started = time.monotonic()
    response = post(gateway, world)
    assert response.status_code == 200 and served_by(response) == backup.pk
    assert time.monotonic() - started < 1.8
    assert response.headers["x-omixa-attempts"].startswith(f"{slow.pk}:timeout,")

    backup.delete()
    gateway.refresh()
    response = post(gateway, world)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    gateway.flush_usage()
    assert UsageEvent.objects.get(request_id=response.headers["x-request-id"]).outcome == "timeout"


@pytest.mark.parametrize("scenario", [auth_failure(401), auth_failure(403), insufficient_quota()])
def test_bad_secret_or_quota_takes_the_key_out_of_rotation(gateway, world, two_routes, mock_upstream, scenario):
    first, second = two_routes
    mock_upstream.script(scenario, deployment="codex-mini")
    response = post(gateway, world)
    assert response.status_code == 200 and served_by(response) == second.pk
    # Persisted for every worker and for the operator (the admin shows the reason).
    deadline = time.monotonic() + 5
    while not ProviderKey.objects.get(pk=first.pk).disabled_reason:
        assert time.monotonic() < deadline, "the key was not taken out of rotation"
        time.sleep(0.05)
    # ... and audited as the system's doing, in the same transaction (never with the secret).
    entry = AuditLog.objects.get(action="provider_key.out_of_rotation", target_id=str(first.pk))
    assert entry.actor_kind == "system" and entry.workspace_id is None
    assert entry.old["disabled_reason"] == "" and entry.new["disabled_reason"]
    assert mock_upstream.azure_key not in str(entry.new)
    gateway.refresh()
    before = len(mock_upstream.requests_for("codex-mini"))
    for _ in range(3):
        assert served_by(post(gateway, world)) == second.pk
    assert len(mock_upstream.requests_for("codex-mini")) == before  # never tried again

    # An operator re-enables it: it serves again.
    ProviderKey.objects.filter(pk=first.pk).update(disabled_reason="", disabled_at=None)
    ProviderKey.objects.get(pk=first.pk).save()
    gateway.refresh()
    assert served_by(post(gateway, world)) == first.pk


def test_deployment_missing_404_fails_over(gateway, world, mock_upstream):
    missing = add_route(mock_upstream, name="missing", priority=1, deployment="no-such-deployment")
    good = add_route(mock_upstream, name="good", priority=2)
    gateway.refresh()
    response = post(gateway, world)
    assert response.status_code == 200 and served_by(response) == good.pk
    assert response.headers["x-omixa-attempts"] == f"{missing.pk}:not_found,{good.pk}:ok"


def test_client_error_from_upstream_is_a_400_without_failover(gateway, world, two_routes, mock_upstream):
    first, _ = two_routes
    mock_upstream.script(
        Scenario(
            status=400,
            body={
                "error": {
                    "message": "Invalid 'messages': bad role.",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "invalid_value",
                }
            },
        ),
        deployment="codex-mini",
    )
    response = post(gateway, world)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Invalid 'messages': bad role."
    assert response.json()["error"]["param"] == "messages"
    assert mock_upstream.requests_for("codex-mini-backup") == []
    assert response.headers["x-omixa-attempts"] == f"{first.pk}:client"


def test_all_routes_rate_limited_is_503_with_retry_after(gateway, world, two_routes, mock_upstream):
    mock_upstream.always(rate_limited(retry_after=7))
    response = post(gateway, world)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "routes_unavailable"
    gateway.flush_usage()
    event = UsageEvent.objects.get(request_id=response.headers["x-request-id"])
    assert event.outcome == "upstream_error" and event.http_status == 503 and event.output_tokens == 0


def test_all_routes_failing_with_5xx_is_502(gateway, world, two_routes, mock_upstream):
    mock_upstream.always(server_error(500))
    response = post(gateway, world)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_error"


def test_one_blip_does_not_cool_a_route_down_but_repeated_failures_do(gateway, world, two_routes, mock_upstream):
    first, second = two_routes
    mock_upstream.script(server_error(500), deployment="codex-mini")
    assert served_by(post(gateway, world)) == second.pk
    assert served_by(post(gateway, world)) == first.pk  # one blip: still first in line

    mock_upstream.script(server_error(500), deployment="codex-mini", times=breaker.THRESHOLD)
    for _ in range(breaker.THRESHOLD):
        post(gateway, world)
    tried = len(mock_upstream.requests_for("codex-mini"))
    response = post(gateway, world)
    assert served_by(response) == second.pk
    assert response.headers["x-omixa-attempts"] == f"{first.pk}:cooldown,{second.pk}:ok"
    assert len(mock_upstream.requests_for("codex-mini")) == tried  # skipped, not tried


def test_half_open_probe_brings_a_route_back(gateway, world, two_routes, mock_upstream, monkeypatch):
    monkeypatch.setattr(breaker, "BASE_COOLDOWN", 0.5)
    first, second = two_routes
    mock_upstream.script(server_error(503), deployment="codex-mini", times=breaker.THRESHOLD)
    for _ in range(breaker.THRESHOLD):
        post(gateway, world)
    assert served_by(post(gateway, world)) == second.pk
    time.sleep(0.6)
    probe = post(gateway, world)
    assert served_by(probe) == first.pk  # the half-open probe succeeded
    assert served_by(post(gateway, world)) == first.pk  # closed again


def test_failed_probe_reopens_with_a_longer_cooldown(gateway, world, two_routes, mock_upstream, monkeypatch):
    monkeypatch.setattr(breaker, "BASE_COOLDOWN", 0.4)
    first, second = two_routes
    mock_upstream.script(server_error(500), deployment="codex-mini", times=breaker.THRESHOLD + 1)
    for _ in range(breaker.THRESHOLD):
        post(gateway, world)
    time.sleep(0.5)
    probe = post(gateway, world)  # the probe fails: open again, for 0.8 s
    assert probe.headers["x-omixa-attempts"] == f"{first.pk}:server,{second.pk}:ok"
    time.sleep(0.5)
    assert post(gateway, world).headers["x-omixa-attempts"] == f"{first.pk}:cooldown,{second.pk}:ok"
    time.sleep(0.4)
    assert served_by(post(gateway, world)) == first.pk


def test_stream_failing_in_its_first_event_fails_over(gateway, world, two_routes, mock_upstream):
    _, second = two_routes
    # Azure's annotation-only event arrives first, then an error: nothing was sent to the client yet.
    mock_upstream.script(Scenario(error_after=0, annotation_first=True), deployment="codex-mini")
    response = post(gateway, world, body={**BODY, "stream": True})
    assert response.status_code == 200 and served_by(response) == second.pk
    assert b"data: [DONE]" in response.content
    assert b'"error"' not in response.content


def test_stream_broken_before_any_event_fails_over(gateway, world, two_routes, mock_upstream):
    _, second = two_routes
    mock_upstream.script(Scenario(break_after=0), deployment="codex-mini")
    response = post(gateway, world, body={**BODY, "stream": True})
    assert response.status_code == 200 and served_by(response) == second.pk


def test_equal_priorities_share_load(gateway, world, mock_upstream):
    mock_upstream.add_deployment("codex-mini-b", reasoning=True)
    a = add_route(mock_upstream, name="a", priority=5)
    b = add_route(mock_upstream, name="b", priority=5, deployment="codex-mini-b")
    gateway.refresh()
    counts = Counter(served_by(post(gateway, world)) for _ in range(30))
    assert counts[a.pk] >= 5 and counts[b.pk] >= 5


def test_model_without_routes_is_503(gateway, world):
    gateway.refresh()
    response = post(gateway, world)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_route"


def test_admin_shows_the_health_the_gateway_sees(gateway, world, two_routes, mock_upstream, client):
    from django.contrib.auth import get_user_model

    first, _ = two_routes
    mock_upstream.script(server_error(500), deployment="codex-mini", times=breaker.THRESHOLD)
    for _ in range(breaker.THRESHOLD):
        post(gateway, world)
    staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-not-used-elsewhere")
    client.force_login(staff)
    page = client.get("/admin/gateway/providerkey/").content.decode()
    row = next(r for r in page.split("<tr") if f"/admin/gateway/providerkey/{first.pk}/change/" in r)
    assert "cooling down" in row
