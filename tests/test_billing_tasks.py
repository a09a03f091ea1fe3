"""Billing's Celery tasks: thin, safe to run twice or at the same moment, retrying only transient
errors; the gateway's recorded usage is priced (eagerly in process, and by a real worker on Redis)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal

import openai
import pytest
from django.conf import settings as django_settings
from django.db import IntegrityError, OperationalError, connection, connections, transaction

from billing import tasks
from billing.models import LedgerEntry, UsageEvent
from billing.services import usage_price, usage_price_pending
from omixa.celery import app as celery_app
from tests.conftest import REPO_ROOT
from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.test_billing_pricing import make_event

needs_postgres = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="concurrent claims need PostgreSQL's row locks; SQLite serializes writers, so nothing runs concurrently",
)


@pytest.fixture
def eager(monkeypatch):
    """Run tasks in process even when REDIS_URL configures a broker (the gateway's writer thread too)."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    monkeypatch.setitem(celery_app.conf, "task_eager_propagates", True)


def _wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


# --- the tasks exist where settings and the gateway expect them -----------------------------------


def test_beat_schedule_names_existing_tasks():
    names = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert names == {"billing.tasks.price_pending_usage", "billing.tasks.roll_up_invoices"}
    assert names <= set(celery_app.tasks)
    assert "billing.tasks.price_usage_events" in celery_app.tasks


def test_tasks_retry_only_transient_database_errors():
    for task in (tasks.price_usage_events, tasks.price_pending_usage, tasks.roll_up_invoices):
        assert set(task.autoretry_for) == {OperationalError, tasks.InterfaceError}
        assert not any(issubclass(IntegrityError, kind) for kind in task.autoretry_for)
        assert task.max_retries == 5


# --- behaviour, eagerly in process ---------------------------------------------------------------


def test_price_usage_events_prices_the_given_ids_and_is_safe_twice(world, catalog, eager):
    events = [make_event(world.workspace, input_tokens=1_000, output_tokens=10) for _ in range(3)]
    other = make_event(world.workspace, input_tokens=1)
    ids = [str(e.request_id) for e in events] + [str(uuid.uuid4())]
    assert tasks.price_usage_events.delay(ids).get() == {"priced": 3, "unpriced": 0}
    assert tasks.price_usage_events.delay(ids).get() == {"priced": 0, "unpriced": 0}
    assert LedgerEntry.objects.count() == 3
    other.refresh_from_db()
    assert other.pricing_state == UsageEvent.PricingState.PENDING  # the sweep's job


def test_price_usage_events_splits_many_ids_into_batches(world, catalog, eager, monkeypatch):
    monkeypatch.setattr(tasks, "BATCH_SIZE", 2)
    events = [make_event(world.workspace, input_tokens=i) for i in range(5)]
    assert tasks.price_usage_events.delay([str(e.request_id) for e in events]).get()["priced"] == 5


def test_sweep_drains_the_whole_backlog_when_eager(world, catalog, eager, monkeypatch):
    monkeypatch.setattr(tasks, "BATCH_SIZE", 2)
    monkeypatch.setattr(tasks, "SWEEP_BATCHES_PER_RUN", 1)
    for i in range(7):
        make_event(world.workspace, input_tokens=i)
    make_event(world.workspace, model_slug="missing", input_tokens=1)
    result = tasks.price_pending_usage.delay().get()
    assert (result["priced"], result["unpriced"]) == (7, 1)
    assert not UsageEvent.objects.filter(pricing_state="pending").exists()


def test_sweep_with_a_broker_prices_a_bounded_run_and_re_enqueues_itself(world, catalog, monkeypatch):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    monkeypatch.setattr(tasks, "BATCH_SIZE", 2)
    monkeypatch.setattr(tasks, "SWEEP_BATCHES_PER_RUN", 2)
    sent = []
    monkeypatch.setattr(tasks.price_pending_usage, "apply_async", lambda *a, **kw: sent.append((a, kw)))
    for i in range(5):
        make_event(world.workspace, input_tokens=i)
    first = tasks.price_pending_usage()  # as a worker runs it
    assert (first["priced"], first["batches"], first["more"]) == (4, 2, True)
    assert len(sent) == 1
    second = tasks.price_pending_usage()
    assert (second["priced"], second["more"]) == (1, False)
    assert len(sent) == 1  # a short batch: done, no re-enqueue


def test_transient_database_error_is_retried_then_prices(world, catalog, monkeypatch):
    # As a worker runs it: the retry is re-executed (eagerly here) instead of surfacing the error.
    monkeypatch.setitem(celery_app.conf, "task_eager_propagates", False)
    event = make_event(world.workspace, input_tokens=1_000_000)
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return usage_price(**kwargs)

    monkeypatch.setattr(tasks, "usage_price", flaky)
    result = tasks.price_usage_events.apply(args=[[str(event.request_id)]])
    assert result.get() == {"priced": 1, "unpriced": 0}
    assert len(calls) == 2
    assert LedgerEntry.objects.get(usage_event=event).amount == Decimal("1.5")


def test_a_bug_is_not_retried(world, catalog, eager, monkeypatch):
    event = make_event(world.workspace, input_tokens=1)
    calls = []

    def broken(**kwargs):
        calls.append(kwargs)
        raise IntegrityError("not transient")

    monkeypatch.setattr(tasks, "usage_price", broken)
    with pytest.raises(IntegrityError):
        tasks.price_usage_events.delay([str(event.request_id)])
    assert len(calls) == 1


# --- concurrency on PostgreSQL ------------------------------------------------------------------


def _run_in_threads(count: int, target) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = target()
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's connection, so the test database can be dropped

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


@needs_postgres
def test_concurrent_sweeps_price_every_event_exactly_once(transactional_db, world, catalog):
    events = [make_event(world.workspace, input_tokens=1_000 + i, output_tokens=i) for i in range(1_200)]
    results = _run_in_threads(4, lambda: usage_price_pending(batch_size=50))
    assert sum(r["priced"] for r in results) == len(events)
    assert sum(1 for r in results if r["priced"]) >= 2, results  # they really ran side by side
    assert LedgerEntry.objects.count() == len(events)
    assert LedgerEntry.objects.values("usage_event").distinct().count() == len(events)
    assert not UsageEvent.objects.exclude(pricing_state="priced").exists()


@needs_postgres
def test_concurrent_runs_over_the_same_ids_price_each_once(transactional_db, world, catalog):
    events = [make_event(world.workspace, input_tokens=100, output_tokens=i) for i in range(300)]
    ids = [str(e.request_id) for e in events]
    results = _run_in_threads(3, lambda: usage_price(request_ids=ids, limit=1_000))
    assert sum(r.priced for r in results) == len(events)
    assert LedgerEntry.objects.count() == len(events)
    expected = sum(Decimal(100) * Decimal("1.50") + Decimal(i) * Decimal("6.00") for i in range(300)) / 1_000_000
    assert sum(LedgerEntry.objects.values_list("amount", flat=True)) == expected


def test_a_worker_that_dies_mid_batch_leaves_its_events_pending(transactional_db, world, catalog):
    events = [make_event(world.workspace, input_tokens=10) for _ in range(5)]
    with pytest.raises(OperationalError), transaction.atomic():
        assert usage_price().priced == len(events)  # written, not committed yet
        assert LedgerEntry.objects.count() == len(events)
        raise OperationalError("terminating connection due to administrator command")  # dies before commit
    assert not LedgerEntry.objects.exists()  # the insert rolled back with the batch
    assert set(UsageEvent.objects.values_list("pricing_state", flat=True)) == {UsageEvent.PricingState.PENDING}
    assert usage_price().priced == len(events)


# --- the real gateway -----------------------------------------------------------------------------


def _ask(gateway, world) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(base_url=gateway.api, api_key=world.key, max_retries=0, timeout=20)
    return client.chat.completions.with_raw_response.create(
        model="codex-mini", messages=[{"role": "user", "content": "Say hello in five words."}]
    )


def test_event_recorded_by_the_gateway_is_priced_at_the_cost_the_client_saw(gateway, world, mock_upstream, eager):
    mock_route(gateway, mock_upstream)
    raw = _ask(gateway, world)
    answer = raw.parse()
    request_id = raw.headers["x-request-id"]
    cost = Decimal(answer.usage.model_extra["cost"])
    assert cost > 0
    gateway.flush_usage()
    # With eager Celery the usage writer thread prices the batch right after inserting it.
    entry = _wait_for(lambda: LedgerEntry.objects.filter(usage_event__request_id=request_id).first())
    assert entry is not None, "the gateway's recorded event was not priced"
    assert entry.amount == cost
    assert entry.workspace_id == world.workspace.id
    assert UsageEvent.objects.get(request_id=request_id).pricing_state == UsageEvent.PricingState.PRICED


# --- a real Celery worker on Redis ----------------------------------------------------------------


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def celery_worker_process(transactional_db, monkeypatch, tmp_path):
    """A real `celery worker` on this test's own queue, reading the test database."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs Redis (REDIS_URL) for a real Celery broker")
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)  # even if test settings make tasks eager
    queue = f"omixa-test-{uuid.uuid4().hex[:12]}"

    # Route billing's tasks to the private queue, so test runs sharing the Redis never take each
    # other's messages (the gateway's own `.delay()` goes through this same router).
    def route(name, args, kwargs, options, task=None, **kw):
        return {"queue": queue} if name.startswith("billing.tasks.") else None

    router = celery_app.amqp.router
    monkeypatch.setattr(router, "routes", [route, *router.routes])
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "OMIXA_VAR_DIR": str(tmp_path),
        "OMIXA_LOG_LEVEL": "WARNING",
    }
    log = open(tmp_path / "worker.log", "w")
    command = [sys.executable, "-m", "celery", "-A", "omixa", "worker", "-Q", queue, "--pool", "solo", "-l", "warning"]
    process = subprocess.Popen(
        [*command, "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        import redis

        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        client.close()
        output = (tmp_path / "worker.log").read_text()
        if "Traceback" in output:
            print(output)


def test_real_celery_worker_prices_what_the_gateway_recorded(celery_worker_process, gateway, world, mock_upstream):
    mock_route(gateway, mock_upstream)
    raws = [_ask(gateway, world) for _ in range(3)]
    gateway.flush_usage()
    ids = [raw.headers["x-request-id"] for raw in raws]
    costs = {raw.headers["x-request-id"]: Decimal(raw.parse().usage.model_extra["cost"]) for raw in raws}
    # The gateway's writer enqueued price_usage_events on Redis; the worker process prices them.
    priced = _wait_for(lambda: LedgerEntry.objects.filter(usage_event__request_id__in=ids).count() == 3, timeout=60)
    assert priced, f"worker did not price: {list(UsageEvent.objects.values_list('pricing_state', flat=True))}"
    for entry in LedgerEntry.objects.filter(usage_event__request_id__in=ids).select_related("usage_event"):
        assert entry.amount == costs[str(entry.usage_event.request_id)]
    # An event nobody scheduled (Redis was down when it was recorded) is caught by the beat sweep.
    stranded = make_event(world.workspace, input_tokens=1_000_000)
    tasks.price_pending_usage.delay()
    entry = _wait_for(lambda: LedgerEntry.objects.filter(usage_event=stranded).first(), timeout=60)
    assert entry is not None and entry.amount == Decimal("1.5")
