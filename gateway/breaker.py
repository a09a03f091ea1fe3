"""Route health: a circuit breaker per provider key, shared through Redis when configured.

One blip never disables a key: a route opens (cooldown) only after THRESHOLD failures within
WINDOW seconds. When the cooldown ends, exactly one request (across all workers, via a Redis
lease) probes the route half-open; success closes it, failure re-opens it with a doubled cooldown.
A bad secret or an exhausted provider quota takes the key out of rotation until an operator
re-enables it in the admin (persisted on the ProviderKey row by the caller).

The hot path reads only the local mirror (`available`); Redis is touched on failures, on probe
claims, and by the background sync that refreshes the mirror every second.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import orjson
from django.conf import settings

logger = logging.getLogger(__name__)

THRESHOLD = 3
WINDOW = 30.0
BASE_COOLDOWN = 15.0
MAX_COOLDOWN = 300.0
PROBE_LEASE = 30.0
REDIS_BACKOFF = 5.0  # after Redis fails, count locally for this long before trying it again
# Namespaced (OMIXA_REDIS_PREFIX) so that two deployments, or two test runs, can share one Redis.
HASH_KEY = f"{settings.OMIXA_REDIS_PREFIX}:breaker"

_RECORD_FAILURE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
local base = tonumber(ARGV[4])
local maxc = tonumber(ARGV[5])
local field = ARGV[6]
local member = ARGV[7]
local from_probe = ARGV[8] == '1'
redis.call('ZADD', KEYS[1], now, member)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('EXPIRE', KEYS[1], math.ceil(window))
local count = redis.call('ZCARD', KEYS[1])
if from_probe or count >= threshold then
  local cooldown = base
  local current = redis.call('HGET', KEYS[2], field)
  if from_probe and current then
    cooldown = math.min(cjson.decode(current)['cooldown'] * 2, maxc)
  end
  local value = cjson.encode({['until'] = now + cooldown, ['cooldown'] = cooldown})
  redis.call('HSET', KEYS[2], field, value)
  redis.call('DEL', KEYS[1])
  redis.call('DEL', KEYS[3])
  return value
end
return false
"""


@dataclass(slots=True)
class RouteHealth:
    failures: list[float] = field(default_factory=list)
    open_until: float = 0.0  # > now: open; math.inf: out of rotation
    cooldown: float = 0.0
    probing_until: float = 0.0  # a local probe is in flight until then
    disabled_at: float = 0.0

    @property
    def state(self) -> str:
        if self.open_until == 0.0:
            return "closed"
        if self.open_until == math.inf:
            return "disabled"
        return "open" if time.time() < self.open_until else "half_open"


class Breaker:
    def __init__(self, redis=None) -> None:
        self.redis = redis  # redis.asyncio.Redis or None (in-process only)
        self.health: dict[int, RouteHealth] = {}
        self._script = redis.register_script(_RECORD_FAILURE) if redis is not None else None
        self._redis_down_until = 0.0

    def _shared(self) -> bool:
        """Use Redis now? Not while it is known to be down (failover must not wait on it)."""
        return self.redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, doing: str) -> None:
        self._redis_down_until = time.monotonic() + REDIS_BACKOFF
        logger.warning("breaker: Redis unreachable while %s; using local state for %.0f s", doing, REDIS_BACKOFF)

    # ---- hot path -------------------------------------------------------------------------
    async def available(self, route_id: int) -> bool:
        health = self.health.get(route_id)
        if health is None or health.open_until == 0.0:
            return True
        now = time.time()
        if now < health.open_until:
            return False
        # Cooldown over: half-open. One probe at a time, across workers when Redis is shared.
        if now < health.probing_until:
            return False
        if self._shared():
            try:
                claimed = await self.redis.set(f"{HASH_KEY}:probe:{route_id}", "1", nx=True, px=int(PROBE_LEASE * 1000))
            except Exception:
                self._redis_failed("claiming a probe")
                claimed = True
            if not claimed:
                return False
        health.probing_until = now + PROBE_LEASE
        return True

    async def record_success(self, route_id: int) -> None:
        health = self.health.get(route_id)
        if health is None:
            return
        if health.open_until == 0.0 and not health.failures:
            return
        was_open = health.open_until != 0.0
        self.health.pop(route_id, None)
        if was_open and self._shared():
            try:
                await self.redis.hdel(HASH_KEY, str(route_id))
                await self.redis.delete(f"{HASH_KEY}:probe:{route_id}")
            except Exception:
                self._redis_failed(f"closing route {route_id}")

    async def record_failure(self, route_id: int) -> None:
        now = time.time()
        health = self.health.setdefault(route_id, RouteHealth())
        from_probe = health.open_until not in (0.0, math.inf) and now >= health.open_until
        if self._script is not None and self._shared():
            try:
                value = await self._script(
                    keys=[f"{HASH_KEY}:failures:{route_id}", HASH_KEY, f"{HASH_KEY}:probe:{route_id}"],
                    args=[
                        now,
                        WINDOW,
                        THRESHOLD,
                        BASE_COOLDOWN,
                        MAX_COOLDOWN,
                        str(route_id),
                        f"{now}:{id(health)}",
                        "1" if from_probe else "0",
                    ],
                )
            except Exception:
                self._redis_failed("recording a failure")
            else:
                if value:
                    self._apply(route_id, orjson.loads(value))
                return
        health.failures = [t for t in health.failures if t > now - WINDOW] + [now]
        if from_probe or len(health.failures) >= THRESHOLD:
            cooldown = min(health.cooldown * 2, MAX_COOLDOWN) if from_probe and health.cooldown else BASE_COOLDOWN
            health.open_until, health.cooldown, health.failures, health.probing_until = (
                now + cooldown,
                cooldown,
                [],
                0.0,
            )

    async def take_out_of_rotation(self, route_id: int) -> None:
        """Local and shared: every worker stops using the key now (the DB row keeps it out after)."""
        health = self.health.setdefault(route_id, RouteHealth())
        health.open_until, health.disabled_at = math.inf, time.time()
        if self._shared():
            try:
                await self.redis.hset(HASH_KEY, str(route_id), orjson.dumps({"until": "inf", "cooldown": 0}))
            except Exception:
                self._redis_failed(f"disabling route {route_id}")

    # ---- background ---------------------------------------------------------------------------
    async def sync(self) -> None:
        """Refresh the local mirror from Redis (every worker agrees within a second)."""
        if not self._shared():
            return
        try:
            shared = await self.redis.hgetall(HASH_KEY)
        except Exception:
            self._redis_failed("syncing")
            return
        seen = set()
        for raw_field, raw_value in shared.items():
            route_id = int(raw_field)
            seen.add(route_id)
            self._apply(route_id, orjson.loads(raw_value))
        for route_id, health in list(self.health.items()):
            if health.open_until != 0.0 and route_id not in seen:
                self.health.pop(route_id, None)  # closed elsewhere (a probe succeeded, or re-enabled)

    def forget(self, route_ids: set[int]) -> None:
        """After a snapshot reload: drop the state of routes that left it, and lift a local
        out-of-rotation mark once the database says the key is enabled again (an operator
        re-enabled it; the grace period covers the moment before our own disable is written)."""
        now = time.time()
        for route_id, health in list(self.health.items()):
            if route_id not in route_ids:
                self.health.pop(route_id, None)
            elif health.open_until == math.inf and now - health.disabled_at > 10.0:
                self.health.pop(route_id, None)

    def _apply(self, route_id: int, value: dict) -> None:
        health = self.health.setdefault(route_id, RouteHealth())
        until = math.inf if value["until"] == "inf" else float(value["until"])
        if until == math.inf and health.open_until != math.inf:
            health.disabled_at = time.time()
        if until != health.open_until:
            health.probing_until = 0.0
        health.open_until, health.cooldown = until, float(value["cooldown"])

    def states(self) -> dict[int, str]:
        return {route_id: health.state for route_id, health in self.health.items()}


def clear_shared_state(route_id: int) -> None:
    """Sync, for the admin: forget a route's shared breaker state (re-enabled by an operator)."""
    from django.conf import settings

    if not settings.REDIS_URL:
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    try:
        client.hdel(HASH_KEY, str(route_id))
        client.delete(f"{HASH_KEY}:probe:{route_id}", f"{HASH_KEY}:failures:{route_id}")
    except redis.RedisError:
        logger.warning("breaker: Redis unreachable while clearing route %s", route_id)
    finally:
        client.close()


def shared_states() -> dict[int, str]:
    """Sync, for the admin: each route's breaker state as every worker sees it."""
    from django.conf import settings

    if not settings.REDIS_URL:
        from gateway import runtime

        return runtime.breaker_states()
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    try:
        raw = client.hgetall(HASH_KEY)
    except redis.RedisError:
        return {}
    finally:
        client.close()
    now = time.time()
    states = {}
    for key, value in raw.items():
        until = orjson.loads(value)["until"]
        states[int(key)] = "disabled" if until == "inf" else ("open" if now < float(until) else "half_open")
    return states
