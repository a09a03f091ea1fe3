"""Operational endpoints: liveness, readiness and the Prometheus scrape.

- `/healthz`: the process answers (no dependency is touched): 200.
- `/readyz`: every configured dependency answers, each checked in parallel with a short timeout:
  the database (a fresh connection and `SELECT 1`), Redis when `REDIS_URL` is set, and the Celery
  broker when tasks are not run eagerly. 200 when all are up, else 503; per-check JSON detail.
- `/metrics`: gateway/metrics.py in Prometheus' text format.

They are sync views: Django runs them in a thread, so a slow dependency never blocks the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from omixa.logging import redact

CHECK_TIMEOUT = 1.5  # seconds: each dependency's connect / answer timeout; the whole check waits a bit more

# Shared, so a stuck dependency cannot make each probe start threads without bound (a check that
# overruns the deadline finishes in the background, bounded by the driver's own timeout).
_pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="omixa-readyz")


def check_database() -> None:
    """A fresh connection (not the thread's pooled one, which may be stale or healthy by luck)."""
    from django.db import connections
    from django.db.utils import load_backend

    params = connections.settings["default"]
    options = dict(params.get("OPTIONS") or {})
    if params["ENGINE"] == "django.db.backends.postgresql":
        options["connect_timeout"] = max(1, round(CHECK_TIMEOUT))  # libpq takes whole seconds
    wrapper = load_backend(params["ENGINE"]).DatabaseWrapper({**params, "OPTIONS": options}, "readyz")
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        wrapper.close()


def check_redis() -> None:
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=CHECK_TIMEOUT, socket_connect_timeout=CHECK_TIMEOUT, retry_on_timeout=False
    )
    try:
        client.ping()
    finally:
        client.close()


def check_broker() -> None:
    from kombu import Connection

    with Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=CHECK_TIMEOUT,
        transport_options={"socket_timeout": CHECK_TIMEOUT, "socket_connect_timeout": CHECK_TIMEOUT},
    ) as connection:
        connection.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT)


def configured_checks() -> dict[str, Callable[[], None]]:
    checks: dict[str, Callable[[], None]] = {"database": check_database}
    if settings.REDIS_URL:
        checks["redis"] = check_redis
    if settings.CELERY_BROKER_URL and not settings.CELERY_TASK_ALWAYS_EAGER:
        checks["broker"] = check_broker
    return checks


def _timed(check: Callable[[], None]) -> dict:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:
        detail = {"status": "down", "error": redact(f"{type(exc).__name__}: {exc}")[:300]}
    else:
        detail = {"status": "up"}
    detail["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return detail


def readiness() -> tuple[bool, dict[str, dict]]:
    checks = configured_checks()
    futures = {name: _pool.submit(_timed, check) for name, check in checks.items()}
    wait(futures.values(), timeout=CHECK_TIMEOUT + 0.5)
    results = {}
    for name, future in futures.items():
        if future.done():
            results[name] = future.result()
        else:
            results[name] = {"status": "down", "error": "no answer in time", "ms": (CHECK_TIMEOUT + 0.5) * 1000}
    return all(r["status"] == "up" for r in results.values()), results


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    ready, checks = readiness()
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    from gateway.metrics import exposition

    body, content_type = exposition(request.headers.get("accept", ""))
    return HttpResponse(body, content_type=content_type)
