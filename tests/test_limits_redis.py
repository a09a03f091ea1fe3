"""Limits that hold across gateway processes, on a real Redis.

- Two (or three) uvicorn servers as separate processes share the test database and Redis, under
  concurrent load: never more admitted than the limit; the spent budget equals the ledger's sum;
  a reservation whose worker was killed mid-request expires (a short TTL for the test).
  These need REDIS_URL (CI sets it); skipped without it.
- A throwaway `redis-server` of our own (never the shared one) stopped, frozen and restarted under
  a served gateway: fail-open or fail-closed per workspace, no 500, no stall.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from bench.procs import Proc, free_port, port_open
from billing.models import LedgerEntry, UsageEvent
from gateway import limits
from gateway.limits import from_units, period_of
from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.mocks.upstream import Scenario
from tests.test_limits import clear_limits_store

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = [{"role": "user", "content": "Say hello."}]


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def workers(transactional_db, settings, tmp_path):
    """Start N gateway processes on the test database and Redis: `workers(2, TTL=...)` → URLs."""
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: set REDIS_URL (CI does)")
    clear_limits_store()
    started: list[Proc] = []

    def start(count: int, **extra_env: str) -> list[Proc]:
        for _ in range(count):
            port = free_port()
            env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            env.update(
                DJANGO_SETTINGS_MODULE="tests.settings",
                DATABASE_URL=_database_url(),
                REDIS_URL=settings.REDIS_URL,
                OMIXA_REDIS_PREFIX=settings.OMIXA_REDIS_PREFIX,  # the test process's namespace
                OMIXA_USAGE_SPOOL_DIR=str(tmp_path / f"spool-{len(started)}"),
                OMIXA_LOG_FORMAT="plain",
                **extra_env,
            )
            args = [sys.executable, "-m", "uvicorn", "omixa.asgi:application", "--host", "127.0.0.1"]
            args += ["--port", str(port), "--lifespan", "on", "--no-access-log", "--log-level", "warning"]
            proc = Proc(f"gateway-{len(started)}", args, port, tmp_path, env=env)
            started.append(proc)
            proc.start(timeout=60)
        return started[-count:]

    yield start
    for proc in started:
        proc.stop()


def url(proc: Proc) -> str:
    return f"http://127.0.0.1:{proc.port}/api/v1/chat/completions"


async def _fire(urls: list[str], key: str, count: int, **body) -> list[httpx.Response]:
    payload = {"model": "codex-mini", "messages": MESSAGES, **body}
    headers = {"Authorization": f"Bearer {key}"}
    limits_ = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(timeout=30, limits=limits_) as client:
        return await asyncio.gather(
            *(client.post(urls[i % len(urls)], json=payload, headers=headers) for i in range(count))
        )


def fire(urls: list[str], key: str, count: int, **body) -> list[httpx.Response]:
    return asyncio.run(_fire(urls, key, count, **body))


def spent(settings, scope: str, kind: str) -> tuple[Decimal, Decimal]:
    import redis.asyncio as aioredis

    from gateway.limits_redis import RedisLimiter

    async def read():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            return await RedisLimiter(client).spent(scope, period_of(kind, time.time())[0])
        finally:
            await client.aclose()

    units, reserved = asyncio.run(read())
    return from_units(units), from_units(reserved)


def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def route_to(mock) -> None:
    from gateway.services import provider_key_add

    provider_key_add(
        model_slug="codex-mini",
        provider="azure-openai",
        base_url=mock.url,
        api_key=mock.azure_key,
        deployment="codex-mini",
        priority=10,
    )


def test_two_processes_under_concurrent_load_never_admit_more_than_the_rate_limits(workers, world, mock_upstream):
    route_to(mock_upstream)
    world.key_row.rpm_limit = 7
    world.key_row.save()
    world.workspace.rpm_limit = 12  # the workspace's limit, shared by its two keys
    world.workspace.save()
    from workspaces.services import api_key_issue

    _, second = api_key_issue(workspace=world.workspace, name="second")
    urls = [url(p) for p in workers(2)]

    first_wave = fire(urls, world.key, 30)
    statuses = sorted(r.status_code for r in first_wave)
    assert statuses == [200] * 7 + [429] * 23
    assert {r.json()["error"]["code"] for r in first_wave if r.status_code == 429} == {"rate_limit_exceeded"}
    assert sorted(r.headers["x-ratelimit-remaining-requests"] for r in first_wave if r.status_code == 200) == [
        str(n) for n in range(7)
    ]
    second_wave = fire(urls, second, 30)  # the workspace has 5 left
    assert sorted(r.status_code for r in second_wave) == [200] * 5 + [429] * 25
    assert all("this workspace" in r.json()["error"]["message"] for r in second_wave if r.status_code == 429)
    assert len(mock_upstream.requests_for("codex-mini")) == 12


def test_two_processes_share_one_budget_and_spent_equals_the_ledger(workers, world, mock_upstream, settings):
    route_to(mock_upstream)
    worst = (Decimal(20) * Decimal("1.5") + Decimal(1000) * Decimal(6)) / 10**6  # ~20 input tokens + max 1000 out
    world.key_row.budget_amount = Decimal("0.05")  # ~8 requests in flight at their worst case
    world.key_row.budget_period = "day"
    world.key_row.save()
    urls = [url(p) for p in workers(2)]

    answers = fire(urls, world.key, 40, max_tokens=1000)
    admitted = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code != 200]
    assert {r.status_code for r in refused} == {429}
    assert {r.json()["error"]["code"] for r in refused} == {"budget_exceeded"}
    assert int(Decimal("0.05") / worst) - 1 <= len(admitted) < 40
    ids = [r.headers["x-request-id"] for r in admitted]

    wait_for(lambda: LedgerEntry.objects.filter(usage_event__request_id__in=ids).count() == len(ids), what="pricing")
    ledger = sum(
        LedgerEntry.objects.filter(usage_event__request_id__in=ids).values_list("amount", flat=True), Decimal(0)
    )
    assert UsageEvent.objects.filter(api_key=world.key_row).count() == len(admitted)  # 429s are not recorded
    wait_for(lambda: spent(settings, f"key:{world.key_row.id}", "day")[1] == 0, what="settlements")
    total, reserved = spent(settings, f"key:{world.key_row.id}", "day")
    assert total == ledger and reserved == 0
    assert 0 < total <= Decimal("0.05")


def test_a_killed_workers_reservation_expires(workers, world, mock_upstream, settings):
    route_to(mock_upstream)
    world.key_row.budget_amount = Decimal("0.0075")  # one request at its worst case (max_tokens 1000)
    world.key_row.budget_period = "month"
    world.key_row.save()
    doomed, survivor = workers(2, OMIXA_LIMITS_RESERVATION_TTL="4")
    mock_upstream.script(Scenario(delay=60))

    def hang():
        try:
            httpx.post(url(doomed), json={"model": "codex-mini", "messages": MESSAGES, "max_tokens": 1000},
                       headers={"Authorization": f"Bearer {world.key}"}, timeout=60)  # fmt: skip
        except httpx.HTTPError:
            pass  # its server is killed under it

    thread = threading.Thread(target=hang, daemon=True)
    thread.start()
    mock_upstream.wait_for_requests(1, timeout=20)
    reserved_at = time.monotonic()
    doomed.popen.kill()  # the worker dies mid-request: nobody will settle its reservation
    doomed.popen.wait(10)
    thread.join(10)

    _, reserved = spent(settings, f"key:{world.key_row.id}", "month")
    assert reserved > 0
    blocked = fire([url(survivor)], world.key, 1, max_tokens=1000)[0]
    assert blocked.status_code == 429 and blocked.json()["error"]["code"] == "budget_exceeded"
    assert blocked.headers["Retry-After"] == "1"  # a reservation holds it, not spending

    time.sleep(max(0.0, reserved_at + 4.5 - time.monotonic()))
    assert spent(settings, f"key:{world.key_row.id}", "month") == (0, 0)
    assert fire([url(survivor)], world.key, 1, max_tokens=1000)[0].status_code == 200


# ---- Redis going away under a served gateway (a throwaway redis-server of our own) --------------------
class ThrowawayRedis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.popen = subprocess.Popen(
            [*args, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: port_open(self.port), timeout=10, what="redis-server")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)
            self.popen.terminate()
            self.popen.wait(10)


@pytest.fixture
def throwaway_redis(settings, tmp_path, monkeypatch):
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server binary for a throwaway instance")
    from gateway import limits_redis

    monkeypatch.setattr(limits_redis, "REDIS_BACKOFF", 0.5)  # retry Redis soon after it comes back
    server = ThrowawayRedis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url  # read when the served gateway starts (the fixture after this one)
    yield server
    server.stop()


@pytest.fixture
def served(throwaway_redis, gateway, world, mock_upstream):
    mock_route(gateway, mock_upstream)
    world.key_row.rpm_limit = 100
    world.key_row.save()
    gateway.refresh()
    return gateway


def _post(gateway, key: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        gateway.api + "/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "codex-mini", "messages": MESSAGES},
        timeout=20,
    )
    return response, time.monotonic() - started


def test_redis_stopped_mid_test_fails_open_or_closed_per_workspace_never_500(served, throwaway_redis, world):
    from gateway import runtime
    from gateway.limits_redis import RedisLimiter

    assert isinstance(runtime.current().limiter, RedisLimiter)
    response, _ = _post(served, world.key)
    assert response.status_code == 200 and response.headers["x-ratelimit-remaining-requests"] == "99"

    throwaway_redis.stop()
    opened = limits.counts[("unavailable", "", "open")]
    response, took = _post(served, world.key)
    assert response.status_code == 200, response.text  # fail-open: answered, without limits
    assert "x-ratelimit-remaining-requests" not in response.headers
    assert took < 2.0
    assert limits.counts[("unavailable", "", "open")] == opened + 1

    world.workspace.limits_fail_mode = "closed"
    world.workspace.save()
    served.refresh()
    response, took = _post(served, world.key)
    assert response.status_code == 503, response.text
    body = response.json()["error"]
    assert body["code"] == "limits_unavailable" and body["type"] == "service_unavailable"
    assert response.headers["Retry-After"] == "5" and took < 2.0
    assert 'omixa_limits_store_unavailable_total{fail_mode="closed"}' in httpx.get(served.url + "/metrics").text

    throwaway_redis.start()  # back on the same port: limits apply again after the short backoff
    time.sleep(0.6)
    response, _ = _post(served, world.key)
    # A Redis that restarted empty (no persistence here) starts the window anew.
    assert response.status_code == 200 and response.headers["x-ratelimit-remaining-requests"] == "99"


def test_a_frozen_redis_costs_a_short_timeout_not_a_stall(served, throwaway_redis, world):
    assert _post(served, world.key)[0].status_code == 200
    throwaway_redis.popen.send_signal(signal.SIGSTOP)  # accepts connections, never answers
    try:
        response, took = _post(served, world.key)
        assert response.status_code == 200  # fail-open after the 0.5 s socket timeout
        assert took < 2.0
        response, took = _post(served, world.key)  # within the backoff: Redis is not even tried
        assert response.status_code == 200 and took < 0.5
    finally:
        throwaway_redis.popen.send_signal(signal.SIGCONT)
