"""PostgreSQL prices a batch in one SQL statement; SQLite (and any other database) in Python. Both must
produce the very same ledger: same card, same rates, same amount to the 16th decimal place, same flags."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import services
from billing.models import LedgerEntry, UsageEvent
from billing.pricing import Rates, usage_cost
from billing.services import month_start, usage_price, usage_price_pending
from tests.test_billing_pricing import make_card, make_event, make_model

JAN = datetime(2026, 1, 1, tzinfo=UTC)
needs_postgres = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="compares PostgreSQL's SQL pricing with the Python path; needs DATABASE_URL=postgres://...",
)

_RATE = st.integers(min_value=0, max_value=2_000 * 10**10).map(lambda n: Decimal(n).scaleb(-10))  # 10 places
_TOKENS = st.integers(min_value=0, max_value=10**9)
_CARD = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["m1", "m2"]),
        "tier": st.sampled_from(["", "", "priority", "flex"]),
        "day": st.integers(min_value=0, max_value=20),
        "rates": st.tuples(_RATE, _RATE, _RATE, st.none() | _RATE),
        "currency": st.sampled_from(["USD", "USD", "USD", "EUR"]),
    }
)
_EVENT = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["m1", "m2", "m3"]),
        "tier": st.sampled_from(["", "priority", "flex", "default"]),
        "minute": st.integers(min_value=0, max_value=30 * 24 * 60),
        "tokens": st.tuples(_TOKENS, _TOKENS, _TOKENS, _TOKENS),
    }
)
_COLUMNS = (
    "price_card_id",
    "amount",
    "currency",
    "input_rate",
    "cached_input_rate",
    "cache_write_rate",
    "output_rate",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "occurred_at",
    "model_slug",
    "workspace_id",
    "kind",
    "posted_after_period",
)


def _ledger(events: list[UsageEvent]) -> list[tuple | str]:
    rows = []
    for event in events:
        event.refresh_from_db()
        entry = LedgerEntry.objects.filter(usage_event=event).values(*_COLUMNS).first()
        rows.append(event.pricing_state if entry is None else tuple(entry[c] for c in _COLUMNS))
    return rows


@needs_postgres
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cards=st.lists(_CARD, max_size=8), events=st.lists(_EVENT, min_size=1, max_size=25))
def test_sql_and_python_paths_price_every_event_identically(world, cards, events):
    assert connection.vendor == "postgresql"
    with transaction.atomic():
        sid = transaction.savepoint()
        models = {slug: make_model(slug) for slug in ("m1", "m2")}  # m3 has no model: unpriced
        seen = set()
        for card in cards:
            key = (card["model"], card["tier"], card["currency"], card["day"])
            if key in seen:
                continue  # one card per model, tier, currency and start (a database constraint)
            seen.add(key)
            input_rate, cached, output, cache_write = card["rates"]
            make_card(
                models[card["model"]],
                at=JAN + timedelta(days=card["day"]),
                tier=card["tier"],
                input=input_rate,
                cached=cached,
                output=output,
                cache_write=cache_write,
                currency=card["currency"],
            )

        def record() -> list[UsageEvent]:
            return [
                make_event(
                    world.workspace,
                    model_slug=e["model"],
                    service_tier=e["tier"],
                    at=JAN + timedelta(minutes=e["minute"]),
                    input_tokens=e["tokens"][0],
                    cached_input_tokens=e["tokens"][1],
                    cache_write_tokens=e["tokens"][2],
                    output_tokens=e["tokens"][3],
                )
                for e in events
            ]

        by_sql, by_python = record(), record()
        sql = services._price_batch_sql(ids=[e.request_id for e in by_sql], limit=1000, since=None)
        python = services._price_batch_python(ids=[e.request_id for e in by_python], limit=1000, since=None)
        assert (sql.claimed, sql.priced, sql.unpriced) == (python.claimed, python.priced, python.unpriced)
        assert sql.through == python.through
        assert _ledger(by_sql) == _ledger(by_python)
        # And both are billing/pricing.py's exact amount (what the client saw as usage.cost).
        for event in by_sql:
            entry = LedgerEntry.objects.filter(usage_event=event).select_related("price_card").first()
            if entry is not None:
                card = entry.price_card
                rates = Rates(card.input_per_1m, card.cached_input_per_1m, card.output_per_1m, card.cache_write_per_1m)
                assert entry.amount == usage_cost(
                    rates,
                    input_tokens=event.input_tokens,
                    cached_input_tokens=event.cached_input_tokens,
                    cache_write_tokens=event.cache_write_tokens,
                    output_tokens=event.output_tokens,
                )
        transaction.savepoint_rollback(sid)


def test_entries_priced_after_their_month_are_flagged_as_late_candidates(world, catalog):
    # `created_at` of an entry is the pricing time (now); only events of an earlier month are flagged.
    now = datetime.now(UTC)
    old = make_event(world.workspace, at=month_start(now) - timedelta(microseconds=1), input_tokens=1)
    current = make_event(world.workspace, at=month_start(now), input_tokens=1)
    assert usage_price().priced == 2
    assert LedgerEntry.objects.get(usage_event=old).posted_after_period is True
    assert LedgerEntry.objects.get(usage_event=current).posted_after_period is False


def test_drain_walks_forward_and_still_prices_an_event_recorded_behind_it(world, catalog, monkeypatch):
    events = [make_event(world.workspace, at=JAN + timedelta(hours=i), input_tokens=i) for i in range(6)]
    calls: list = []
    real = services.usage_price

    def spy(**kwargs):
        calls.append(kwargs.get("since"))
        result = real(**kwargs)
        if len(calls) == 1:  # a spooled event replayed late: older than everything priced so far
            events.append(make_event(world.workspace, at=JAN - timedelta(days=1), input_tokens=7))
        return result

    monkeypatch.setattr(services, "usage_price", spy)
    totals = usage_price_pending(batch_size=2)
    assert totals["priced"] == 7 and totals["more"] is False
    assert calls[0] is None and calls[1] == JAN + timedelta(hours=1)  # the next batch starts at the cursor
    assert None in calls[1:]  # one more pass from the oldest found the late one
    assert not UsageEvent.objects.filter(pricing_state="pending").exists()


def test_request_ids_and_cursor_filters_combine(world, catalog):
    a = make_event(world.workspace, at=JAN, input_tokens=1)
    b = make_event(world.workspace, at=JAN + timedelta(days=1), input_tokens=1)
    result = usage_price(request_ids=[a.request_id, b.request_id, uuid.uuid4()], since=JAN + timedelta(hours=1))
    assert (result.claimed, result.through) == (1, b.created_at)
    a.refresh_from_db()
    assert a.pricing_state == UsageEvent.PricingState.PENDING


@pytest.mark.parametrize("vendor_path", ["_price_batch_python", "_price_batch_sql"])
def test_each_path_prices_the_worked_example_to_4_05(world, catalog, vendor_path):
    if vendor_path == "_price_batch_sql" and connection.vendor != "postgresql":
        pytest.skip("the SQL path is PostgreSQL's (DATABASE_URL=postgres://...)")
    event = make_event(world.workspace, input_tokens=600_000, cached_input_tokens=400_000, output_tokens=500_000)
    result = getattr(services, vendor_path)(ids=[event.request_id], limit=10, since=None)
    assert (result.claimed, result.priced) == (1, 1)
    assert LedgerEntry.objects.get(usage_event=event).amount == Decimal("4.05")


@needs_postgres
def test_only_pricing_own_transaction_commits_without_waiting_for_the_disk(transactional_db, world, catalog):
    from django.test.utils import CaptureQueriesContext

    make_event(world.workspace, input_tokens=1)
    with CaptureQueriesContext(connection) as alone:
        assert usage_price().priced == 1
    assert any(q["sql"] == "SET LOCAL synchronous_commit TO OFF" for q in alone.captured_queries)
    make_event(world.workspace, input_tokens=1)
    with CaptureQueriesContext(connection) as nested, transaction.atomic():
        assert usage_price().priced == 1
    assert not any("synchronous_commit" in q["sql"] for q in nested.captured_queries)


@needs_postgres
def test_two_price_usage_processes_at_once_price_each_event_exactly_once(transactional_db, world, catalog):
    import json
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT
    from tests.test_billing_tasks import _database_url

    UsageEvent.objects.bulk_create(
        UsageEvent(
            request_id=uuid.uuid4(),
            created_at=JAN + timedelta(seconds=i),
            workspace=world.workspace,
            model_slug="codex-mini",
            outcome=UsageEvent.Outcome.COMPLETED,
            http_status=200,
            input_tokens=1_000 + i,
            output_tokens=i % 50,
        )
        for i in range(20_000)
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _database_url()}
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    command = [sys.executable, "manage.py", "price_usage", "--batch-size", "50"]
    workers = [
        subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [json.loads(worker.communicate(timeout=120)[0]) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    assert sum(r["priced"] for r in results) == 20_000
    assert all(r["priced"] > 0 for r in results), results  # both really priced, side by side
    assert LedgerEntry.objects.count() == LedgerEntry.objects.values("usage_event").distinct().count() == 20_000
    assert not UsageEvent.objects.exclude(pricing_state="priced").exists()
    expected = sum(Decimal(1_000 + i) * Decimal("1.50") + Decimal(i % 50) * Decimal("6.00") for i in range(20_000))
    assert sum(LedgerEntry.objects.values_list("amount", flat=True)) == expected / 1_000_000
