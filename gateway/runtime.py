"""Process-wide gateway state, started once per worker process (ASGI lifespan, or lazily).

Holds the snapshot (keys, models, prices, routes), the circuit breaker, the usage recorder and
the background task that keeps the snapshot and the breaker mirror fresh. Nothing here runs on
the request path except dictionary reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings

from gateway.breaker import Breaker
from gateway.limits import Limiter, make_limiter
from gateway.limits_memory import MemoryLimiter
from gateway.snapshot import Snapshot, load_snapshot
from gateway.usage import UsageRecorder

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0


@dataclass
class Runtime:
    snapshot: Snapshot
    breaker: Breaker
    recorder: UsageRecorder
    redis: object | None = None
    limiter: Limiter = field(default_factory=MemoryLimiter)  # rate limits and budgets (limits.py)
    refresher: asyncio.Task | None = None
    loop: asyncio.AbstractEventLoop | None = None
    background: set[asyncio.Task] = field(default_factory=set)
    beat: object | None = None  # omixa.eager_beat.EagerBeat when there is no broker
    # Every database read or write the gateway's event loop needs runs on this one thread, so its
    # connection is reused (not one per pool thread) and closed at shut-down.
    db_thread: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="omixa-db")
    )

    async def db(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.db_thread, fn, *args)

    def spawn(self, coro) -> None:
        """Fire-and-forget work that must not be garbage-collected mid-flight."""
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


_runtime: Runtime | None = None
_starting: asyncio.Lock | None = None


def _schedule_pricing(request_ids: list[str]) -> None:
    try:
        from billing.tasks import price_usage_events
    except ImportError:  # billing's pricing task lands with the billing issue
        return
    price_usage_events.delay(request_ids)


def _close_connections() -> None:
    from django.db import connections

    connections.close_all()


def _revision() -> int:
    from django.db import close_old_connections

    from workspaces.revision import current_config_revision

    close_old_connections()  # a worker thread: no request cycle closes its connection
    return current_config_revision()


async def _load(rt: Runtime) -> Snapshot:
    return await rt.db(load_snapshot, time.time())


async def _refresh_forever(rt: Runtime) -> None:
    while True:
        await asyncio.sleep(REFRESH_SECONDS)
        try:
            revision = await rt.db(_revision)
            if revision != rt.snapshot.revision:
                rt.snapshot = await _load(rt)
                rt.breaker.forget({r.id for m in rt.snapshot.models.values() for r in m.routes})
        except Exception:
            logger.warning("gateway: snapshot refresh failed; serving the last good snapshot", exc_info=True)
        try:
            await rt.breaker.sync()
        except Exception:
            logger.warning("gateway: breaker sync with Redis failed; using local state", exc_info=True)


async def reload() -> None:
    """Reload the snapshot now (tests; the background task does this on every revision change)."""
    rt = await get()
    rt.snapshot = await _load(rt)
    rt.breaker.forget({r.id for m in rt.snapshot.models.values() for r in m.routes})


async def startup() -> Runtime:
    global _runtime, _starting
    if _runtime is not None and _runtime.loop is asyncio.get_running_loop():
        return _runtime
    if _starting is None:
        _starting = asyncio.Lock()
    async with _starting:
        if _runtime is not None and _runtime.loop is asyncio.get_running_loop():
            return _runtime
        redis_client = None
        if settings.REDIS_URL:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            # No client-side retries and short timeouts: when Redis is down the breaker falls back to
            # local state at once instead of holding a failing request for seconds.
            redis_client = aioredis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
            )
        recorder = UsageRecorder(settings.OMIXA_USAGE_SPOOL_DIR, on_recorded=_schedule_pricing)
        rt = Runtime(snapshot=Snapshot.empty(), breaker=Breaker(redis_client), recorder=recorder, redis=redis_client)
        rt.limiter = make_limiter(redis_client)
        rt.limiter.run_sync = rt.db  # seeds a budget period from the ledger
        try:
            rt.snapshot = await _load(rt)
        except Exception:
            logger.exception("gateway: could not load the snapshot at start-up; retrying in the background")
        recorder.start()
        if settings.CELERY_TASK_ALWAYS_EAGER and settings.OMIXA_EAGER_BEAT:
            from omixa.celery import app as celery_app
            from omixa.eager_beat import EagerBeat

            rt.beat = EagerBeat(celery_app)
            rt.beat.start()
        rt.loop = asyncio.get_running_loop()
        rt.refresher = rt.loop.create_task(_refresh_forever(rt))
        _runtime = rt
        return rt


async def shutdown() -> None:
    global _runtime
    rt, _runtime = _runtime, None
    if rt is None:
        return
    if rt.refresher is not None:
        rt.refresher.cancel()
    if rt.background:
        await asyncio.gather(*rt.background, return_exceptions=True)
    await rt.limiter.drain()
    from gateway.upstream import close_clients

    await close_clients()
    await asyncio.to_thread(rt.recorder.stop)
    if rt.beat is not None:
        await asyncio.to_thread(rt.beat.stop)
    await rt.db(_close_connections)
    rt.db_thread.shutdown(wait=True)
    if rt.redis is not None:
        await rt.redis.aclose()


async def get() -> Runtime:
    rt = _runtime
    if rt is not None and rt.loop is asyncio.get_running_loop():
        return rt
    return await startup()


def current() -> Runtime | None:
    return _runtime


def breaker_states() -> dict[int, str]:
    return _runtime.breaker.states() if _runtime is not None else {}


def flush_usage(timeout: float = 10.0) -> bool:
    """Wait until every usage event recorded by this process is in the database (tests, bench)."""
    return _runtime.recorder.flush(timeout) if _runtime is not None else True
