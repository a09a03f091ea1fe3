"""Prometheus metrics of the gateway, served at /metrics (omixa/health.py).

Most series come from one hook: `observe_call`, called by `pipeline.Call.record` with the usage event
it has just built (model, route, status, attempts with their upstream milliseconds, tokens), the cost
and Omixa's own overhead. Requests that end without a usage event (refused before any route was
tried: bad key, bad body, a limit, no route) are counted by the `counted` view decorator. Route state
and the pricing backlog are read when scraped, not kept up to date on the hot path.

Several worker processes (uvicorn --workers N): set PROMETHEUS_MULTIPROC_DIR (an empty directory)
before the server starts; every process then writes its samples to files there and a scrape of any
worker sums them (prometheus-client's multiprocess mode). Without it, one in-process registry.

Labels carry model slugs, route ids and statuses only: never a key, a secret or a workspace.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

logger = logging.getLogger(__name__)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
PENDING_CACHE_SECONDS = 5.0  # the pricing backlog's COUNT runs at most this often per process
ROUTE_STATES = ("closed", "open", "half_open", "disabled")
COUNTED_PATHS = ("/api/v1/chat/", "/api/v1/responses")  # the endpoints that run the chat pipeline

# A `_created` timestamp beside every counter and histogram doubles the scrape for nothing we use.
disable_created_metrics()

# Upstreams: a reasoning model may think for minutes. Omixa's own share: well under a millisecond.
_SLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, float("inf"))
_FAST_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, float("inf"))

REQUESTS = Counter(
    "omixa_requests",
    "Chat completion requests by model, serving route (id; empty when none was reached) and final HTTP status.",
    ["model", "route", "status"],
)
ATTEMPTS = Counter(
    "omixa_upstream_attempts",
    "Attempts on each route by outcome (ok, server, rate_limited, timeout, connect, auth, quota, cooldown, ...)"
    " and the upstream's HTTP status (empty when it never answered).",
    ["model", "route", "outcome", "status"],
)
UPSTREAM_LATENCY = Histogram(
    "omixa_upstream_latency_seconds",
    "Time waiting on one upstream attempt: sent until the whole answer (non-stream) or its first"
    " meaningful event (stream), or until it failed.",
    ["model", "route"],
    buckets=_SLOW_BUCKETS,
)
OVERHEAD = Histogram(
    "omixa_overhead_seconds",
    "Omixa's own time per answered request: arrival until the first byte to the client, minus the time"
    " spent waiting on upstreams.",
    ["model"],
    buckets=_FAST_BUCKETS,
)
FIRST_CHUNK = Histogram(
    "omixa_time_to_first_chunk_seconds",
    "Streams: arrival of the request until its first chunk is sent to the client.",
    ["model"],
    buckets=_SLOW_BUCKETS,
)
TOKENS = Counter(
    "omixa_tokens",
    "Tokens by model and bucket: input (uncached), cached_input, cache_write, output, reasoning (part of output).",
    ["model", "kind"],
)
COST = Counter(
    "omixa_cost_usd",
    "Cost of the requests at their price card, in USD (each computed exactly as a Decimal, summed as a float).",
    ["model"],
)
LIMIT_REJECTIONS = Counter(
    "omixa_limit_rejections",
    "Requests refused with 429 by Omixa's own limits, by limit (requests, tokens, budget) and scope (key, workspace).",
    ["limit", "scope"],
)

_TOKEN_FIELDS = (
    ("input", "input_tokens"),
    ("cached_input", "cached_input_tokens"),
    ("cache_write", "cache_write_tokens"),
    ("output", "output_tokens"),
    ("reasoning", "reasoning_tokens"),
)


class _Children:
    """`metric.labels(...)` validates and locks on every call: keep each labelled child once."""

    __slots__ = ("children", "metric")

    def __init__(self, metric) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str):
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.metric.labels(*values)
        return child


_requests = _Children(REQUESTS)
_attempts = _Children(ATTEMPTS)
_upstream_latency = _Children(UPSTREAM_LATENCY)
_overhead = _Children(OVERHEAD)
_first_chunk = _Children(FIRST_CHUNK)
_tokens = _Children(TOKENS)
_cost = _Children(COST)
_limit_rejections = _Children(LIMIT_REJECTIONS)


# ---- the hot path ------------------------------------------------------------------------------------


class _Tally:
    """One request's bookkeeping: whether a usage event counted it, and its model once known."""

    __slots__ = ("model", "recorded")

    def __init__(self) -> None:
        self.model = ""
        self.recorded = False


_tally: ContextVar[_Tally | None] = ContextVar("omixa_metrics_tally", default=None)


def observe_call(event: dict[str, Any], cost: str | None, overhead_s: float | None) -> None:
    """Count one request from its usage event (called once per request, by `Call.record`)."""
    tally = _tally.get()
    if tally is not None:
        tally.recorded = True
    model = event["model_slug"]
    route_id = event["route_id"]
    _requests(model, "" if route_id is None else str(route_id), str(event["http_status"])).inc()
    for attempt in event["attempts"]:
        route = str(attempt["route_id"])
        outcome = attempt["outcome"]
        _attempts(model, route, outcome, str(attempt.get("status", ""))).inc()
        ms = attempt.get("ms")
        if ms is not None and outcome != "client_gone":
            _upstream_latency(model, route).observe(ms / 1000)
    if overhead_s is not None:
        _overhead(model).observe(max(overhead_s, 0.0))
    if event["stream"] and event["first_byte_ms"] is not None:
        _first_chunk(model).observe(event["first_byte_ms"] / 1000)
    for kind, name in _TOKEN_FIELDS:
        count = event[name]
        if count:
            _tokens(model, kind).inc(count)
    if cost is not None:
        _cost(model).inc(float(cost))  # the exact decimal string, rounded once to the nearest float


def note_model(slug: str) -> None:
    """The request's model, for counting it if it ends without a usage event."""
    tally = _tally.get()
    if tally is not None:
        tally.model = slug


def counted(view: Callable) -> Callable:
    """Count the chat requests that end without a usage event (refused before reaching a route).

    A streaming answer is always counted by its usage event (recorded when the stream ends), so only
    whole answers are counted here, and only when nothing recorded them.
    """

    @functools.wraps(view)
    async def wrapper(request, *args, **kwargs):
        tally = _Tally()
        _tally.set(tally)  # not reset: the stream that follows runs in this same task and context
        try:
            response = await view(request, *args, **kwargs)
        except asyncio.CancelledError:
            if not tally.recorded:
                _requests(tally.model, "", "499").inc()
            raise
        if not tally.recorded and not response.streaming:
            _requests(tally.model, "", str(response.status_code)).inc()
        return response

    return wrapper


def refused_before_view(path: str, status: int) -> None:
    """A request the ASGI layer answered before any view ran (413: body too large); counted when
    it was for an endpoint whose view is `counted`."""
    if path.startswith(COUNTED_PATHS):
        _requests("", "", str(status)).inc()


def limit_rejected(limit: str, scope: str) -> None:
    """A request refused by Omixa's own limits (`limit`: requests, tokens or budget; `scope`: key or workspace)."""
    _limit_rejections(limit, scope).inc()


# ---- read when scraped ---------------------------------------------------------------------------------


class RouteStateCollector:
    """`omixa_route_state`: 1 for each route's current circuit state, 0 for the others.

    Read from the breaker's shared state in Redis (what every worker sees), or this process's breaker
    without Redis; routes an operator disabled, or taken out of rotation, are `disabled`.
    """

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "omixa_route_state",
            "Circuit state of each route: 1 for its current state (closed, open, half_open, disabled), else 0.",
            labels=["route", "route_name", "model", "state"],
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from gateway.breaker import shared_states

        family = self._family()
        try:
            rows = _routes()
            for _ in range(3):
                try:
                    states = shared_states()
                    break
                except RuntimeError:  # the event loop grew this worker's breaker while we copied it
                    continue
            else:
                states = shared_states()
        except Exception:
            logger.warning("metrics: route states unavailable", exc_info=True)
            return
        for route_id, name, model, in_rotation in rows:
            current = states.get(route_id, "closed") if in_rotation else "disabled"
            for state in ROUTE_STATES:
                family.add_metric([str(route_id), name, model, state], 1.0 if state == current else 0.0)
        yield family


def _routes() -> list[tuple[int, str, str, bool]]:
    from django.db import close_old_connections

    from gateway.models import ProviderKey

    close_old_connections()
    rows = ProviderKey.objects.values_list("id", "name", "model__slug", "enabled", "disabled_reason")
    return [(id_, name, model, enabled and not reason) for id_, name, model, enabled, reason in rows]


class PendingPricingCollector:
    """`omixa_usage_pending_pricing`: usage events not priced yet (a COUNT on a partial index,
    run at most every PENDING_CACHE_SECONDS per process however often the metrics are scraped)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: float | None = None
        self._at = -float("inf")

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    @staticmethod
    def _family(value: float | None = None) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "omixa_usage_pending_pricing", "Usage events waiting to be priced (the Celery backlog).", value=value
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if time.monotonic() - self._at >= PENDING_CACHE_SECONDS:
                try:
                    self._value = float(_count_pending())
                except Exception:
                    logger.warning("metrics: could not count the usage events pending pricing", exc_info=True)
                    self._value = None
                self._at = time.monotonic()
            value = self._value
        if value is not None:
            yield self._family(value)

    def forget(self) -> None:
        """Count afresh at the next scrape (tests)."""
        with self._lock:
            self._at = -float("inf")


def _count_pending() -> int:
    from django.db import close_old_connections

    from billing.models import UsageEvent

    close_old_connections()
    # Matches the partial index `usage_pending_by_time` (WHERE pricing_state = 'pending').
    return UsageEvent.objects.filter(pricing_state=UsageEvent.PricingState.PENDING).count()


route_states = RouteStateCollector()
pending_pricing = PendingPricingCollector()
if not MULTIPROCESS:
    REGISTRY.register(route_states)
    REGISTRY.register(pending_pricing)


def exposition(accept: str = "") -> tuple[bytes, str]:
    """The scrape's body and content type, in the format the `Accept` header asks for (Prometheus
    text by default, or OpenMetrics). Sync (it reads the database): call it from a sync view, which
    Django runs in a thread, never on the event loop."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(route_states)
        registry.register(pending_pricing)
    else:
        registry = REGISTRY
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
