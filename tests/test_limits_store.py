"""The limits store's semantics, the same for both backends: in process (`MemoryLimiter`) and Redis
(`RedisLimiter`, its Lua scripts run against the real Redis; skipped without REDIS_URL).

Each test drives `admit`/`settle` directly with a fixed clock, so windows, periods and expiries are
exact; the gateway-level tests (test_limits.py, test_limits_redis.py) go through HTTP.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import pytest

from billing.pricing import Rates
from gateway import limits
from gateway.errors import GatewayError
from gateway.limits import Limits, from_units, period_of, to_units
from gateway.limits_memory import MemoryLimiter
from gateway.snapshot import KeyEntry, ModelEntry, PriceEntry
from gateway.types import ChatRequest, Usage

# An hour into today (UTC): fixed for the test's arithmetic, and recent enough that Redis, which
# expires a period's keys by its own clock a day after the period ends, keeps them.
NOW = time.time() // 86_400 * 86_400 + 3600.0
RATES = Rates(input_per_1m=Decimal("1.5"), cached_input_per_1m=Decimal("0.375"), output_per_1m=Decimal("6"))
# A 10-decimal card: costs then need all 16 places of a ledger amount.
ODD_RATES = Rates(
    input_per_1m=Decimal("1.2345678901"), cached_input_per_1m=Decimal("0.1"), output_per_1m=Decimal("7.0000000003")
)


def model(rates: Rates = RATES) -> ModelEntry:
    return ModelEntry(
        slug="m",
        name="m",
        description="",
        provider="openai",
        endpoint_type="openai_chat",
        created=0,
        context_window=100_000,
        max_output_tokens=10_000,
        capabilities=(),
        reasoning=False,
        spec=None,
        routes=(),
        prices={"": (PriceEntry(effective_from=0.0, rates=rates),)},
    )


def key(
    key_limits: Limits | None = None, workspace_limits: Limits | None = None, key_id: int | None = None
) -> KeyEntry:
    ident = key_id or uuid.uuid4().int % 10**9  # fresh scopes per test: Redis keys never collide
    return KeyEntry(
        id=ident,
        workspace_id=ident + 1,
        workspace_slug="w",
        currency="USD",
        scope="inference",
        expires_at=None,
        revoked=False,
        allowed_models=None,
        limits=key_limits,
        workspace_limits=workspace_limits,
    )


def chat(input_tokens: int = 100, max_output: int | None = 100) -> ChatRequest:
    return ChatRequest(model="m", body={}, max_output_tokens=max_output, estimated_input_tokens=input_tokens)


@pytest.fixture(params=["memory", "redis"])
def backend(request, settings):
    """A factory of limiters sharing one store (several "workers"), run in one event loop."""
    if request.param == "memory":
        shared = MemoryLimiter()
        yield lambda: shared
        return
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: set REDIS_URL (CI does)")
    import redis.asyncio as aioredis

    from gateway.limits_redis import RedisLimiter

    yield lambda: RedisLimiter(aioredis.Redis.from_url(settings.REDIS_URL))


def run(coro):
    return asyncio.run(coro)


async def admit(limiter, entry: KeyEntry, request: ChatRequest | None = None, *, now: float = NOW, rid=None, m=None):
    return await limiter.admit(
        key=entry, model=m or model(), chat=request or chat(), request_id=rid or str(uuid.uuid4()), now=now
    )


async def refused(limiter, entry, request=None, *, now: float = NOW, m=None) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await admit(limiter, entry, request, now=now, m=m)
    return caught.value


def test_rpm_admits_exactly_the_limit_across_workers_then_429_with_openai_headers(backend):
    async def scenario():
        workers = [backend(), backend()]
        entry = key(Limits(rpm=5))
        admitted = []
        for i in range(5):
            admitted.append(await admit(workers[i % 2], entry, now=NOW + i))
        assert [a.headers["x-ratelimit-remaining-requests"] for a in admitted] == ["4", "3", "2", "1", "0"]
        assert admitted[0].headers["x-ratelimit-limit-requests"] == "5"
        assert admitted[-1].headers["x-ratelimit-reset-requests"] == "56s"  # the first leaves the window at +60 s
        error = await refused(workers[1], entry, now=NOW + 10)
        assert error.status == 429 and error.code == "rate_limit_exceeded" and error.type == "rate_limit_error"
        assert error.headers["Retry-After"] == "50"
        assert error.headers["x-ratelimit-remaining-requests"] == "0"
        assert "requests per minute (RPM): limit 5, used 5" in error.message
        # Sliding, not fixed minutes: the first admission leaves the window exactly 60 s later.
        await refused(workers[0], entry, now=NOW + 59.999)
        assert (await admit(workers[0], entry, now=NOW + 60)).headers["x-ratelimit-remaining-requests"] == "0"

    run(scenario())


def test_tpm_reserves_input_estimate_plus_max_output_then_settles_to_real_usage(backend):
    async def scenario():
        limiter = backend()
        entry = key(Limits(tpm=1000))
        first = await admit(limiter, entry, chat(input_tokens=100, max_output=500))
        assert first.tokens == 600
        assert first.headers["x-ratelimit-remaining-tokens"] == "400"
        error = await refused(limiter, entry, chat(input_tokens=100, max_output=400), now=NOW + 1)
        assert error.code == "rate_limit_exceeded" and "tokens per minute (TPM)" in error.message
        assert error.headers["Retry-After"] == "59"
        limiter.settle(first, model=model(), usage=Usage(input_tokens=100, output_tokens=50))
        await limiter.drain()
        second = await admit(limiter, entry, chat(input_tokens=100, max_output=400), now=NOW + 2)
        assert second.headers["x-ratelimit-remaining-tokens"] == str(1000 - 150 - 500)

    run(scenario())


def test_a_request_larger_than_the_tpm_limit_is_refused_as_too_large(backend):
    async def scenario():
        error = await refused(backend(), key(Limits(tpm=100)), chat(input_tokens=50, max_output=100))
        assert error.status == 429 and "Request too large" in error.message

    run(scenario())


def test_default_max_output_is_reserved_when_the_client_sets_none():
    request = ChatRequest(model="m", body={}, max_output_tokens=None, default_max_output_tokens=4096)
    request.estimated_input_tokens = 10
    assert limits.reserved_tokens(request) == 4106
    request.reasoning_budget = 1000  # families that add the thinking budget on top of the default room
    assert limits.reserved_tokens(request) == 5106


def test_workspace_refusal_leaves_the_key_untouched_all_or_nothing(backend):
    async def scenario():
        limiter = backend()
        entry = key(Limits(rpm=3), Limits(rpm=1))
        assert (await admit(limiter, entry)).headers["x-ratelimit-remaining-requests"] == "0"  # the tighter scope
        for _ in range(3):
            error = await refused(limiter, entry)
            assert "this workspace" in error.message
        # The workspace lifts its limit: the key has used 1 of 3, not 4.
        relaxed = KeyEntry(**{**{f: getattr(entry, f) for f in KeyEntry.__slots__}, "workspace_limits": None})
        assert (await admit(limiter, relaxed)).headers["x-ratelimit-remaining-requests"] == "1"
        assert limits.counts[("rejected", "workspace", "requests")] >= 3

    run(scenario())


def test_budget_reserves_worst_case_and_settles_to_the_exact_cost(backend):
    async def scenario():
        limiter = backend()
        # worst case: 100 x 1.5/1M + 100 x 6/1M = 0.00075; a budget for exactly 2 of them
        entry = key(Limits(budget=Decimal("0.0015"), period="day"))
        scope, (period, _) = f"key:{entry.id}", period_of("day", NOW)
        one = await admit(limiter, entry)
        two = await admit(limiter, entry)
        assert await limiter.spent(scope, period, NOW) == (0, to_units(Decimal("0.0015")))
        error = await refused(limiter, entry)
        assert error.code == "budget_exceeded" and error.type == "insufficient_quota"
        assert error.headers["Retry-After"] == "1"  # reservations in flight hold it: they may settle lower
        usage = Usage(input_tokens=100, cached_input_tokens=7, output_tokens=13)
        limiter.settle(one, model=model(), usage=usage)
        limiter.settle(one, model=model(), usage=usage)  # idempotent
        limiter.settle(two, model=model(), usage=None)  # failed before any route: nothing used
        await limiter.drain()
        exact = (100 * Decimal("1.5") + 7 * Decimal("0.375") + 13 * Decimal(6)) / 10**6
        assert await limiter.spent(scope, period, NOW) == (to_units(exact), 0)
        assert from_units(to_units(exact)) == exact

    run(scenario())


def test_budget_used_up_is_refused_until_the_next_period(backend):
    async def scenario():
        limiter = backend()
        entry = key(Limits(budget=Decimal("0.001"), period="month"))
        first = await admit(limiter, entry)
        limiter.settle(first, model=model(), usage=Usage(input_tokens=100, output_tokens=100))
        await limiter.drain()
        error = await refused(limiter, entry, now=NOW + 5)
        _, end = period_of("month", NOW)
        assert int(error.headers["Retry-After"]) == int(end - (NOW + 5)) + 1
        assert "is used up" in error.message
        assert await admit(limiter, entry, now=end + 1)  # a new month, a new budget

    run(scenario())


def test_spent_is_exact_with_ten_decimal_rates_over_many_requests(backend):
    async def scenario():
        limiter = backend()
        entry = key(Limits(budget=Decimal("1000000"), period="day"))
        m = model(ODD_RATES)
        expected = Decimal(0)
        for i in range(40):
            admission = await admit(limiter, entry, chat(input_tokens=1000 + i, max_output=500), m=m)
            usage = Usage(input_tokens=997 + i, cached_input_tokens=i, output_tokens=333 + 7 * i)
            limiter.settle(admission, model=m, usage=usage)
            expected += limits.usage_amount(m, NOW, usage)
        await limiter.drain()
        spent, reserved = await limiter.spent(f"key:{entry.id}", period_of("day", NOW)[0], NOW)
        assert (from_units(spent), reserved) == (expected, 0)
        assert expected.as_tuple().exponent == -16  # the test would catch a lost last place

    run(scenario())


def test_large_budgets_stay_exact_beyond_redis_integer_range(backend):
    async def scenario():
        limiter = backend()
        entry = key(Limits(budget=Decimal("5000000000.123456"), period="day"))  # 5e25 units > 2^63
        m = model(Rates(input_per_1m=Decimal("1000000"), cached_input_per_1m=Decimal(0), output_per_1m=Decimal(0)))
        admission = await admit(limiter, entry, chat(input_tokens=3_000_000_000, max_output=1), m=m)
        limiter.settle(admission, model=m, usage=Usage(input_tokens=2_999_999_999))
        await limiter.drain()
        spent, reserved = await limiter.spent(f"key:{entry.id}", period_of("day", NOW)[0], NOW)
        assert (from_units(spent), reserved) == (Decimal("2999999999"), 0)
        await refused(limiter, entry, chat(input_tokens=2_000_000_002, max_output=1), m=m)
        assert await admit(limiter, entry, chat(input_tokens=2_000_000_001, max_output=1), m=m)

    run(scenario())


def test_a_dead_requests_reservation_expires(backend, settings):
    settings.OMIXA_LIMITS_RESERVATION_TTL = 30.0

    async def scenario():
        limiter = backend()
        entry = key(Limits(budget=Decimal("0.00075"), period="day"))
        await admit(limiter, entry)  # never settled: its worker died
        await refused(limiter, entry, now=NOW + 29.9)
        later = await admit(limiter, entry, now=NOW + 30)  # the reservation expired
        assert later is not None

    run(scenario())


def test_a_late_settlement_after_expiry_still_counts_its_cost_once(backend, settings):
    settings.OMIXA_LIMITS_RESERVATION_TTL = 10.0

    async def scenario():
        limiter = backend()
        entry = key(Limits(budget=Decimal("1"), period="day"))
        slow = await admit(limiter, entry)
        await admit(limiter, entry, now=NOW + 11)  # cleans up the expired reservation
        limiter.settle(slow, model=model(), usage=Usage(input_tokens=10))
        await limiter.drain()
        spent, reserved = await limiter.spent(f"key:{entry.id}", period_of("day", NOW)[0], NOW)
        assert from_units(spent) == Decimal("0.000015")
        assert reserved == to_units(Decimal("0.00075"))  # only the second request's, never negative

    run(scenario())


def test_concurrent_admissions_never_exceed_the_limit(backend):
    async def scenario():
        workers = [backend() for _ in range(4)]
        entry = key(Limits(rpm=25), Limits(budget=Decimal("0.0075"), period="day"))  # budget: 10 requests

        async def one(i):
            try:
                return await admit(workers[i % 4], entry)
            except GatewayError as exc:
                return exc

        results = await asyncio.gather(*(one(i) for i in range(60)))
        admitted = [r for r in results if not isinstance(r, GatewayError)]
        assert len(admitted) == 10
        assert {r.code for r in results if isinstance(r, GatewayError)} == {"budget_exceeded"}

    run(scenario())


def test_unpriced_model_reserves_and_settles_nothing(backend):
    async def scenario():
        limiter = backend()
        entry = key(Limits(budget=Decimal("0"), period="day"))
        unpriced = ModelEntry(**{**{f: getattr(model(), f) for f in ModelEntry.__slots__}, "prices": {}})
        admission = await admit(limiter, entry, m=unpriced)
        assert admission.cost == 0
        await refused(limiter, entry)  # a priced request does not fit a zero budget

    run(scenario())


def test_an_unseen_budget_period_is_seeded_once_from_the_ledger(backend):
    calls = []

    async def ledger(fn, label, ident, start, end):
        calls.append((fn, label, ident, start, end))
        return Decimal("0.001")  # spent before the store lost its state (a restart)

    async def scenario():
        workers = [backend(), backend()]
        for worker in workers:
            worker.run_sync = ledger
        entry = key(workspace_limits=Limits(budget=Decimal("0.0024"), period="day"))
        first = await admit(workers[0], entry)  # 0.001 + 0.00075 fits
        await refused(workers[1], entry)  # 0.001 + 2 x 0.00075 does not
        assert calls == [(limits.ledger_spent, "workspace", entry.workspace_id, *limits.period_bounds("day", NOW)[1:])]
        workers[0].settle(first, model=model(), usage=Usage(input_tokens=10))
        await workers[0].drain()
        spent, _ = await workers[1].spent(f"workspace:{entry.workspace_id}", period_of("day", NOW)[0], NOW)
        assert from_units(spent) == Decimal("0.001") + Decimal("0.000015")

    run(scenario())


def test_concurrent_first_requests_of_a_period_share_one_ledger_query(backend):
    calls = []

    async def slow_ledger(fn, *args):
        calls.append(args)
        await asyncio.sleep(0.05)
        return Decimal(0)

    async def scenario():
        limiter = backend()
        limiter.run_sync = slow_ledger
        entry = key(Limits(budget=Decimal(1), period="day"))
        admitted = await asyncio.gather(*(admit(limiter, entry) for _ in range(8)))
        assert len(admitted) == 8 and len(calls) == 1

    run(scenario())


def test_a_ledger_that_cannot_be_read_is_treated_as_the_store_being_down(backend):
    async def broken(*args):
        raise OSError("database unreachable")

    async def scenario():
        limiter = backend()
        limiter.run_sync = broken
        open_entry = key(Limits(budget=Decimal(1), period="day"))
        assert (await admit(limiter, open_entry)).scopes == ()  # fail-open: admitted, nothing held
        closed = KeyEntry(**{**{f: getattr(open_entry, f) for f in KeyEntry.__slots__}, "fail_closed": True})
        error = await refused(limiter, closed)
        assert error.status == 503 and error.code == "limits_unavailable"

    run(scenario())


def test_period_boundaries_are_utc_days_and_months():
    assert period_of("day", 1_790_000_000.0) == ("d20260921", 1_790_035_200.0)
    assert period_of("month", 1_790_000_000.0)[0] == "m202609"
    assert period_of("month", 1_796_083_200.0 - 1) == ("m202611", 1_796_083_200.0)  # 2026-12-01 00:00 UTC
    assert period_of("month", 1_798_761_600.0 - 1) == ("m202612", 1_798_761_600.0)  # into 2027-01


def test_reset_durations_use_openais_format():
    assert limits._duration(20) == "20ms"
    assert limits._duration(1500) == "1.5s"
    assert limits._duration(360_000) == "6m0s"
    assert limits._duration(59_874) == "59.874s"


@pytest.mark.parametrize(("value", "expected"), [(None, "900.0"), ("7.5", "7.5"), ("0", "ImproperlyConfigured")])
def test_reservation_ttl_is_read_from_the_environment(value, expected):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "OMIXA_LIMITS_RESERVATION_TTL"}
    env.update(DJANGO_SETTINGS_MODULE="omixa.settings", OMIXA_DEBUG="1")
    if value is not None:
        env["OMIXA_LIMITS_RESERVATION_TTL"] = value
    probe = "from django.conf import settings; print(settings.OMIXA_LIMITS_RESERVATION_TTL)"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert expected in (done.stdout if done.returncode == 0 else done.stderr)
