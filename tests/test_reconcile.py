"""`reconcile --period YYYY-MM`: the ledger re-added and compared with the invoices (lines, totals,
late lines, credits, void invoices); JSON out, exit 0 clean, 1 on a mismatch, 2 on an error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from billing.models import Invoice, InvoiceLine, UsageEvent
from billing.services import INVOICE_GRACE, credit_issue, invoice_roll_up, invoice_void, usage_price
from tests.conftest import REPO_ROOT
from tests.test_billing_pricing import make_card, make_event, make_model
from tests.test_billing_tasks import _database_url

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


def reconcile(period: str) -> tuple[int, dict]:
    out = StringIO()
    try:
        call_command("reconcile", "--period", period, stdout=out)
    except CommandError as exc:
        return exc.returncode, json.loads(out.getvalue()) if out.getvalue() else {}
    return 0, json.loads(out.getvalue())


@pytest.fixture
def history(world):
    """January (finalized, with a late event on February), February (draft, with a credit)."""
    model = make_model("one-dollar")
    make_card(model, at=JAN - timedelta(days=60), input="1", output="3")
    other = make_model("other")
    make_card(other, at=JAN - timedelta(days=60), input="0.37", cached="0.1")

    def use(at, workspace=None, slug="one-dollar", **tokens):
        event = make_event(workspace or world.workspace, model_slug=slug, at=at, **tokens)
        usage_price(request_ids=[event.request_id])

    use(JAN + timedelta(days=2), input_tokens=1_234_567, output_tokens=10_001)
    use(JAN + timedelta(days=3), slug="other", input_tokens=333, cached_input_tokens=77)
    use(JAN + timedelta(days=4), workspace=world.other_workspace, input_tokens=5_000_000)
    make_event(world.workspace, model_slug="no-such-model", at=JAN + timedelta(days=5), input_tokens=9)
    usage_price()  # flagged unpriced
    invoice_roll_up(finalize=True, now=FEB + INVOICE_GRACE)
    use(JAN + timedelta(days=30), input_tokens=2_000_000)  # late: January is final
    use(FEB + timedelta(days=1), input_tokens=999)
    invoice_roll_up(period=FEB, now=FEB + timedelta(days=5))
    return world


def test_clean_months_exit_zero_with_counts(history):
    code, jan = reconcile("2026-01")
    assert code == 0 and jan["mismatches"] == []
    assert jan["period"] == "2026-01" and jan["invoices"]["finalized"] == 2
    assert jan["unpriced_events"] == 1 and jan["pending_events"] == 0
    assert jan["carried_forward"] == {"USD": "2"}  # the late event, billed in February
    assert jan["ledger"]["USD"]["entries"] == 4
    code, feb = reconcile("2026-02")
    assert code == 0 and feb["mismatches"] == [] and feb["invoices"]["draft"] == 1


def test_credits_and_void_invoices_reconcile(history):
    credit_issue(workspace=history.workspace, amount="5.00", reason="goodwill", by=history.owner)
    invoice_roll_up()
    now = datetime.now(UTC)
    code, report = reconcile(f"{now:%Y-%m}")
    assert code == 0 and report["mismatches"] == [] and report["ledger"]["USD"]["amount"] == "-5"
    invoice_void(invoice=Invoice.objects.get(workspace=history.workspace, period_start=JAN), reason="dup", by=None)
    code, report = reconcile("2026-01")
    assert code == 0 and report["invoices"]["void"] == 1


def test_a_tampered_line_amount_exits_one_with_the_difference(history):
    line = InvoiceLine.objects.get(invoice__workspace=history.workspace, invoice__period_start=JAN, model_slug="other")
    InvoiceLine.objects.filter(pk=line.pk).update(amount=line.amount + Decimal("0.07"))
    code, report = reconcile("2026-01")
    assert code == 1
    by_kind = {m["kind"]: m for m in report["mismatches"]}
    assert by_kind["line"]["model"] == "other" and by_kind["line"]["workspace"] == history.workspace.slug
    assert by_kind["line"]["differences"] == {
        "amount": {"expected": str(line.amount), "actual": str(line.amount + Decimal("0.07")), "difference": "0.07"}
    }
    # The stored total no longer is the sum of its lines either.
    assert by_kind["total"]["sum_of_lines"] != by_kind["total"]["actual"]
    assert by_kind["total"]["expected"] == by_kind["total"]["actual"]
    assert len(report["mismatches"]) == 2  # the other workspace's invoice is untouched


def test_tampered_tokens_missing_and_extra_lines_and_totals_are_named(history):
    feb = Invoice.objects.get(workspace=history.workspace, period_start=FEB)
    late = feb.lines.get(is_late=True)
    InvoiceLine.objects.filter(pk=late.pk).update(input_tokens=late.input_tokens - 1)
    feb.lines.filter(is_late=False).delete()
    InvoiceLine.objects.create(invoice=feb, model_slug="ghost", description="ghost", amount=Decimal("1.00"))
    Invoice.objects.filter(pk=feb.pk).update(total=Decimal("123.45"))
    code, report = reconcile("2026-02")
    assert code == 1
    kinds = sorted(m["kind"] for m in report["mismatches"])
    assert kinds == ["extra_line", "line", "missing_line", "total"]
    line = next(m for m in report["mismatches"] if m["kind"] == "line")
    assert line["late"] is True and line["differences"]["input_tokens"]["difference"] == -1
    total = next(m for m in report["mismatches"] if m["kind"] == "total")
    assert total["expected"] == "2.00" and total["actual"] == "123.45"


def test_usage_on_no_invoice_and_priced_events_without_entry_are_mismatches(world):
    model = make_model("m")
    make_card(model, at=JAN - timedelta(days=1), input="1")
    event = make_event(world.workspace, model_slug=model.slug, at=JAN + timedelta(days=1), input_tokens=1_000_000)
    usage_price()  # priced, but never rolled up
    ghost = make_event(world.workspace, model_slug=model.slug, at=JAN + timedelta(days=2), input_tokens=5)
    UsageEvent.objects.filter(pk=ghost.pk).update(pricing_state=UsageEvent.PricingState.PRICED)
    code, report = reconcile("2026-01")
    assert code == 1
    assert {"kind": "priced_without_entry", "events": 1} in report["mismatches"]
    not_invoiced = next(m for m in report["mismatches"] if m["kind"] == "not_invoiced")
    assert not_invoiced == {
        "kind": "not_invoiced",
        "workspace": world.workspace.slug,
        "currency": "USD",
        "entries": 1,
        "amount": "1",
    }
    assert event.pk


def test_an_empty_month_is_clean(db):
    assert reconcile("2025-06") == (
        0,
        {
            "period": "2025-06",
            "mismatches": [],
            "invoices": {"draft": 0, "finalized": 0, "void": 0},
            "ledger": {},
            "carried_forward": {},
            "unpriced_events": 0,
            "pending_events": 0,
        },
    )


@pytest.mark.parametrize("period", ["2026-13", "January", "2026-1", "", "2999-01"])
def test_bad_period_exits_two(db, period):
    assert reconcile(period)[0] == 2


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **(env or {})}
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        base.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", "reconcile", *args], cwd=REPO_ROOT, env=base, capture_output=True, text=True
    )


def test_exit_statuses_of_the_real_command(transactional_db, history):
    env = {"DATABASE_URL": _database_url()}
    clean = _run("--period", "2026-01", env=env)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["mismatches"] == []
    InvoiceLine.objects.filter(invoice__period_start=JAN).update(amount=Decimal("0.01"))
    dirty = _run("--period", "2026-01", env=env)
    assert dirty.returncode == 1 and "mismatches in 2026-01" in dirty.stderr
    assert json.loads(dirty.stdout)["mismatches"]
    bad = _run("--period", "2026-13", env=env)
    assert bad.returncode == 2 and bad.stdout == "" and "YYYY-MM" in bad.stderr
    down = _run("--period", "2026-01", env={"DATABASE_URL": "postgres://nobody@127.0.0.1:9/nowhere?connect_timeout=2"})
    assert down.returncode == 2 and down.stdout == "" and "reconcile failed" in down.stderr
    assert "Traceback" not in down.stderr
