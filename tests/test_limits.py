"""Limits through the real surface: the served gateway (in process; Redis when REDIS_URL is set),
the official `openai` SDK and raw HTTP, the mock upstream, and the ledger the workers write.

Multi-process and outage tests are in test_limits_redis.py; the store's own semantics in
test_limits_store.py.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import LedgerEntry, UsageEvent
from gateway import limits, runtime
from gateway.limits import from_units, period_of
from gateway.limits_memory import MemoryLimiter
from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401

MESSAGES = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def route(world, gateway, mock_upstream):
    return mock_route(gateway, mock_upstream)


@pytest.fixture
def client(gateway, world):
    return openai.OpenAI(base_url=gateway.api, api_key=world.key, max_retries=0, timeout=20)


def clear_limits_store() -> None:
    """Ids restart with every test database: forget limit counters a previous test left in Redis."""
    from django.conf import settings

    if not settings.REDIS_URL:
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{settings.OMIXA_REDIS_PREFIX}:lim:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _fresh_limits_store():
    clear_limits_store()


def on_gateway_loop(coro):
    rt = runtime.current()
    assert rt is not None and rt.loop is not None
    return asyncio.run_coroutine_threadsafe(coro, rt.loop).result(timeout=10)


def set_limits(gateway, row, **fields) -> None:
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
    gateway.refresh()


def post(gateway, key: str, **body) -> httpx.Response:
    payload = {"model": "codex-mini", "messages": MESSAGES, **body}
    return httpx.post(
        gateway.api + "/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=payload, timeout=20
    )


def test_without_limits_no_store_call_and_no_ratelimit_headers(gateway, world, route):
    class Spy(MemoryLimiter):
        calls = 0

        async def _admit(self, admission, *, ttl):
            Spy.calls += 1
            return await super()._admit(admission, ttl=ttl)

    runtime.current().limiter = Spy()
    response = post(gateway, world.key)
    assert response.status_code == 200
    assert Spy.calls == 0
    assert not [h for h in response.headers if h.startswith("x-ratelimit-")]

    set_limits(gateway, world.key_row, rpm_limit=10)
    response = post(gateway, world.key)
    assert Spy.calls == 1
    assert response.headers["x-ratelimit-limit-requests"] == "10"
    assert response.headers["x-ratelimit-remaining-requests"] == "9"


def test_key_rpm_limit_is_a_429_in_openais_shape_and_nothing_goes_upstream(
    gateway, world, route, client, mock_upstream
):
    set_limits(gateway, world.key_row, rpm_limit=2)
    seen = []
    limits.add_listener(lambda kind, scope, reason: seen.append((kind, scope, reason)))
    for remaining in ("1", "0"):
        raw = client.chat.completions.with_raw_response.create(model="codex-mini", messages=MESSAGES)
        assert raw.headers["x-ratelimit-remaining-requests"] == remaining
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        assert raw.parse().choices[0].message.content
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="codex-mini", messages=MESSAGES)
    error = caught.value
    assert error.code == "rate_limit_exceeded"
    assert error.body["type"] == "rate_limit_error" and error.body["param"] is None
    assert "this API key" in error.body["message"] and "(RPM): limit 2, used 2" in error.body["message"]
    assert 55 <= int(error.response.headers["Retry-After"]) <= 60
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.response.headers["x-request-id"]
    assert len(mock_upstream.requests_for("codex-mini")) == 2
    assert ("rejected", "key", "requests") in seen
    scraped = httpx.get(gateway.url + "/metrics").text
    assert 'omixa_limit_rejections_total{limit="requests",scope="key"}' in scraped
    # A 429 of our own is like any other answer given before a route: no usage event, nothing billed.
    gateway.flush_usage()
    assert UsageEvent.objects.filter(api_key=world.key_row).count() == 2


def test_workspace_limit_covers_every_key_of_the_workspace(gateway, world, route):
    from workspaces.services import api_key_issue

    _, second = api_key_issue(workspace=world.workspace, name="second")
    set_limits(gateway, world.workspace, rpm_limit=3)
    statuses = [post(gateway, key).status_code for key in (world.key, second, world.key, second)]
    assert statuses == [200, 200, 200, 429]
    assert post(gateway, world.other_key).status_code == 200  # another workspace is not affected


def test_tpm_reserves_max_output_then_settles_to_the_answers_usage(gateway, world, route, client):
    set_limits(gateway, world.key_row, tpm_limit=100_000)
    first = client.chat.completions.with_raw_response.create(model="codex-mini", messages=MESSAGES, max_tokens=5000)
    reserved_first = 100_000 - int(first.headers["x-ratelimit-remaining-tokens"])
    assert reserved_first > 5000  # the input estimate + max_tokens
    used_first = first.parse().usage.total_tokens
    assert used_first < reserved_first
    on_gateway_loop(runtime.current().limiter.drain())
    second = client.chat.completions.with_raw_response.create(model="codex-mini", messages=MESSAGES, max_tokens=5000)
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == 100_000 - used_first - reserved_first
    assert second.headers["x-ratelimit-limit-tokens"] == "100000"


def test_request_larger_than_the_tpm_limit_is_refused_before_any_route(gateway, world, route, mock_upstream):
    set_limits(gateway, world.key_row, tpm_limit=1000)
    response = post(gateway, world.key, max_tokens=2000)
    assert response.status_code == 429
    body = response.json()["error"]
    assert body["code"] == "rate_limit_exceeded" and "Request too large" in body["message"]
    assert response.headers["Retry-After"]
    assert mock_upstream.requests_for("codex-mini") == []


def test_budget_used_up_is_429_budget_exceeded_until_the_period_ends(gateway, world, route, mock_upstream):
    set_limits(gateway, world.key_row, budget_amount=Decimal("0.000001"), budget_period="day")
    response = post(gateway, world.key, max_tokens=100)
    assert response.status_code == 429
    body = response.json()["error"]
    assert body["code"] == "budget_exceeded" and body["type"] == "insufficient_quota"
    assert "per day (UTC)" in body["message"]
    _, end = period_of("day", time.time())
    assert abs(int(response.headers["Retry-After"]) - (end - time.time())) < 5
    assert mock_upstream.requests_for("codex-mini") == []
    # A budget with no period is no budget.
    set_limits(gateway, world.key_row, budget_period="none")
    assert post(gateway, world.key, max_tokens=100).status_code == 200


def test_spent_equals_the_ledger_after_streams_and_answers(gateway, world, route, client):
    set_limits(gateway, world.workspace, budget_amount=Decimal("5"), budget_period="month")
    for _ in range(3):
        client.chat.completions.create(model="codex-mini", messages=MESSAGES, max_tokens=300)
        stream = client.chat.completions.create(
            model="codex-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        assert chunks[-1].usage is not None
    gateway.flush_usage()
    on_gateway_loop(runtime.current().limiter.drain())
    deadline = time.monotonic() + 10
    while LedgerEntry.objects.filter(workspace=world.workspace).count() < 6:
        assert time.monotonic() < deadline, "usage was not priced"
        time.sleep(0.05)
    ledger = sum(LedgerEntry.objects.filter(workspace=world.workspace).values_list("amount", flat=True), Decimal(0))
    assert ledger > 0
    period, _ = period_of("month", time.time())
    spent, reserved = on_gateway_loop(runtime.current().limiter.spent(f"workspace:{world.workspace.id}", period))
    assert (from_units(spent), reserved) == (ledger, 0)


def test_a_request_that_reaches_no_route_releases_its_reservation(gateway, world, mock_upstream):
    # codex-mini has no route in this test: 503 no_route, and the reservation is given back.
    set_limits(gateway, world.key_row, budget_amount=Decimal("1"), budget_period="day", tpm_limit=50_000)
    response = post(gateway, world.key, max_tokens=1000)
    assert response.status_code == 503 and response.json()["error"]["code"] == "no_route"
    on_gateway_loop(runtime.current().limiter.drain())
    period, _ = period_of("day", time.time())
    assert on_gateway_loop(runtime.current().limiter.spent(f"key:{world.key_row.id}", period)) == (0, 0)


def test_stream_answers_carry_the_ratelimit_headers(gateway, world, route):
    set_limits(gateway, world.key_row, rpm_limit=5, tpm_limit=90_000)
    response = post(gateway, world.key, stream=True)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-ratelimit-remaining-requests"] == "4"
    assert int(response.headers["x-ratelimit-remaining-tokens"]) < 90_000


def test_admin_edits_workspace_limits_and_the_gateway_applies_them(gateway, world, route, client):
    from django.contrib.auth import get_user_model
    from django.test import Client

    operator = get_user_model().objects.create_superuser("operator", "operator@example.com", None)
    browser = Client()
    browser.force_login(operator)
    url = f"/admin/workspaces/workspace/{world.workspace.pk}/change/"
    page = browser.get(url)
    assert page.status_code == 200
    for name in ("rpm_limit", "tpm_limit", "budget_amount", "budget_period", "limits_fail_mode"):
        assert f'name="{name}"' in page.content.decode()
    form = {
        "name": world.workspace.name,
        "slug": world.workspace.slug,
        "currency": "USD",
        "rpm_limit": "1",
        "tpm_limit": "",
        "budget_amount": "",
        "budget_period": "none",
        "limits_fail_mode": "closed",
    }
    # The inlines' management forms: no members in this workspace, its keys shown read-only.
    assert not world.workspace.memberships.exists()
    keys = list(world.workspace.api_keys.all())
    form.update({"memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"})
    form.update({"api_keys-TOTAL_FORMS": str(len(keys)), "api_keys-INITIAL_FORMS": str(len(keys))})
    for i, row in enumerate(keys):
        form[f"api_keys-{i}-id"] = str(row.pk)
        form[f"api_keys-{i}-workspace"] = str(world.workspace.pk)
    saved = browser.post(url, form)
    assert saved.status_code == 302, saved.content.decode()[-3000:]
    world.workspace.refresh_from_db()
    assert (world.workspace.rpm_limit, world.workspace.limits_fail_mode) == (1, "closed")
    gateway.refresh()
    assert post(gateway, world.key).status_code == 200
    assert post(gateway, world.key).status_code == 429


def test_a_restarted_store_seeds_the_periods_spent_from_the_ledger(gateway, world, route, client):
    set_limits(gateway, world.key_row, budget_amount=Decimal("1"), budget_period="day")
    for _ in range(2):
        client.chat.completions.create(model="codex-mini", messages=MESSAGES, max_tokens=200)
    gateway.flush_usage()
    deadline = time.monotonic() + 10
    while LedgerEntry.objects.filter(usage_event__api_key=world.key_row).count() < 2:
        assert time.monotonic() < deadline, "usage was not priced"
        time.sleep(0.05)
    ledger = sum(LedgerEntry.objects.filter(workspace=world.workspace).values_list("amount", flat=True), Decimal(0))

    # The store forgets everything (Redis restarted empty; or a new in-process limiter).
    rt = runtime.current()
    on_gateway_loop(rt.limiter.drain())
    clear_limits_store()
    if isinstance(rt.limiter, MemoryLimiter):
        fresh = MemoryLimiter()
        fresh.run_sync = rt.db
        rt.limiter = fresh
    # Left: less than one more request's worst case (~200 tokens out at $6 per 1M = $0.0012).
    set_limits(gateway, world.key_row, budget_amount=ledger + Decimal("0.001"))
    response = post(gateway, world.key, max_tokens=200)
    assert response.status_code == 429 and response.json()["error"]["code"] == "budget_exceeded"
    period, _ = period_of("day", time.time())
    spent, reserved = on_gateway_loop(runtime.current().limiter.spent(f"key:{world.key_row.id}", period))
    assert (from_units(spent), reserved) == (ledger, 0)
