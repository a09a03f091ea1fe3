"""Rate limits and spend budgets per API key and per workspace, checked before a route is tried.

Each scope (a key, a workspace) may have requests per minute (RPM), tokens per minute (TPM) and a
spend budget per UTC day or month. A request is admitted only if every scope that applies has room
(all-or-nothing: a workspace refusal leaves the key's counters untouched), and it then holds:

- a slot in each scope's **sliding 60-second window** (an exact log of admissions, not fixed
  minutes: a fixed window lets 2x the limit through around a minute boundary, which a test with
  several workers would catch), carrying its reserved tokens: the input estimate plus its max
  output. When usage is known the entry is settled to the real token count;
- a **budget reservation** of its worst-case cost (input estimate x input rate + max output x
  output rate, from the snapshot's price card). Settlement removes the reservation and adds the
  real cost (the same Decimal the ledger will hold) to the period's spent amount. A reservation
  whose request died is released when it expires (`OMIXA_LIMITS_RESERVATION_TTL`, default 900 s,
  above the upstream first-byte timeout).

Amounts are exact integers of 1e-16 of the currency unit (ledger amounts keep 16 places), so the
spent amount equals the ledger's sum for the same requests. Two implementations share these
semantics: `limits_memory.MemoryLimiter` (one process, `REDIS_URL` unset) and `limits_redis.RedisLimiter` (one
Lua script call per admission, shared by every worker). When Redis cannot be reached the
workspace's `limits_fail_mode` decides: `open` admits without limits (a warning and an event for
metrics), `closed` answers 503 `limits_unavailable`; never a 500.

The hot path pays nothing when neither the key nor its workspace has a limit (`KeyEntry.limited`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from prometheus_client import Counter as PromCounter

from billing.pricing import usage_cost
from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.snapshot import KeyEntry, ModelEntry
    from gateway.types import ChatRequest, Usage

logger = logging.getLogger(__name__)

WINDOW_MS = 60_000
UNITS_PER_CURRENCY_UNIT = 10**16  # ledger amounts keep 16 decimal places
NO_LIMIT = -1
UNAVAILABLE_RETRY_AFTER = 5

# ---- events for metrics -------------------------------------------------------------------
# `kind` is "rejected" (scope "key"/"workspace", reason "requests"/"tokens"/"budget") or
# "unavailable" (scope "", reason "open"/"closed": the limits store was unreachable).
Listener = Callable[[str, str, str], None]
counts: Counter[tuple[str, str, str]] = Counter()
STORE_UNAVAILABLE = PromCounter(
    "omixa_limits_store_unavailable",
    "Requests that found the limits store (Redis) unreachable, by the workspace's fail mode: open (admitted"
    " without limits) or closed (refused with 503).",
    ["fail_mode"],
)


def _to_metrics(kind: str, scope: str, reason: str) -> None:
    if kind == "rejected":
        from gateway import metrics

        metrics.limit_rejected(reason, scope)
    else:
        STORE_UNAVAILABLE.labels(reason).inc()


_listeners: list[Listener] = [_to_metrics]


def add_listener(listener: Listener) -> None:
    """Call `listener(kind, scope, reason)` on every rejection and every store outage (metrics)."""
    if listener not in _listeners:
        _listeners.append(listener)


def _emit(kind: str, scope: str, reason: str) -> None:
    counts[(kind, scope, reason)] += 1
    for listener in _listeners:
        try:
            listener(kind, scope, reason)
        except Exception:
            logger.exception("limits: a listener failed")


# ---- configuration, as the snapshot carries it ----------------------------------------------
@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    budget: Decimal | None = None
    period: str = "none"  # "day" | "month" | "none"

    @property
    def budgeted(self) -> bool:
        return self.budget is not None and self.period in ("day", "month")

    @property
    def windowed(self) -> bool:
        return self.rpm is not None or self.tpm is not None


def limits_of(row) -> Limits | None:
    """The limits of an ApiKey or Workspace row; None when it has none (the hot path skips it)."""
    limits = Limits(
        rpm=row.rpm_limit,
        tpm=row.tpm_limit,
        budget=row.budget_amount,
        period=row.budget_period or "none",
    )
    return limits if limits.windowed or limits.budgeted else None


# ---- money as exact integers ------------------------------------------------------------------
def to_units(amount: Decimal) -> int:
    """Currency → integer 1e-16 units (exact for ledger amounts; anything finer rounds up)."""
    return int((amount * UNITS_PER_CURRENCY_UNIT).to_integral_value(rounding=ROUND_CEILING))


def from_units(units: int) -> Decimal:
    return Decimal(units).scaleb(-16)


def _cost(model: ModelEntry, at: float, tier: str, input_tokens: int, output_tokens: int) -> Decimal:
    rates = model.rates_at(at, tier)
    if rates is None:
        return Decimal(0)  # unpriced: the ledger holds nothing for it either
    return usage_cost(rates, input_tokens=input_tokens, output_tokens=output_tokens)


def usage_amount(model: ModelEntry, at: float, usage: Usage) -> Decimal:
    """The exact cost the ledger will hold for this usage (the card in effect at `at`; unpriced: 0)."""
    cost = model.cost_at(at, usage)
    return Decimal(0) if cost is None else cost


# ---- periods ------------------------------------------------------------------------------------
def period_bounds(kind: str, now: float) -> tuple[str, float, float]:
    """The UTC budget period holding `now`: its id, start and end (epoch seconds)."""
    moment = datetime.fromtimestamp(now, UTC)
    if kind == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return f"d{start:%Y%m%d}", start.timestamp(), start.timestamp() + 86_400
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return f"m{start:%Y%m}", start.timestamp(), end.timestamp()


def period_of(kind: str, now: float) -> tuple[str, float]:
    """The UTC budget period holding `now`: its id and its end (epoch seconds)."""
    period, _, end = period_bounds(kind, now)
    return period, end


def ledger_spent(label: str, ident: int, start: float, end: float) -> Decimal:
    """Sync (a DB thread): the ledger's usage amounts of a key or workspace in [start, end)."""
    from django.db import close_old_connections
    from django.db.models import Sum

    from billing.models import LedgerEntry

    close_old_connections()
    entries = LedgerEntry.objects.filter(
        kind=LedgerEntry.Kind.USAGE,
        occurred_at__gte=datetime.fromtimestamp(start, UTC),
        occurred_at__lt=datetime.fromtimestamp(end, UTC),
    )
    if label == "key":
        entries = entries.filter(usage_event__api_key_id=ident)
    else:
        entries = entries.filter(workspace_id=ident)
    return entries.aggregate(total=Sum("amount"))["total"] or Decimal(0)


# ---- one admission ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Scope:
    """One limited scope of a request, as both backends take it."""

    name: str  # "key:12", "workspace:3" (the store's key part)
    label: str  # "key" | "workspace" (messages, metrics)
    ident: int
    rpm: int  # NO_LIMIT: none
    tpm: int
    budget: int  # units; NO_LIMIT: none
    period: str  # "" without a budget
    period_start: float
    period_end: float
    currency: str
    period_kind: str

    @property
    def windowed(self) -> bool:
        return self.rpm != NO_LIMIT or self.tpm != NO_LIMIT

    @property
    def budgeted(self) -> bool:
        return self.budget != NO_LIMIT


@dataclass(slots=True)
class Admission:
    """What a request holds until it settles (None-free: `scopes` empty after a fail-open)."""

    request_id: str
    at: float  # epoch seconds of the admission (the ledger's period is the request's start)
    tokens: int
    cost: int  # units reserved
    scopes: tuple[Scope, ...]
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False


@dataclass(frozen=True, slots=True)
class ScopeState:
    """Room left in one scope's window after an admission."""

    requests_remaining: int
    requests_reset_ms: int
    tokens_remaining: int
    tokens_reset_ms: int


@dataclass(frozen=True, slots=True)
class Unseeded:
    """Budget periods the store has never seen (a new period, or a store that restarted empty)."""

    indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Refusal:
    index: int  # which scope
    reason: str  # "requests" | "tokens" | "budget"
    used: int
    retry_after_ms: int  # -1: never (a request larger than the limit)


def scopes_for(key: KeyEntry, now: float) -> tuple[Scope, ...]:
    scopes = []
    for label, ident, limits in (("key", key.id, key.limits), ("workspace", key.workspace_id, key.workspace_limits)):
        if limits is None:
            continue
        period, period_start, period_end = period_bounds(limits.period, now) if limits.budgeted else ("", 0.0, 0.0)
        scopes.append(
            Scope(
                name=f"{label}:{ident}",
                label=label,
                ident=ident,
                rpm=NO_LIMIT if limits.rpm is None else limits.rpm,
                tpm=NO_LIMIT if limits.tpm is None else limits.tpm,
                budget=to_units(limits.budget) if limits.budgeted else NO_LIMIT,
                period=period,
                period_start=period_start,
                period_end=period_end,
                currency=key.currency,
                period_kind=limits.period,
            )
        )
    return tuple(scopes)


def reserved_tokens(chat: ChatRequest) -> int:
    output = chat.max_output_tokens or chat.default_max_output_tokens
    if chat.max_output_tokens is None and chat.reasoning_budget:
        output += chat.reasoning_budget  # families that add thinking on top of the default room
    return chat.estimated_input_tokens + output


def _duration(ms: int) -> str:
    """OpenAI's reset format: "20ms", "1.5s", "6m0s"."""
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest, 3):g}s"


def _headers(scopes: tuple[Scope, ...], states: list[ScopeState]) -> dict[str, str]:
    headers: dict[str, str] = {}
    requests = [
        (st.requests_remaining, sc.rpm, st.requests_reset_ms)
        for sc, st in zip(scopes, states, strict=True)
        if sc.rpm >= 0
    ]
    if requests:
        remaining, limit, reset = min(requests)
        headers["x-ratelimit-limit-requests"] = str(limit)
        headers["x-ratelimit-remaining-requests"] = str(max(remaining, 0))
        headers["x-ratelimit-reset-requests"] = _duration(reset)
    tokens = [
        (st.tokens_remaining, sc.tpm, st.tokens_reset_ms) for sc, st in zip(scopes, states, strict=True) if sc.tpm >= 0
    ]
    if tokens:
        remaining, limit, reset = min(tokens)
        headers["x-ratelimit-limit-tokens"] = str(limit)
        headers["x-ratelimit-remaining-tokens"] = str(max(remaining, 0))
        headers["x-ratelimit-reset-tokens"] = _duration(reset)
    return headers


def _refusal_error(scope: Scope, refusal: Refusal, tokens: int, now: float, headers: dict[str, str]) -> GatewayError:
    whose = "this API key" if scope.label == "key" else "this workspace"
    if refusal.reason == "budget":
        budget = from_units(scope.budget).normalize()
        per = "day (UTC)" if scope.period_kind == "day" else "month (UTC)"
        if refusal.retry_after_ms < 0:
            retry = max(1, int(scope.period_end - now) + 1)
            message = (
                f"The spend budget of {whose} ({budget:f} {scope.currency} per {per}) is used up. "
                f"It renews at the start of the next {scope.period_kind}."
            )
        else:
            retry = max(1, -(-refusal.retry_after_ms // 1000))
            message = (
                f"Requests in flight hold the rest of the spend budget of {whose} "
                f"({budget:f} {scope.currency} per {per}). Please try again in {retry}s."
            )
        headers = {**headers, "Retry-After": str(retry)}
        return GatewayError(429, message, code="budget_exceeded", type_="insufficient_quota", headers=headers)
    unit, limit, asked = ("requests", scope.rpm, 1) if refusal.reason == "requests" else ("tokens", scope.tpm, tokens)
    short = "RPM" if unit == "requests" else "TPM"
    if refusal.retry_after_ms < 0:
        message = (
            f"Request too large for {whose}: {unit} per minute ({short}) limit {limit}, requested {asked}. "
            "Send a shorter request or a lower max_tokens."
        )
        retry = WINDOW_MS // 1000
    else:
        retry = max(1, -(-refusal.retry_after_ms // 1000))
        message = (
            f"Rate limit reached for {whose} on {unit} per minute ({short}): limit {limit}, used {refusal.used}, "
            f"requested {asked}. Please try again in {_duration(refusal.retry_after_ms)}."
        )
    headers = {**headers, "Retry-After": str(retry)}
    return GatewayError(429, message, code="rate_limit_exceeded", headers=headers)


def _refusal_headers(scopes: tuple[Scope, ...], refusal: Refusal) -> dict[str, str]:
    scope = scopes[refusal.index]
    reset = str(_duration(max(refusal.retry_after_ms, 0)))
    if refusal.reason == "requests":
        return {
            "x-ratelimit-limit-requests": str(scope.rpm),
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": reset,
        }
    if refusal.reason == "tokens":
        return {
            "x-ratelimit-limit-tokens": str(scope.tpm),
            "x-ratelimit-remaining-tokens": str(max(scope.tpm - refusal.used, 0)),
            "x-ratelimit-reset-tokens": reset,
        }
    return {}


class Limiter:
    """The interface: `admit` before the first route, `settle` once usage is known.

    A budget period the store has not seen yet is first seeded with the ledger's amount for it
    (`ledger_spent`, once per scope and period, in the database thread given as `run_sync`), so a
    restart of Redis, or of an in-process gateway, does not hand out a fresh budget. The ledger
    lags pricing by seconds: requests not priced yet at that moment are not in the seed.
    """

    run_sync: Callable | None = None  # Runtime.db: runs a sync function in the database thread

    def __init__(self) -> None:
        self._seeding: dict[tuple[str, str], asyncio.Future] = {}

    async def admit(
        self, *, key: KeyEntry, model: ModelEntry, chat: ChatRequest, request_id: str, now: float
    ) -> Admission | None:
        scopes = scopes_for(key, now)
        if not scopes:
            return None
        tokens = reserved_tokens(chat)
        cost = 0
        if any(s.budgeted for s in scopes):
            output = tokens - chat.estimated_input_tokens
            cost = to_units(_cost(model, now, chat.service_tier or "", chat.estimated_input_tokens, output))
        admission = Admission(request_id=request_id, at=now, tokens=tokens, cost=cost, scopes=scopes)
        ttl = settings.OMIXA_LIMITS_RESERVATION_TTL
        try:
            outcome = await self._admit(admission, ttl=ttl)
            if isinstance(outcome, Unseeded):
                for index in outcome.indexes:
                    await self._seed_once(scopes[index], ttl=ttl)
                outcome = await self._admit(admission, ttl=ttl)
                if isinstance(outcome, Unseeded):  # the period's keys vanished again at once
                    raise LimitsUnavailable
        except LimitsUnavailable:
            return self._unavailable(key, admission)
        if isinstance(outcome, Refusal):
            scope = scopes[outcome.index]
            _emit("rejected", scope.label, outcome.reason)
            raise _refusal_error(scope, outcome, tokens, now, _refusal_headers(scopes, outcome))
        admission.headers = _headers(scopes, outcome)
        return admission

    def settle(self, admission: Admission, *, model: ModelEntry, usage: Usage | None) -> None:
        """Settle to the real usage (None: nothing was used). Idempotent; never raises."""
        if admission.settled:
            return
        admission.settled = True
        if not admission.scopes:
            return  # admitted while the store was unreachable: nothing was reserved
        try:
            tokens = usage.total_tokens if usage is not None else 0
            cost = 0
            if usage is not None and any(s.budgeted for s in admission.scopes):
                cost = to_units(usage_amount(model, admission.at, usage))
            self._settle(admission, tokens, cost)
        except Exception:
            logger.exception("limits: could not settle request %s", admission.request_id)

    def _unavailable(self, key: KeyEntry, admission: Admission) -> Admission:
        if key.fail_closed:
            _emit("unavailable", "", "closed")
            raise GatewayError(
                503,
                "Omixa cannot check this workspace's limits right now, and the workspace refuses requests "
                "it cannot check. Please try again shortly.",
                code="limits_unavailable",
                headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
            )
        _emit("unavailable", "", "open")
        admission.scopes = ()
        return admission

    async def _seed_once(self, scope: Scope, *, ttl: float) -> None:
        # Concurrent first requests of a period in this process share one ledger query.
        seeding = self._seeding
        task = seeding.get((scope.name, scope.period))
        if task is None:
            task = asyncio.ensure_future(self._seed_from_ledger(scope, ttl=ttl))
            seeding[(scope.name, scope.period)] = task
            task.add_done_callback(lambda _: seeding.pop((scope.name, scope.period), None))
        await asyncio.shield(task)

    async def _seed_from_ledger(self, scope: Scope, *, ttl: float) -> None:
        amount = Decimal(0)
        if self.run_sync is not None:
            try:
                amount = await self.run_sync(
                    ledger_spent, scope.label, scope.ident, scope.period_start, scope.period_end
                )
            except Exception as exc:
                logger.warning("limits: could not read the ledger to seed %s %s: %s", scope.name, scope.period, exc)
                raise LimitsUnavailable from exc
        await self._seed(scope, to_units(amount), ttl=ttl)

    async def _admit(self, admission: Admission, *, ttl: float) -> list[ScopeState] | Refusal | Unseeded:
        raise NotImplementedError

    async def _seed(self, scope: Scope, units: int, *, ttl: float) -> None:
        """Add `units` to the period's spent amount, unless another worker seeded it first."""
        raise NotImplementedError

    def _settle(self, admission: Admission, tokens: int, cost: int) -> None:
        raise NotImplementedError

    async def drain(self) -> None:
        """Wait for settlements in flight (tests, shut-down)."""

    # ---- reads, for tests, the bench and operators -------------------------------------------
    async def spent(self, scope_name: str, period: str, now: float | None = None) -> tuple[int, int]:
        """(spent, reserved) units of one scope's budget period (live reservations at `now`)."""
        raise NotImplementedError


class LimitsUnavailable(Exception):
    """The shared store could not be reached (the backend has already logged it)."""


def make_limiter(redis_client=None) -> Limiter:
    if redis_client is None:
        from gateway.limits_memory import MemoryLimiter

        return MemoryLimiter()
    from gateway.limits_redis import RedisLimiter

    return RedisLimiter(redis_client)
