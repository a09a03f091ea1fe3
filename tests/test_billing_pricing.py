"""Pricing usage events into the ledger: exact amounts, the right card, exactly once, set-based."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import LedgerEntry, Model, PriceCard, UsageEvent
from billing.selectors import price_card_for
from billing.services import usage_price, usage_price_pending, usage_unpriced_retry
from tests.conftest import REPO_ROOT

JAN = datetime(2026, 1, 1, tzinfo=UTC)


def make_event(workspace, *, model_slug="codex-mini", at=None, service_tier="", **fields) -> UsageEvent:
    values = {
        "outcome": UsageEvent.Outcome.COMPLETED,
        "http_status": 200,
        "input_tokens": 0,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "output_tokens": 0,
    }
    values.update(fields)
    return UsageEvent.objects.create(
        request_id=uuid.uuid4(),
        created_at=at or JAN + timedelta(days=14),
        workspace=workspace,
        model_slug=model_slug,
        service_tier=service_tier,
        **values,
    )


def make_model(slug="test-model") -> Model:
    return Model.objects.create(
        slug=slug, name=slug, provider="openai", endpoint_type="openai_chat", context_window=1000, max_output_tokens=100
    )


def make_card(model, *, at, tier="", input="1", cached="0.5", output="2", cache_write=None, currency="USD"):
    return PriceCard.objects.create(
        model=model,
        service_tier=tier,
        currency=currency,
        input_per_1m=Decimal(input),
        cached_input_per_1m=Decimal(cached),
        output_per_1m=Decimal(output),
        cache_write_per_1m=None if cache_write is None else Decimal(cache_write),
        effective_from=at,
    )


def entry_of(event) -> LedgerEntry:
    return LedgerEntry.objects.get(usage_event=event)


# --- the worked example and exact amounts ---------------------------------------------------------


def test_worked_example_codex_mini_costs_4_05_exactly(world, catalog):
    # 1,000,000 prompt tokens of which 400,000 cached, 500,000 completion (reasoning inside).
    event = make_event(
        world.workspace,
        input_tokens=600_000,
        cached_input_tokens=400_000,
        output_tokens=500_000,
        reasoning_tokens=200_000,
    )
    result = usage_price()
    assert (result.priced, result.unpriced) == (1, 0)
    entry = entry_of(event)
    assert entry.amount == Decimal("4.05")  # 0.90 + 0.15 + 3.00
    card = PriceCard.objects.get(model__slug="codex-mini", service_tier="")
    assert entry.price_card == card and entry.kind == LedgerEntry.Kind.USAGE
    assert (entry.input_rate, entry.cached_input_rate, entry.output_rate) == (
        Decimal("1.50"),
        Decimal("0.375"),
        Decimal("6.00"),
    )
    assert entry.cache_write_rate == Decimal("1.50")  # no cache-write rate on the card: the input rate applied
    assert entry.currency == "USD" and entry.workspace == world.workspace and entry.model_slug == "codex-mini"
    assert entry.occurred_at == event.created_at
    assert (entry.input_tokens, entry.cached_input_tokens, entry.cache_write_tokens, entry.output_tokens) == (
        600_000,
        400_000,
        0,
        500_000,
    )
    event.refresh_from_db()
    assert event.pricing_state == UsageEvent.PricingState.PRICED


def _rate(dp: int, max_units: int):
    """Rates as the card stores them; at most `dp` decimal places."""
    return st.integers(min_value=0, max_value=max_units * 10**dp).map(lambda n: Decimal(n).scaleb(-dp))


# The ledger column keeps 12 decimal places, so exact amounts need rates of at most 6 places (per 1M
# tokens). SQLite keeps 15 significant digits of a decimal, so it gets smaller numbers than PostgreSQL.
_PG = os.environ.get("DATABASE_URL", "").startswith("postgres")
_TOKENS = st.integers(min_value=0, max_value=10**9 if _PG else 10**6)
_RATES = _rate(6, 1000) if _PG else _rate(4, 100)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tokens=st.tuples(_TOKENS, _TOKENS, _TOKENS, _TOKENS),
    rates=st.tuples(_RATES, _RATES, _RATES, st.none() | _RATES),
)
def test_ledger_amount_is_exactly_tokens_times_rates_per_million(world, tokens, rates):
    input_tokens, cached, cache_write, output = tokens
    input_rate, cached_rate, output_rate, cache_write_rate = rates
    with transaction.atomic():
        sid = transaction.savepoint()
        model = make_model()
        card = make_card(
            model,
            at=JAN,
            input=input_rate,
            cached=cached_rate,
            output=output_rate,
            cache_write=cache_write_rate,
        )
        event = make_event(
            world.workspace,
            model_slug=model.slug,
            input_tokens=input_tokens,
            cached_input_tokens=cached,
            cache_write_tokens=cache_write,
            output_tokens=output,
        )
        usage_price(request_ids=[event.request_id])
        entry = entry_of(event)
        with localcontext() as exact:
            exact.prec = 100
            expected = (
                input_tokens * input_rate
                + cached * cached_rate
                + cache_write * (input_rate if cache_write_rate is None else cache_write_rate)
                + output * output_rate
            ) / Decimal(1_000_000)
        assert entry.amount == expected
        assert entry.price_card_id == card.id
        transaction.savepoint_rollback(sid)


def test_ledger_keeps_a_ten_decimal_rate_exactly(world):
    model = make_model()
    make_card(model, at=JAN, input="0.0000000001")
    event = make_event(world.workspace, model_slug=model.slug, input_tokens=1)
    usage_price()
    assert entry_of(event).amount == Decimal("1E-16")


# --- which card ---------------------------------------------------------------------------------


def test_price_change_mid_month_prices_each_event_at_its_own_card(world):
    model = make_model()
    old = make_card(model, at=JAN, input="1", output="2")
    new = make_card(model, at=JAN + timedelta(days=15), input="3", output="4")
    before = make_event(world.workspace, model_slug=model.slug, at=JAN + timedelta(days=14), input_tokens=1_000_000)
    at_change = make_event(world.workspace, model_slug=model.slug, at=JAN + timedelta(days=15), input_tokens=1_000_000)
    after = make_event(world.workspace, model_slug=model.slug, at=JAN + timedelta(days=20), output_tokens=1_000_000)
    assert usage_price().priced == 3
    assert (entry_of(before).price_card, entry_of(before).amount) == (old, Decimal(1))
    # A card starts at its `effective_from` exactly: the event at that instant gets the new price.
    assert (entry_of(at_change).price_card, entry_of(at_change).amount) == (new, Decimal(3))
    assert (entry_of(after).price_card, entry_of(after).amount) == (new, Decimal(4))


def test_tier_card_used_when_the_event_reports_that_tier_else_the_all_tier_card(world):
    model = make_model()
    base = make_card(model, at=JAN, input="1")
    priority = make_card(model, at=JAN, tier="priority", input="2")
    later_flex = make_card(model, at=JAN + timedelta(days=20), tier="flex", input="0.5")
    on_priority = make_event(world.workspace, model_slug=model.slug, service_tier="priority", input_tokens=1_000_000)
    on_default = make_event(world.workspace, model_slug=model.slug, service_tier="default", input_tokens=1_000_000)
    no_tier = make_event(world.workspace, model_slug=model.slug, input_tokens=1_000_000)
    flex_early = make_event(world.workspace, model_slug=model.slug, service_tier="flex", input_tokens=1_000_000)
    flex_late = make_event(
        world.workspace, model_slug=model.slug, service_tier="flex", at=JAN + timedelta(days=21), input_tokens=1_000_000
    )
    usage_price()
    assert (entry_of(on_priority).price_card, entry_of(on_priority).amount) == (priority, Decimal(2))
    assert (entry_of(on_default).price_card, entry_of(on_default).amount) == (base, Decimal(1))
    assert entry_of(no_tier).price_card == base
    assert entry_of(flex_early).price_card == base  # the flex card was not in effect yet
    assert (entry_of(flex_late).price_card, entry_of(flex_late).amount) == (later_flex, Decimal("0.5"))
    # The batch's card resolution agrees with the selector everyone else uses.
    for event in (on_priority, on_default, no_tier, flex_early, flex_late):
        assert entry_of(event).price_card == price_card_for(
            model=model, at=event.created_at, service_tier=event.service_tier
        )


def test_cache_writes_use_their_own_rate_or_the_input_rate(world):
    with_rate = make_model("with-cache-write")
    make_card(with_rate, at=JAN, input="3", cache_write="3.75")
    without = make_model("without-cache-write")
    make_card(without, at=JAN, input="3")
    a = make_event(world.workspace, model_slug=with_rate.slug, cache_write_tokens=1_000_000)
    b = make_event(world.workspace, model_slug=without.slug, cache_write_tokens=1_000_000)
    usage_price()
    assert (entry_of(a).amount, entry_of(a).cache_write_rate) == (Decimal("3.75"), Decimal("3.75"))
    assert (entry_of(b).amount, entry_of(b).cache_write_rate) == (Decimal(3), Decimal(3))


def test_card_in_another_currency_does_not_price_the_workspace(world):
    model = make_model()
    make_card(model, at=JAN, currency="EUR")
    event = make_event(world.workspace, model_slug=model.slug, input_tokens=10)
    assert usage_price().unpriced == 1
    assert not LedgerEntry.objects.filter(usage_event=event).exists()


# --- unpriced, and re-pricing ---------------------------------------------------------------------


def test_missing_model_or_card_marks_unpriced_with_no_ledger_entry(world, catalog):
    unknown = make_event(world.workspace, model_slug="no-such-model", input_tokens=100, output_tokens=5)
    model = make_model()
    make_card(model, at=JAN + timedelta(days=20))
    before_card = make_event(world.workspace, model_slug=model.slug, at=JAN + timedelta(days=1), input_tokens=100)
    known = make_event(world.workspace, input_tokens=100)
    result = usage_price()
    assert (result.claimed, result.priced, result.unpriced) == (3, 1, 2)
    for event in (unknown, before_card):
        event.refresh_from_db()
        assert event.pricing_state == UsageEvent.PricingState.UNPRICED
        assert not LedgerEntry.objects.filter(usage_event=event).exists()
    assert LedgerEntry.objects.filter(usage_event=known).exists()
    # Unpriced events are not claimed again by a plain run.
    assert usage_price().claimed == 0


def test_unpriced_event_is_priced_after_its_card_appears_with_retry(world):
    event = make_event(world.workspace, model_slug="new-model", input_tokens=2_000_000)
    assert usage_price_pending()["unpriced"] == 1
    # Another plain run changes nothing: the event stays flagged for an operator.
    assert usage_price_pending() == {"priced": 0, "unpriced": 0, "batches": 0, "more": False}
    model = make_model("new-model")
    card = make_card(model, at=JAN, input="0.25")  # the catalog learns the model, priced from January
    out = StringIO()
    call_command("price_usage", "--retry-unpriced", stdout=out)
    assert json.loads(out.getvalue()) == {"priced": 1, "unpriced": 0, "batches": 1, "retried": 1}
    event.refresh_from_db()
    assert event.pricing_state == UsageEvent.PricingState.PRICED
    assert (entry_of(event).price_card, entry_of(event).amount) == (card, Decimal("0.5"))


def test_retry_leaves_still_unpriceable_events_unpriced(world):
    event = make_event(world.workspace, model_slug="still-missing", input_tokens=1)
    usage_price()
    assert usage_unpriced_retry() == 1
    assert usage_price_pending()["unpriced"] == 1
    event.refresh_from_db()
    assert event.pricing_state == UsageEvent.PricingState.UNPRICED


# --- zero tokens, request ids ---------------------------------------------------------------------


def test_zero_token_failure_costs_zero_but_gets_its_entry(world, catalog):
    event = make_event(world.workspace, outcome=UsageEvent.Outcome.UPSTREAM_ERROR, http_status=502)
    assert usage_price().priced == 1
    entry = entry_of(event)
    assert entry.amount == 0 and entry.price_card is not None


def test_request_ids_price_only_those_events_and_ignore_bad_ids(world, catalog):
    mine = make_event(world.workspace, input_tokens=10)
    other = make_event(world.workspace, input_tokens=10)
    result = usage_price(request_ids=[str(mine.request_id), "not-a-uuid", str(uuid.uuid4())])
    assert (result.claimed, result.priced) == (1, 1)
    other.refresh_from_db()
    assert other.pricing_state == UsageEvent.PricingState.PENDING
    assert usage_price(request_ids=["not-a-uuid"]).claimed == 0


def test_sweep_prices_oldest_first_in_bounded_batches(world, catalog):
    events = [make_event(world.workspace, at=JAN + timedelta(hours=i), input_tokens=i) for i in range(7)]
    first = usage_price(limit=3)
    assert first.priced == 3
    states = {e.id: s for e, s in ((e, UsageEvent.objects.get(pk=e.pk).pricing_state) for e in events)}
    assert [states[e.id] for e in events] == ["priced"] * 3 + ["pending"] * 4
    assert usage_price_pending(batch_size=3, max_batches=1) == {"priced": 3, "unpriced": 0, "batches": 1, "more": True}
    assert usage_price_pending(batch_size=3) == {"priced": 1, "unpriced": 0, "batches": 1, "more": False}


# --- exactly once -------------------------------------------------------------------------------


def test_pricing_twice_creates_no_duplicates(world, catalog):
    events = [make_event(world.workspace, input_tokens=100, output_tokens=i) for i in range(5)]
    ids = [e.request_id for e in events]
    assert usage_price(request_ids=ids).priced == 5
    assert usage_price(request_ids=ids).claimed == 0
    assert usage_price_pending()["priced"] == 0
    assert LedgerEntry.objects.count() == 5
    assert set(LedgerEntry.objects.values_list("usage_event_id", flat=True)) == {e.id for e in events}


def test_event_wrongly_left_pending_keeps_its_single_entry(world, catalog):
    """The database is the backstop: even if an event with an entry were pending again, no second entry."""
    event = make_event(world.workspace, input_tokens=1_000_000)
    usage_price()
    UsageEvent.objects.filter(pk=event.pk).update(pricing_state=UsageEvent.PricingState.PENDING)
    assert usage_price().priced == 1
    assert LedgerEntry.objects.filter(usage_event=event).count() == 1
    event.refresh_from_db()
    assert event.pricing_state == UsageEvent.PricingState.PRICED


def test_pricing_is_set_based_a_fixed_number_of_queries_per_batch(world, catalog):
    model = make_model()
    make_card(model, at=JAN)
    make_card(model, at=JAN + timedelta(days=10), tier="priority")
    for i in range(200):
        slug = ("codex-mini", model.slug, "missing")[i % 3]
        make_event(world.workspace, model_slug=slug, service_tier="priority" if i % 2 else "", input_tokens=i)
    with CaptureQueriesContext(connection) as captured:
        result = usage_price(limit=500)
    assert result.claimed == 200 and result.priced + result.unpriced == 200
    verbs = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    if connection.vendor == "postgresql":
        # One SELECT takes the shared ledger lock and the database clock (invoices); one statement
        # claims, rates, inserts and marks the whole batch.
        assert verbs == ["SAVEPOINT", "SELECT", "WITH", "RELEASE"]  # inside the test's transaction: no SET
        claim = captured.captured_queries[2]["sql"]
        assert "FOR UPDATE OF u SKIP LOCKED" in claim and "ON CONFLICT (usage_event_id) DO NOTHING" in claim
        return
    # Claim, cards, check; one state update; the insert is one statement (SQLite splits it only at
    # its 999-parameter limit, ~50 rows a statement). Nothing per row.
    assert verbs.count("SELECT") == 3
    assert verbs.count("UPDATE") == 1
    inserts = verbs.count("INSERT")
    assert inserts <= -(-result.priced // 40)
    assert len(verbs) - inserts <= 7  # plus the savepoint and its release


# --- the command ----------------------------------------------------------------------------------


def test_price_usage_command_prints_one_json_object(world, catalog):
    for _ in range(3):
        make_event(world.workspace, input_tokens=5)
    make_event(world.workspace, model_slug="missing", input_tokens=5)
    out = StringIO()
    call_command("price_usage", "--batch-size", "2", stdout=out)
    assert json.loads(out.getvalue()) == {"priced": 3, "unpriced": 1, "batches": 2}


def test_price_usage_command_refuses_a_bad_batch_size(db):
    with pytest.raises(CommandError, match="--batch-size must be positive"):
        call_command("price_usage", "--batch-size", "0")


def test_price_usage_command_exits_non_zero_with_a_message_when_the_database_is_down():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": "postgres://nobody@127.0.0.1:9/nowhere?connect_timeout=2",
    }
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "manage.py", "price_usage"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert done.stdout == ""
    assert "CommandError: pricing failed" in done.stderr
    assert "Traceback" not in done.stderr


def test_connection_vendor_is_known():
    # The property test picks its number ranges by backend; make sure the guess matches reality.
    assert connection.vendor == ("postgresql" if _PG else "sqlite")


def test_rates_of_a_card_or_of_its_values_row_are_the_same():
    from types import SimpleNamespace

    from billing.pricing import Rates

    fields = {
        "input_per_1m": Decimal("1.5"),
        "cached_input_per_1m": Decimal("0.375"),
        "output_per_1m": Decimal("6"),
        "cache_write_per_1m": None,
        "currency": "USD",
    }
    assert Rates.of(fields) == Rates.of(SimpleNamespace(**fields)) == Rates(**fields)
