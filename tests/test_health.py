"""/healthz answers while the process lives; /readyz checks each configured dependency, with detail.

Outages are real but private: a throwaway `redis-server` on its own port that the test stops, and a
database DSN pointing at a closed port. The machine's PostgreSQL and Redis are never touched.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from django.db import connections

from tests.gateway_fixtures import free_port, gateway  # noqa: F401


class ThrowawayRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> ThrowawayRedis:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
                return self
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the throwaway redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = ThrowawayRedis().start()
    try:
        yield server
    finally:
        server.stop()


def readyz(client) -> tuple[int, dict]:
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 4, "a readiness probe must answer fast even when a dependency is down"
    return response.status_code, response.json()


def test_healthz_answers_without_touching_any_dependency(client, db, settings, django_assert_num_queries):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # unreachable: liveness must not care
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_200_with_timed_detail_when_everything_is_up(client, db, settings, throwaway_redis):
    settings.REDIS_URL = throwaway_redis.url
    settings.CELERY_BROKER_URL = throwaway_redis.url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    status, body = readyz(client)
    assert status == 200, body
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "redis", "broker"}
    for check in body["checks"].values():
        assert check["status"] == "up"
        assert 0 <= check["ms"] < 2000


def test_readyz_checks_only_what_is_configured(client, db, settings):
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_URL = ""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    status, body = readyz(client)
    assert status == 200
    assert set(body["checks"]) == {"database"}


def test_readyz_turns_503_when_redis_goes_down_and_200_when_it_is_back(client, db, settings, throwaway_redis):
    settings.REDIS_URL = throwaway_redis.url
    assert readyz(client)[0] == 200
    throwaway_redis.stop()
    status, body = readyz(client)
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["status"] == "down"
    assert "Connection" in body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["status"] == "up"
    throwaway_redis.start()
    assert readyz(client)[0] == 200


def test_readyz_turns_503_when_the_broker_is_down(client, db, settings):
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings.CELERY_TASK_ALWAYS_EAGER = False
    status, body = readyz(client)
    assert status == 503
    assert body["checks"]["broker"]["status"] == "down"
    assert body["checks"]["database"]["status"] == "up"


def test_readyz_turns_503_when_the_database_is_unreachable(client, db, settings, monkeypatch):
    settings.REDIS_URL = ""
    params = dict(connections.settings["default"])
    if params["ENGINE"].endswith("sqlite3"):
        bad = {**params, "NAME": "/nonexistent-dir/omixa.sqlite3"}
    else:
        bad = {**params, "HOST": "127.0.0.1", "PORT": str(free_port()), "PASSWORD": "do-not-show-me"}
    # The check opens its own connection from these settings; the test's connection is untouched.
    monkeypatch.setitem(connections.settings, "default", bad)
    status, body = readyz(client)
    assert status == 503
    database = body["checks"]["database"]
    assert database["status"] == "down"
    assert database["error"]
    assert "do-not-show-me" not in str(body)


def test_probes_are_served_by_the_running_gateway(gateway, db):
    assert httpx.get(gateway.url + "/healthz", timeout=5).status_code == 200
    response = httpx.get(gateway.url + "/readyz", timeout=5)
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["database"]["status"] == "up"
    assert httpx.head(gateway.url + "/healthz", timeout=5).status_code == 200  # load balancers may probe with HEAD
    assert httpx.put(gateway.url + "/metrics", timeout=5).status_code in (403, 405)  # CSRF refuses it first
