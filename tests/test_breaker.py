"""The circuit breaker, in process and shared through Redis by several gateway workers."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway import breaker
from gateway.breaker import Breaker


def run(coro):
    return asyncio.run(coro)


def test_in_process_opens_after_threshold_within_window():
    async def scenario():
        b = Breaker()
        for _ in range(breaker.THRESHOLD - 1):
            await b.record_failure(7)
        assert await b.available(7)
        await b.record_failure(7)
        assert not await b.available(7)
        assert b.states()[7] == "open"

    run(scenario())


def test_failures_outside_the_window_do_not_add_up(monkeypatch):
    async def scenario():
        monkeypatch.setattr(breaker, "WINDOW", 0.2)
        b = Breaker()
        for _ in range(breaker.THRESHOLD - 1):
            await b.record_failure(1)
        await asyncio.sleep(0.3)
        await b.record_failure(1)
        assert await b.available(1)

    run(scenario())


def test_success_resets_the_count():
    async def scenario():
        b = Breaker()
        for _ in range(breaker.THRESHOLD - 1):
            await b.record_failure(2)
        await b.record_success(2)
        await b.record_failure(2)
        assert await b.available(2)

    run(scenario())


def test_half_open_admits_one_probe_at_a_time(monkeypatch):
    async def scenario():
        monkeypatch.setattr(breaker, "BASE_COOLDOWN", 0.1)
        b = Breaker()
        for _ in range(breaker.THRESHOLD):
            await b.record_failure(3)
        await asyncio.sleep(0.15)
        assert await b.available(3)  # the probe
        assert not await b.available(3)  # others wait for it
        await b.record_success(3)
        assert await b.available(3) and await b.available(3)

    run(scenario())


@pytest.fixture
def redis_url(settings):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: set REDIS_URL (CI does)")
    from tests.gateway_fixtures import clear_shared_breaker_state

    clear_shared_breaker_state()
    yield settings.REDIS_URL
    clear_shared_breaker_state()


def test_workers_share_cooldowns_and_probes_through_redis(redis_url, monkeypatch):
    import redis.asyncio as aioredis

    async def scenario():
        monkeypatch.setattr(breaker, "BASE_COOLDOWN", 0.3)
        one = Breaker(aioredis.Redis.from_url(redis_url))
        two = Breaker(aioredis.Redis.from_url(redis_url))
        # Failures seen by different workers add up to one threshold.
        await one.record_failure(11)
        await two.record_failure(11)
        await one.record_failure(11)
        assert not await one.available(11)
        await two.sync()
        assert not await two.available(11)  # the other worker agrees after its sync
        await asyncio.sleep(0.35)
        probes = [await one.available(11), await two.available(11)]
        assert probes.count(True) == 1  # exactly one probe across workers
        prober = one if probes[0] else two
        await prober.record_success(11)
        other = two if prober is one else one
        await other.sync()
        assert await other.available(11)
        await one.redis.aclose()
        await two.redis.aclose()

    run(scenario())


def test_out_of_rotation_reaches_other_workers_and_re_enable_clears_it(redis_url):
    import redis.asyncio as aioredis

    async def scenario():
        one = Breaker(aioredis.Redis.from_url(redis_url))
        two = Breaker(aioredis.Redis.from_url(redis_url))
        await one.take_out_of_rotation(21)
        await two.sync()
        assert not await two.available(21)
        assert breaker.shared_states()[21] == "disabled"
        await asyncio.to_thread(breaker.clear_shared_state, 21)  # what the admin's re-enable does
        await two.sync()
        assert await two.available(21)
        await one.redis.aclose()
        await two.redis.aclose()

    run(scenario())


def test_redis_down_falls_back_to_local_counting(monkeypatch):
    import redis.asyncio as aioredis

    async def scenario():
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # Configured as the runtime configures it: no client retries, short timeouts.
        dead = aioredis.Redis(
            host="127.0.0.1", port=1, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        b = Breaker(dead)
        started = time.monotonic()
        for _ in range(breaker.THRESHOLD):
            await b.record_failure(31)
        assert not await b.available(31)
        assert time.monotonic() - started < 2  # Redis was tried once, then skipped
        await dead.aclose()

    run(scenario())
