"""Invoices: calendar months (UTC, half-open), drafts kept current, finalization after grace, late
usage on the next invoice, per-line rounding half up to the cent, total = sum of lines."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, localcontext
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import services
from billing.models import Invoice, InvoiceLine, LedgerEntry
from billing.services import INVOICE_GRACE, BillingError, invoice_roll_up, round_line, usage_price, usage_price_pending
from tests.test_billing_pricing import _RATES, _TOKENS, make_card, make_event, make_model
from tests.test_billing_tasks import needs_postgres

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
APR = datetime(2026, 4, 1, tzinfo=UTC)


def invoice_of(workspace, period) -> Invoice:
    return Invoice.objects.get(workspace=workspace, period_start=period)


def lines_of(invoice) -> dict[tuple[str, bool], InvoiceLine]:
    return {(line.model_slug, line.is_late): line for line in invoice.lines.all()}


@pytest.fixture
def priced(world):
    """A model at $1 per 1M input tokens: an event of n tokens costs n / 1,000,000 dollars."""
    model = make_model("one-dollar")
    make_card(model, at=JAN - timedelta(days=60), input="1", output="1")

    def use(at, tokens, *, workspace=None):
        event = make_event(workspace or world.workspace, model_slug=model.slug, at=at, input_tokens=tokens)
        usage_price(request_ids=[event.request_id])
        return event

    return use


# --- periods --------------------------------------------------------------------------------------


def test_month_boundaries_are_utc_midnight_half_open(world, priced):
    priced(FEB - timedelta(microseconds=1), 1_000_000)  # the last instant of January
    priced(FEB, 2_000_000)  # the first instant of February
    priced(datetime(2026, 2, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), 4_000_000)  # 23:30 UTC, Jan 31
    invoice_roll_up(period=JAN, now=FEB + timedelta(days=1))
    invoice_roll_up(period=FEB, now=FEB + timedelta(days=1))
    jan, feb = invoice_of(world.workspace, JAN), invoice_of(world.workspace, FEB)
    assert (jan.period_start, jan.period_end) == (JAN, FEB)
    assert (feb.period_start, feb.period_end) == (FEB, MAR)
    assert jan.total == Decimal(5) and feb.total == Decimal(2)


def test_draft_is_kept_current_and_rebuilding_it_twice_changes_nothing(world, priced):
    priced(JAN + timedelta(days=3), 1_000_000)
    invoice_roll_up(now=JAN + timedelta(days=10))
    draft = invoice_of(world.workspace, JAN)
    assert draft.status == Invoice.Status.DRAFT and draft.number is None and draft.total == Decimal(1)
    priced(JAN + timedelta(days=11), 500_000)
    invoice_roll_up(now=JAN + timedelta(days=12))
    invoice_roll_up(now=JAN + timedelta(days=12))
    draft.refresh_from_db()
    assert draft.total == Decimal("1.50")
    assert draft.lines.count() == 1 and Invoice.objects.count() == 1


def test_one_workspace_never_sees_anothers_usage(world, priced):
    priced(JAN + timedelta(days=1), 1_000_000)
    priced(JAN + timedelta(days=1), 7_000_000, workspace=world.other_workspace)
    invoice_roll_up(now=JAN + timedelta(days=5))
    mine, theirs = invoice_of(world.workspace, JAN), invoice_of(world.other_workspace, JAN)
    assert (mine.total, theirs.total) == (Decimal(1), Decimal(7))
    assert sum(line.input_tokens for line in mine.lines.all()) == 1_000_000


# --- lines and rounding ---------------------------------------------------------------------------


def test_lines_per_model_round_half_up_to_the_cent_and_total_is_their_sum(world):
    half = make_model("half-cent")
    make_card(half, at=JAN - timedelta(days=1), input="5")  # 1,000 tokens = $0.005
    under = make_model("under-half")
    make_card(under, at=JAN - timedelta(days=1), input="4")  # 1,000 tokens = $0.004
    for model in (half, under):
        make_event(world.workspace, model_slug=model.slug, at=JAN + timedelta(days=2), input_tokens=1_000)
    usage_price()
    invoice_roll_up(now=JAN + timedelta(days=5))
    invoice = invoice_of(world.workspace, JAN)
    lines = lines_of(invoice)
    assert lines[("half-cent", False)].amount == Decimal("0.01")  # half up, not half to even
    assert lines[("under-half", False)].amount == Decimal("0.00")
    assert invoice.total == Decimal("0.01")
    assert lines[("half-cent", False)].input_tokens == 1_000 and lines[("half-cent", False)].currency == "USD"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amounts=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.integers(min_value=-(10**9), max_value=10**11).map(lambda n: Decimal(n).scaleb(-9)),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_line_amounts_and_totals_are_exact_for_any_entries(world, amounts):
    with transaction.atomic():
        sid = transaction.savepoint()
        LedgerEntry.objects.bulk_create(
            LedgerEntry(
                kind=LedgerEntry.Kind.ADJUSTMENT,
                workspace=world.workspace,
                model_slug=slug,
                occurred_at=JAN + timedelta(hours=i),
                amount=amount,
            )
            for i, (slug, amount) in enumerate(amounts)
        )
        invoice_roll_up(period=JAN, now=JAN + timedelta(days=20))
        invoice = invoice_of(world.workspace, JAN)
        expected = {}
        for slug, amount in amounts:
            expected[slug] = expected.get(slug, Decimal(0)) + amount
        lines = {line.model_slug: line.amount for line in invoice.lines.all()}
        assert lines == {s: v.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) for s, v in expected.items()}
        assert invoice.total == sum(lines.values())
        transaction.savepoint_rollback(sid)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cards=st.lists(st.tuples(_RATES, _RATES, _RATES, st.none() | _RATES), min_size=2, max_size=2),
    events=st.lists(
        st.tuples(st.integers(min_value=0, max_value=1), st.tuples(_TOKENS, _TOKENS, _TOKENS, _TOKENS)),
        min_size=1,
        max_size=20,
    ),
)
def test_invoice_lines_are_the_rounded_exact_cost_of_random_usage_and_cards(world, cards, events):
    with transaction.atomic():
        sid = transaction.savepoint()
        slugs = []
        for i, (input_rate, cached, output, cache_write) in enumerate(cards):
            model = make_model(f"prop-{i}")
            make_card(
                model,
                at=JAN - timedelta(days=1),
                input=input_rate,
                cached=cached,
                output=output,
                cache_write=cache_write,
            )
            slugs.append(model.slug)
        expected: dict[str, list] = {}
        with localcontext() as exact:
            exact.prec = 100
            for n, (which, (uncached, cached_tokens, cache_write_tokens, output_tokens)) in enumerate(events):
                make_event(
                    world.workspace,
                    model_slug=slugs[which],
                    at=JAN + timedelta(hours=n),
                    input_tokens=uncached,
                    cached_input_tokens=cached_tokens,
                    cache_write_tokens=cache_write_tokens,
                    output_tokens=output_tokens,
                )
                input_rate, cached_rate, output_rate, cache_write_rate = cards[which]
                cost = (
                    uncached * input_rate
                    + cached_tokens * cached_rate
                    + cache_write_tokens * (input_rate if cache_write_rate is None else cache_write_rate)
                    + output_tokens * output_rate
                ) / Decimal(1_000_000)
                sums = expected.setdefault(slugs[which], [Decimal(0), 0, 0])
                sums[0] += cost
                sums[1] += uncached
                sums[2] += output_tokens
        usage_price_pending()
        invoice_roll_up(period=JAN, now=JAN + timedelta(days=20))
        invoice = invoice_of(world.workspace, JAN)
        lines = {line.model_slug: line for line in invoice.lines.all()}
        assert set(lines) == set(expected)
        for slug, (cost, uncached, output_tokens) in expected.items():
            assert lines[slug].amount == cost.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            assert (lines[slug].input_tokens, lines[slug].output_tokens) == (uncached, output_tokens)
        assert invoice.total == sum(line.amount for line in lines.values())
        transaction.savepoint_rollback(sid)


def test_rounding_rule_is_half_up_away_from_zero():
    assert round_line(Decimal("0.005")) == Decimal("0.01")
    assert round_line(Decimal("0.0049999")) == Decimal("0.00")
    assert round_line(Decimal("-0.005")) == Decimal("-0.01")
    assert round_line(Decimal("2.675")) == Decimal("2.68")


# --- finalization, grace and late usage: a whole period, with frozen "now" ---------------------------


def test_scenario_usage_grace_finalize_late_event_and_the_next_period(world, priced):
    priced(JAN + timedelta(days=5), 1_000_000)
    priced(JAN + timedelta(days=20), 2_000_000)

    # Inside the grace window January stays a draft, even when asked to finalize.
    invoice_roll_up(finalize=True, now=FEB + INVOICE_GRACE - timedelta(minutes=1))
    jan = invoice_of(world.workspace, JAN)
    assert jan.status == Invoice.Status.DRAFT
    with pytest.raises(BillingError, match="cannot be finalized before 2026-02-04 00:00 UTC"):
        invoice_roll_up(period=JAN, finalize=True, now=FEB + INVOICE_GRACE - timedelta(minutes=1))

    # After the grace: finalized with a number, and the total of its lines.
    invoice_roll_up(finalize=True, now=FEB + INVOICE_GRACE)
    jan.refresh_from_db()
    assert jan.status == Invoice.Status.FINALIZED and jan.number and jan.finalized_at
    assert jan.total == Decimal(3)
    frozen = (jan.total, jan.number, jan.updated_at, sorted((line.id, line.amount) for line in jan.lines.all()))

    # A January request priced after January was finalized: late, on February's invoice.
    late = priced(JAN + timedelta(days=30), 4_000_000)
    priced(FEB + timedelta(days=10), 1_000_000)
    invoice_roll_up(finalize=True, now=FEB + timedelta(days=12))
    jan.refresh_from_db()
    assert (jan.total, jan.number, jan.updated_at, sorted((line.id, line.amount) for line in jan.lines.all())) == frozen
    feb = invoice_of(world.workspace, FEB)
    lines = lines_of(feb)
    assert lines[("one-dollar", True)].amount == Decimal(4) and lines[("one-dollar", True)].input_tokens == 4_000_000
    assert "late" in lines[("one-dollar", True)].description
    assert lines[("one-dollar", False)].amount == Decimal(1)
    assert feb.total == Decimal(5) and feb.status == Invoice.Status.DRAFT
    assert LedgerEntry.objects.get(usage_event=late).occurred_at < FEB  # the ledger keeps the true time

    # February is finalized in its turn; the late usage is counted once, never again in March.
    priced(MAR + timedelta(days=1), 2_000_000)
    invoice_roll_up(finalize=True, now=MAR + INVOICE_GRACE + timedelta(hours=1))
    feb.refresh_from_db()
    assert feb.status == Invoice.Status.FINALIZED and feb.total == Decimal(5) and feb.number != jan.number
    mar = invoice_of(world.workspace, MAR)
    assert mar.status == Invoice.Status.DRAFT and mar.total == Decimal(2)
    assert not mar.lines.filter(is_late=True).exists()
    # Every dollar of the ledger is on exactly one invoice.
    assert sum(i.total for i in Invoice.objects.filter(workspace=world.workspace)) == sum(
        LedgerEntry.objects.filter(workspace=world.workspace).values_list("amount", flat=True)
    )


def test_a_later_invoice_waits_while_an_earlier_draft_is_open(world, priced):
    priced(JAN + timedelta(days=1), 1_000_000)
    invoice_roll_up(period=JAN, now=JAN + timedelta(days=2))
    priced(FEB + timedelta(days=1), 1_000_000)
    # February alone, past its grace, while January is still a draft: February stays a draft.
    invoice_roll_up(period=FEB, finalize=True, now=MAR + INVOICE_GRACE)
    assert invoice_of(world.workspace, FEB).status == Invoice.Status.DRAFT
    # The default run finalizes the oldest draft first, then the next.
    invoice_roll_up(finalize=True, now=MAR + INVOICE_GRACE)
    assert invoice_of(world.workspace, JAN).status == Invoice.Status.FINALIZED
    assert invoice_of(world.workspace, FEB).status == Invoice.Status.FINALIZED


def test_late_usage_of_a_month_without_an_invoice_still_lands_on_an_invoice(world, priced):
    priced(JAN + timedelta(days=1), 1_000_000)
    invoice_roll_up(finalize=True, now=FEB + INVOICE_GRACE)  # January final; no February usage yet
    priced(MAR + timedelta(days=1), 1_000_000)
    invoice_roll_up(finalize=True, now=APR + INVOICE_GRACE)  # February never had an invoice
    priced(FEB + timedelta(days=3), 3_000_000)  # a February request priced in April
    invoice_roll_up(now=APR + INVOICE_GRACE)
    apr = invoice_of(world.workspace, APR)
    assert lines_of(apr)[("one-dollar", True)].amount == Decimal(3)
    assert not Invoice.objects.filter(period_start=FEB).exists()


# --- commands and tasks ---------------------------------------------------------------------------


def test_rollup_invoices_command_prints_the_invoices_touched(world, priced):
    priced(JAN + timedelta(days=1), 1_234_567)
    out = StringIO()
    call_command("rollup_invoices", "--period", "2026-01", "--finalize", stdout=out)
    [invoice] = json.loads(out.getvalue())["invoices"]
    assert invoice["status"] == "finalized" and invoice["number"].startswith("OMX-202601-")
    assert invoice["total"] == "1.23" and invoice["lines"] == 1 and invoice["currency"] == "USD"
    assert invoice["workspace"] == world.workspace.slug and invoice["period"] == "2026-01"
    # Running it again touches nothing: a finalized invoice is closed.
    again = StringIO()
    call_command("rollup_invoices", "--period", "2026-01", "--finalize", stdout=again)
    assert json.loads(again.getvalue()) == {"invoices": []}


def test_rollup_invoices_command_refuses_bad_periods(db):
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("rollup_invoices", "--period", "January")
    with pytest.raises(CommandError, match="has not started"):
        call_command("rollup_invoices", "--period", "2999-01")
    with pytest.raises(CommandError, match="cannot be finalized before"):
        call_command("rollup_invoices", "--period", f"{datetime.now(UTC):%Y-%m}", "--finalize")


def test_roll_up_invoices_task_keeps_drafts_current(world, catalog):
    from billing.tasks import roll_up_invoices

    make_event(world.workspace, at=datetime.now(UTC), input_tokens=1_000_000)
    usage_price_pending()
    assert roll_up_invoices.apply().get() >= 1
    invoice = Invoice.objects.get(workspace=world.workspace)
    assert invoice.status == Invoice.Status.DRAFT and invoice.total == Decimal("1.50")


# --- finalization racing pricing, on PostgreSQL -----------------------------------------------------


@needs_postgres
def test_finalizing_while_pricing_runs_puts_every_entry_on_exactly_one_invoice(transactional_db, world, monkeypatch):
    model = make_model("race")
    make_card(model, at=JAN - timedelta(days=1), input="1")
    for i in range(1_500):
        make_event(world.workspace, model_slug=model.slug, at=JAN + timedelta(minutes=i), input_tokens=1 + i % 7)
    usage_price(limit=100)  # January already has some priced usage
    # Widen the window between stamping a batch and committing it, where a finalization without
    # the ledger lock would miss entries stamped before its cut-off but committed after it.
    clock = services._ledger_clock

    def slow_clock(*, exclusive):
        stamped = clock(exclusive=exclusive)
        if not exclusive:
            time.sleep(0.02)
        return stamped

    monkeypatch.setattr(services, "_ledger_clock", slow_clock)
    barrier = threading.Barrier(2)
    errors = []

    def price():
        try:
            barrier.wait(timeout=10)
            usage_price_pending(batch_size=25)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def finalize():
        try:
            barrier.wait(timeout=10)
            time.sleep(0.05)
            invoice_roll_up(period=JAN, finalize=True, now=FEB + INVOICE_GRACE)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=price), threading.Thread(target=finalize)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    invoice_roll_up(period=FEB, now=FEB + INVOICE_GRACE)
    jan, feb = invoice_of(world.workspace, JAN), invoice_of(world.workspace, FEB)
    on_jan = sum(line.input_tokens for line in jan.lines.all())
    late_on_feb = sum(line.input_tokens for line in feb.lines.filter(is_late=True))
    assert on_jan > 0 and late_on_feb > 0  # the finalization really landed in the middle of pricing
    assert on_jan + late_on_feb == sum(LedgerEntry.objects.values_list("input_tokens", flat=True))
