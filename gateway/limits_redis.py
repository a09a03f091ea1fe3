"""The limits store shared by every gateway worker: Redis, one Lua script call per admission.

Per scope (a key or a workspace) there are four keys under `OMIXA_REDIS_PREFIX`:
- `lim:{scope}:w` a sorted set of the requests admitted in the last 60 s (score: admission time in
  ms, member `request_id:tokens`) and `lim:{scope}:wt` their token total: RPM is the set's size, TPM
  the total. Entries older than the window are dropped (and their tokens subtracted) by the next call.
- `lim:{scope}:b:{period}` a hash of the period's spent and reserved amounts (and `seeded` once the
  ledger's amount for the period was added: see `Limiter`), and
  `lim:{scope}:r:{period}` a sorted set of live reservations (score: expiry in ms, member
  `request_id:hi:lo`). Expired reservations are subtracted by the next call.

Amounts are 1e-16 currency units split in two exact integers, `hi` (whole 1e-6 units) and `lo`
(the rest, below 10^10), because Lua numbers are doubles (exact only to 2^53) and Redis integers stop
at 2^63 (922 currency units at 1e-16): the pair is exact up to 9e9 currency units per period.

The admission script checks every scope first and writes only if all have room, so it is atomic
and all-or-nothing across the key and its workspace. Settlement is a second script, run off the
answer's path. Scripts go by EVALSHA (redis-py loads them again after a Redis restart).
All keys of a request go to one script call, so this expects one Redis (not Redis Cluster).
"""

from __future__ import annotations

import asyncio
import logging
import time

from django.conf import settings

from gateway.breaker import REDIS_BACKOFF
from gateway.limits import (
    NO_LIMIT,
    WINDOW_MS,
    Admission,
    Limiter,
    LimitsUnavailable,
    Refusal,
    Scope,
    ScopeState,
    Unseeded,
)

logger = logging.getLogger(__name__)

LO = 10**10
GRACE_SECONDS = 86_400  # a period's keys outlive it by a day: late settlements still land in it

_COMMON = """
local SCALE = 10000000000
local function fmt(x) return string.format('%d', x) end
local function num(v) if v then return tonumber(v) end return 0 end
local function norm(h, l)
  while l >= SCALE do h = h + 1; l = l - SCALE end
  while l < 0 do h = h - 1; l = l + SCALE end
  return h, l
end
"""

_ADMIT = (
    _COMMON
    + """
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local tokens = tonumber(ARGV[3])
local ch, cl = tonumber(ARGV[4]), tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
local window = tonumber(ARGV[7])
local n = tonumber(ARGV[8])
local budgets = {}

-- A budget period never seen (new, or Redis restarted empty) is seeded from the ledger first.
local unseeded = {2}
for i = 1, n do
  if tonumber(ARGV[8 + (i - 1) * 5 + 3]) >= 0 and redis.call('HEXISTS', KEYS[(i - 1) * 4 + 3], 'seeded') == 0 then
    table.insert(unseeded, i)
  end
end
if #unseeded > 1 then return unseeded end

-- Phase 1: forget what expired, check every scope; nothing is written for a refused request
-- except that clean-up.
for i = 1, n do
  local a = 8 + (i - 1) * 5
  local rpm, tpm = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local bh, bl = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local k = (i - 1) * 4
  local wz, wt, bk, rz = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  if rpm >= 0 or tpm >= 0 then
    local cutoff = now - window
    local old = redis.call('ZRANGEBYSCORE', wz, '-inf', cutoff)
    if #old > 0 then
      local freed = 0
      for _, m in ipairs(old) do freed = freed + tonumber(string.match(m, ':(%d+)$')) end
      redis.call('ZREMRANGEBYSCORE', wz, '-inf', cutoff)
      redis.call('DECRBY', wt, fmt(freed))
    end
    local count = redis.call('ZCARD', wz)
    if rpm >= 0 and count + 1 > rpm then
      local oldest = redis.call('ZRANGE', wz, 0, 0, 'WITHSCORES')
      local retry = -1
      if oldest[2] then retry = tonumber(oldest[2]) + window - now end
      return {0, i, 'requests', count, retry}
    end
    local used = num(redis.call('GET', wt))
    if tpm >= 0 and used + tokens > tpm then
      local retry = -1
      if tokens <= tpm then
        local entries = redis.call('ZRANGE', wz, 0, -1, 'WITHSCORES')
        local freed = 0
        for j = 1, #entries, 2 do
          freed = freed + tonumber(string.match(entries[j], ':(%d+)$'))
          if used - freed + tokens <= tpm then
            retry = tonumber(entries[j + 1]) + window - now
            break
          end
        end
      end
      return {0, i, 'tokens', used, retry}
    end
  end
  if bh >= 0 then
    local dead = redis.call('ZRANGEBYSCORE', rz, '-inf', now)
    local v = redis.call('HMGET', bk, 'sh', 'sl', 'rh', 'rl')
    local sh, sl, rh, rl = num(v[1]), num(v[2]), num(v[3]), num(v[4])
    if #dead > 0 then
      for _, m in ipairs(dead) do
        local h, l = string.match(m, ':(%d+):(%d+)$')
        rh, rl = norm(rh - tonumber(h), rl - tonumber(l))
      end
      redis.call('ZREMRANGEBYSCORE', rz, '-inf', now)
      redis.call('HSET', bk, 'rh', fmt(rh), 'rl', fmt(rl))
    end
    local th, tl = norm(sh + rh + ch, sl + rl + cl)
    if th > bh or (th == bh and tl > bl) then
      local retry = 1000
      local oh, ol = norm(sh + ch, sl + cl)
      if oh > bh or (oh == bh and ol > bl) then retry = -1 end
      return {0, i, 'budget', 0, retry}
    end
    budgets[i] = {rh, rl}
  end
end

-- Phase 2: every scope has room; take it in all of them.
local states = {1}
for i = 1, n do
  local a = 8 + (i - 1) * 5
  local rpm, tpm = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local expire_at = ARGV[a + 5]
  local k = (i - 1) * 4
  local wz, wt, bk, rz = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local count, used, reset = 0, 0, 0
  if rpm >= 0 or tpm >= 0 then
    redis.call('ZADD', wz, now, rid .. ':' .. ARGV[3])
    used = redis.call('INCRBY', wt, ARGV[3])
    redis.call('PEXPIRE', wz, window + 1000)
    redis.call('PEXPIRE', wt, window + 1000)
    count = redis.call('ZCARD', wz)
    local oldest = redis.call('ZRANGE', wz, 0, 0, 'WITHSCORES')
    reset = tonumber(oldest[2]) + window - now
  end
  if budgets[i] then
    local rh, rl = norm(budgets[i][1] + ch, budgets[i][2] + cl)
    redis.call('HSET', bk, 'rh', fmt(rh), 'rl', fmt(rl))
    redis.call('ZADD', rz, now + ttl, rid .. ':' .. ARGV[4] .. ':' .. ARGV[5])
    redis.call('EXPIREAT', bk, expire_at)
    redis.call('EXPIREAT', rz, expire_at)
  end
  table.insert(states, rpm - count)
  table.insert(states, reset)
  table.insert(states, tpm - used)
  table.insert(states, reset)
end
return states
"""
)

_SETTLE = (
    _COMMON
    + """
local rid = ARGV[1]
local reserved, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
local rch, rcl = tonumber(ARGV[4]), tonumber(ARGV[5])
local ah, al = tonumber(ARGV[6]), tonumber(ARGV[7])
local window = tonumber(ARGV[8])
local n = tonumber(ARGV[9])
for i = 1, n do
  local a = 9 + (i - 1) * 3
  local k = (i - 1) * 4
  local wz, wt, bk, rz = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  if ARGV[a + 1] == '1' then
    local old = rid .. ':' .. ARGV[2]
    local score = redis.call('ZSCORE', wz, old)
    if score then
      redis.call('ZREM', wz, old)
      redis.call('ZADD', wz, score, rid .. ':' .. ARGV[3])
      redis.call('INCRBY', wt, fmt(tokens - reserved))
    end
  end
  if ARGV[a + 2] == '1' then
    local removed = redis.call('ZREM', rz, rid .. ':' .. ARGV[4] .. ':' .. ARGV[5])
    local v = redis.call('HMGET', bk, 'sh', 'sl', 'rh', 'rl')
    local sh, sl = norm(num(v[1]) + ah, num(v[2]) + al)
    local rh, rl = num(v[3]), num(v[4])
    if removed == 1 then rh, rl = norm(rh - rch, rl - rcl) end
    redis.call('HSET', bk, 'sh', fmt(sh), 'sl', fmt(sl), 'rh', fmt(rh), 'rl', fmt(rl))
    redis.call('EXPIREAT', bk, ARGV[a + 3])
    redis.call('EXPIREAT', rz, ARGV[a + 3])
  end
end
return 1
"""
)

_SEED = (
    _COMMON
    + """
if redis.call('HEXISTS', KEYS[1], 'seeded') == 1 then return 0 end
local v = redis.call('HMGET', KEYS[1], 'sh', 'sl')
local sh, sl = norm(num(v[1]) + tonumber(ARGV[1]), num(v[2]) + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'sh', fmt(sh), 'sl', fmt(sl), 'seeded', '1')
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return 1
"""
)

_PEEK = (
    _COMMON
    + """
local now = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'sh', 'sl', 'rh', 'rl')
local rh, rl = num(v[3]), num(v[4])
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, m in ipairs(dead) do
  local h, l = string.match(m, ':(%d+):(%d+)$')
  rh, rl = norm(rh - tonumber(h), rl - tonumber(l))
end
return {fmt(num(v[1])), fmt(num(v[2])), fmt(rh), fmt(rl)}
"""
)


def _split(units: int) -> tuple[str, str]:
    hi, lo = divmod(units, LO)
    return str(hi), str(lo)


class RedisLimiter(Limiter):
    def __init__(self, redis) -> None:
        super().__init__()
        self.redis = redis  # redis.asyncio.Redis with short timeouts and no retries (runtime.py)
        self.prefix = f"{settings.OMIXA_REDIS_PREFIX}:lim"
        self._admit_script = redis.register_script(_ADMIT)
        self._settle_script = redis.register_script(_SETTLE)
        self._peek_script = redis.register_script(_PEEK)
        self._seed_script = redis.register_script(_SEED)
        self._down_until = 0.0
        self._pending: set[asyncio.Task] = set()

    def _keys(self, scopes: tuple[Scope, ...]) -> list[str]:
        keys = []
        for scope in scopes:
            base = f"{self.prefix}:{scope.name}"
            keys += [f"{base}:w", f"{base}:wt", f"{base}:b:{scope.period}", f"{base}:r:{scope.period}"]
        return keys

    def _failed(self, doing: str, exc: BaseException) -> None:
        if time.monotonic() >= self._down_until:
            logger.warning(
                "limits: Redis unreachable while %s (%s); fail-open/closed per workspace for %.0f s",
                doing,
                type(exc).__name__,
                REDIS_BACKOFF,
            )
        self._down_until = time.monotonic() + REDIS_BACKOFF

    async def _admit(self, admission: Admission, *, ttl: float) -> list[ScopeState] | Refusal | Unseeded:
        if time.monotonic() < self._down_until:
            raise LimitsUnavailable
        now_ms = int(admission.at * 1000)
        cost_hi, cost_lo = _split(admission.cost)
        args: list = [now_ms, admission.request_id, admission.tokens, cost_hi, cost_lo, int(ttl * 1000), WINDOW_MS]
        args.append(len(admission.scopes))
        for scope in admission.scopes:
            budget = _split(scope.budget) if scope.budgeted else (str(NO_LIMIT), "0")
            args += [scope.rpm, scope.tpm, *budget, int(scope.period_end + GRACE_SECONDS + ttl)]
        try:
            reply = await self._admit_script(keys=self._keys(admission.scopes), args=args)
        except Exception as exc:
            self._failed("admitting a request", exc)
            raise LimitsUnavailable from exc
        if reply[0] == 2:
            return Unseeded(tuple(int(i) - 1 for i in reply[1:]))
        if reply[0] == 0:
            reason = reply[2].decode() if isinstance(reply[2], bytes) else reply[2]
            return Refusal(index=int(reply[1]) - 1, reason=reason, used=int(reply[3]), retry_after_ms=int(reply[4]))
        values = [int(v) for v in reply[1:]]
        return [ScopeState(*values[i : i + 4]) for i in range(0, len(values), 4)]

    async def _seed(self, scope: Scope, units: int, *, ttl: float) -> None:
        base = f"{self.prefix}:{scope.name}"
        args = [*_split(units), int(scope.period_end + GRACE_SECONDS + ttl)]
        try:
            await self._seed_script(keys=[f"{base}:b:{scope.period}"], args=args)
        except Exception as exc:
            self._failed("seeding a budget period", exc)
            raise LimitsUnavailable from exc

    def _settle(self, admission: Admission, tokens: int, cost: int) -> None:
        task = asyncio.get_running_loop().create_task(self._settle_now(admission, tokens, cost))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle_now(self, admission: Admission, tokens: int, cost: int) -> None:
        args: list = [admission.request_id, admission.tokens, tokens, *_split(admission.cost), *_split(cost), WINDOW_MS]
        args.append(len(admission.scopes))
        ttl = settings.OMIXA_LIMITS_RESERVATION_TTL
        for scope in admission.scopes:
            args += [int(scope.windowed), int(scope.budgeted), int(scope.period_end + GRACE_SECONDS + ttl)]
        try:
            await self._settle_script(keys=self._keys(admission.scopes), args=args)
        except Exception as exc:
            # The reservation expires on its own; this request's real cost is missing from the period.
            self._failed(f"settling request {admission.request_id}", exc)

    async def drain(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def spent(self, scope_name: str, period: str, now: float | None = None) -> tuple[int, int]:
        base = f"{self.prefix}:{scope_name}"
        at = int((time.time() if now is None else now) * 1000)
        reply = await self._peek_script(keys=[f"{base}:b:{period}", f"{base}:r:{period}"], args=[at])
        sh, sl, rh, rl = (int(v) for v in reply)
        return sh * LO + sl, rh * LO + rl
