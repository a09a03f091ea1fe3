"""The limits store of one process (`REDIS_URL` unset): the same rules as the Redis scripts
(gateway/limits_redis.py), in dicts under a lock. Every worker process has its own: with several
processes and no Redis, each one's limits apply to the requests it serves."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from gateway.limits import (
    NO_LIMIT,
    WINDOW_MS,
    Admission,
    Limiter,
    Refusal,
    Scope,
    ScopeState,
    Unseeded,
)


@dataclass(slots=True)
class _Window:
    entries: deque = field(default_factory=deque)  # [ms, request_id, tokens], oldest first
    by_id: dict[str, list] = field(default_factory=dict)
    tokens: int = 0

    def expire(self, now_ms: int) -> None:
        cutoff = now_ms - WINDOW_MS
        while self.entries and self.entries[0][0] <= cutoff:
            entry = self.entries.popleft()
            self.tokens -= entry[2]
            self.by_id.pop(entry[1], None)

    def retry_after(self, now_ms: int, tokens: int, limit: int) -> int:
        freed = 0
        for at, _, held in self.entries:
            freed += held
            if self.tokens - freed + tokens <= limit:
                return at + WINDOW_MS - now_ms
        return 0


@dataclass(slots=True)
class _Budget:
    period_end: float  # epoch seconds
    seeded: bool = False
    spent: int = 0
    reserved: int = 0
    reservations: dict[str, tuple[int, int]] = field(default_factory=dict)  # request id → (units, expiry ms)
    earliest: float = float("inf")  # the soonest expiry: no scan of the reservations before it

    def hold(self, request_id: str, units: int, expiry: int) -> None:
        self.reservations[request_id] = (units, expiry)
        self.reserved += units
        self.earliest = min(self.earliest, expiry)

    def expire(self, now_ms: int) -> None:
        if now_ms < self.earliest:
            return
        earliest = float("inf")
        for request_id, (units, expiry) in list(self.reservations.items()):
            if expiry <= now_ms:
                del self.reservations[request_id]
                self.reserved -= units
            else:
                earliest = min(earliest, expiry)
        self.earliest = earliest


class MemoryLimiter(Limiter):
    """One process's limits (`REDIS_URL` unset): the same checks, under a lock, in dicts."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._budgets: dict[tuple[str, str], _Budget] = {}

    async def _seed(self, scope: Scope, units: int, *, ttl: float) -> None:
        with self._lock:
            budget = self._budgets.get((scope.name, scope.period))
            if budget is None:
                budget = self._budgets[(scope.name, scope.period)] = _Budget(scope.period_end)
            if not budget.seeded:
                budget.spent += units
                budget.seeded = True

    async def _admit(self, admission: Admission, *, ttl: float) -> list[ScopeState] | Refusal | Unseeded:
        now_ms = int(admission.at * 1000)
        tokens, cost = admission.tokens, admission.cost
        with self._lock:
            unseeded = tuple(
                i
                for i, scope in enumerate(admission.scopes)
                if scope.budgeted and not getattr(self._budgets.get((scope.name, scope.period)), "seeded", False)
            )
            if unseeded:
                return Unseeded(unseeded)
            for index, scope in enumerate(admission.scopes):
                if scope.windowed:
                    window = self._windows.setdefault(scope.name, _Window())
                    window.expire(now_ms)
                    count = len(window.entries)
                    if scope.rpm >= 0 and count + 1 > scope.rpm:
                        retry = window.entries[0][0] + WINDOW_MS - now_ms if window.entries else -1
                        return Refusal(index, "requests", count, retry)
                    if scope.tpm >= 0 and window.tokens + tokens > scope.tpm:
                        retry = -1 if tokens > scope.tpm else window.retry_after(now_ms, tokens, scope.tpm)
                        return Refusal(index, "tokens", window.tokens, retry)
                if scope.budgeted:
                    budget = self._budgets.get((scope.name, scope.period))
                    if budget is None:
                        budget = self._budgets[(scope.name, scope.period)] = _Budget(scope.period_end)
                    budget.expire(now_ms)
                    if budget.spent + budget.reserved + cost > scope.budget:
                        retry = -1 if budget.spent + cost > scope.budget else 1000
                        return Refusal(index, "budget", budget.spent + budget.reserved, retry)
            self._prune(now_ms)
            states = []
            for scope in admission.scopes:
                state = ScopeState(NO_LIMIT, 0, NO_LIMIT, 0)
                if scope.windowed:
                    window = self._windows[scope.name]
                    entry = [now_ms, admission.request_id, tokens]
                    window.entries.append(entry)
                    window.by_id[admission.request_id] = entry
                    window.tokens += tokens
                    reset = window.entries[0][0] + WINDOW_MS - now_ms
                    state = ScopeState(scope.rpm - len(window.entries), reset, scope.tpm - window.tokens, reset)
                if scope.budgeted:
                    budget = self._budgets[(scope.name, scope.period)]
                    budget.hold(admission.request_id, cost, now_ms + int(ttl * 1000))
                states.append(state)
            return states

    def _settle(self, admission: Admission, tokens: int, cost: int) -> None:
        with self._lock:
            for scope in admission.scopes:
                if scope.windowed:
                    window = self._windows.get(scope.name)
                    entry = window.by_id.get(admission.request_id) if window else None
                    if entry is not None:
                        window.tokens += tokens - entry[2]
                        entry[2] = tokens
                if scope.budgeted:
                    budget = self._budgets.get((scope.name, scope.period))
                    if budget is None:
                        budget = self._budgets[(scope.name, scope.period)] = _Budget(scope.period_end)
                    held = budget.reservations.pop(admission.request_id, None)
                    if held is not None:
                        budget.reserved -= held[0]
                    budget.spent += cost

    def _prune(self, now_ms: int) -> None:
        # Past periods and idle windows would otherwise stay forever in a long-lived process.
        if len(self._budgets) > 10_000:
            ended = now_ms / 1000 - 86_400  # a day's grace: late settlements still land in their period
            for scope_period, budget in list(self._budgets.items()):
                if budget.period_end < ended and not budget.reservations:
                    del self._budgets[scope_period]
        if len(self._windows) > 10_000:
            for name, window in list(self._windows.items()):
                window.expire(now_ms)
                if not window.entries:
                    del self._windows[name]

    async def spent(self, scope_name: str, period: str, now: float | None = None) -> tuple[int, int]:
        with self._lock:
            budget = self._budgets.get((scope_name, period))
            if budget is None:
                return 0, 0
            budget.expire(int((time.time() if now is None else now) * 1000))
            return budget.spent, budget.reserved
