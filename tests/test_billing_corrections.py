"""Corrections: void a finalized invoice with a reason, credit a workspace with a new ledger entry.
Nothing is edited in place: a finalized invoice never changes, and a void re-opens nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from billing.models import Invoice, LedgerEntry
from billing.services import (
    INVOICE_GRACE,
    BillingError,
    credit_issue,
    invoice_roll_up,
    invoice_void,
    month_start,
    usage_price,
)
from tests.test_billing_pricing import make_card, make_event, make_model

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


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


@pytest.fixture
def finalized_jan(world, priced) -> Invoice:
    priced(JAN + timedelta(days=3), 2_000_000)
    priced(JAN + timedelta(days=9), 1_000_000)
    invoice_roll_up(finalize=True, now=FEB + INVOICE_GRACE)
    invoice = Invoice.objects.get(workspace=world.workspace, period_start=JAN)
    assert invoice.status == Invoice.Status.FINALIZED and invoice.total == Decimal(3)
    return invoice


def frozen(invoice: Invoice) -> tuple:
    invoice.refresh_from_db()
    return invoice.total, invoice.number, invoice.finalized_at, sorted(invoice.lines.values_list("id", "amount"))


# --- void -----------------------------------------------------------------------------------------


def test_void_cancels_a_finalized_invoice_keeping_its_number_lines_and_reason(world, finalized_jan):
    before = frozen(finalized_jan)
    voided = invoice_void(invoice=finalized_jan, reason="  Test workspace, not a customer  ", by=world.owner)
    voided.refresh_from_db()
    assert voided.status == Invoice.Status.VOID
    assert voided.void_reason == "Test workspace, not a customer" and voided.voided_by == world.owner
    assert voided.voided_at is not None
    assert frozen(voided) == before  # number, total, finalization and lines kept for the record


def test_void_re_opens_nothing_and_bills_nothing_twice(world, finalized_jan, priced):
    invoice_void(invoice=finalized_jan, reason="issued in error", by=world.owner)
    before = frozen(finalized_jan)
    # Later roll-ups never rebuild a void invoice, and its usage is not moved to the next invoice.
    priced(FEB + timedelta(days=2), 500_000)
    late = priced(JAN + timedelta(days=20), 4_000_000)  # priced after January was finalized (and voided)
    invoice_roll_up(finalize=True, now=FEB + timedelta(days=10))
    assert frozen(finalized_jan) == before
    feb = Invoice.objects.get(workspace=world.workspace, period_start=FEB)
    lines = {(line.model_slug, line.is_late): line.amount for line in feb.lines.all()}
    # February: its own usage, and only the January usage priced after the cut-off (late), once.
    assert lines == {("one-dollar", False): Decimal("0.50"), ("one-dollar", True): Decimal(4)}
    assert LedgerEntry.objects.get(usage_event=late).occurred_at < FEB


def test_only_a_finalized_invoice_can_be_voided_and_only_once(world, priced, finalized_jan):
    priced(FEB + timedelta(days=1), 1_000_000)
    invoice_roll_up(period=FEB, now=FEB + timedelta(days=2))
    draft = Invoice.objects.get(workspace=world.workspace, period_start=FEB)
    with pytest.raises(BillingError, match=r"only a finalized invoice can be voided; this one is draft"):
        invoice_void(invoice=draft, reason="no", by=world.owner)
    invoice_void(invoice=finalized_jan, reason="first", by=world.owner)
    with pytest.raises(BillingError, match=r"only a finalized invoice can be voided; this one is void"):
        invoice_void(invoice=finalized_jan, reason="second", by=world.owner)
    finalized_jan.refresh_from_db()
    assert finalized_jan.void_reason == "first"
    draft.refresh_from_db()
    assert draft.status == Invoice.Status.DRAFT


@pytest.mark.parametrize("reason", ["", "   ", "x" * 301])
def test_void_needs_a_reason(world, finalized_jan, reason):
    with pytest.raises(BillingError, match="reason"):
        invoice_void(invoice=finalized_jan, reason=reason, by=world.owner)
    finalized_jan.refresh_from_db()
    assert finalized_jan.status == Invoice.Status.FINALIZED


def test_database_refuses_a_void_without_reason_or_time(world, finalized_jan):
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=finalized_jan.pk).update(status=Invoice.Status.VOID)


# --- credit ---------------------------------------------------------------------------------------


def test_credit_is_a_negative_adjustment_line_on_the_current_draft(world, priced):
    now = datetime.now(UTC)
    priced(now - timedelta(seconds=5), 10_000_000)
    entry = credit_issue(workspace=world.workspace, amount="2.50", reason="Outage on the 12th", by=world.owner)
    assert (entry.kind, entry.amount, entry.currency) == (LedgerEntry.Kind.ADJUSTMENT, Decimal("-2.50"), "USD")
    assert entry.memo == "Outage on the 12th" and entry.created_by == world.owner and entry.usage_event is None
    assert month_start(entry.occurred_at) == month_start(now)
    invoice_roll_up()
    invoice = Invoice.objects.get(workspace=world.workspace, period_start=month_start(now))
    lines = {line.description: line for line in invoice.lines.all()}
    assert lines["Adjustment: Outage on the 12th"].amount == Decimal("-2.50")
    assert (
        lines["Adjustment: Outage on the 12th"].model_slug == "" and not lines["Adjustment: Outage on the 12th"].is_late
    )
    assert lines["one-dollar"].amount == Decimal(10)
    assert invoice.total == Decimal("7.50") and invoice.status == Invoice.Status.DRAFT
    # Only the credited workspace sees it.
    assert not Invoice.objects.filter(workspace=world.other_workspace).exists()


def test_two_credits_with_different_reasons_are_two_lines(world):
    credit_issue(workspace=world.workspace, amount=Decimal("1.00"), reason="goodwill", by=world.owner)
    credit_issue(workspace=world.workspace, amount=Decimal("0.25"), reason="rounding", by=world.owner)
    credit_issue(workspace=world.workspace, amount=Decimal("0.75"), reason="goodwill", by=world.owner)
    invoice_roll_up()
    invoice = Invoice.objects.get(workspace=world.workspace)
    assert {line.description: line.amount for line in invoice.lines.all()} == {
        "Adjustment: goodwill": Decimal("-1.75"),
        "Adjustment: rounding": Decimal("-0.25"),
    }
    assert invoice.total == Decimal("-2.00")  # more credit than usage: the invoice says so, nothing is lost


def test_credit_never_changes_a_finalized_invoice(world, finalized_jan):
    before = frozen(finalized_jan)
    credit_issue(workspace=world.workspace, amount="1.00", reason="January was slow", by=world.owner)
    invoice_roll_up(finalize=True)
    assert frozen(finalized_jan) == before
    current = Invoice.objects.get(workspace=world.workspace, period_start=month_start(datetime.now(UTC)))
    assert current.total == Decimal("-1.00") and current.status == Invoice.Status.DRAFT


@pytest.mark.parametrize(
    ("amount", "currency", "reason", "message"),
    [
        ("0", None, "r", "positive"),
        ("-5", None, "r", "positive"),
        ("0.001", None, "r", "whole cents"),
        ("abc", None, "r", "decimal number"),
        ("NaN", None, "r", "positive"),
        ("1e40", None, "r", "less than"),
        ("1.00", "US", "r", "3-letter"),
        ("1.00", None, " ", "reason"),
    ],
)
def test_credit_refuses_bad_input_and_writes_nothing(world, amount, currency, reason, message):
    with pytest.raises(BillingError, match=message):
        credit_issue(workspace=world.workspace, amount=amount, currency=currency, reason=reason, by=world.owner)
    assert not LedgerEntry.objects.exists()


def test_credit_in_another_currency_goes_on_that_currencys_invoice(world, priced):
    priced(datetime.now(UTC) - timedelta(seconds=5), 1_000_000)
    credit_issue(workspace=world.workspace, amount="3.00", currency="eur", reason="EUR goodwill", by=world.owner)
    invoice_roll_up()
    totals = dict(Invoice.objects.filter(workspace=world.workspace).values_list("currency", "total"))
    assert totals == {"USD": Decimal(1), "EUR": Decimal("-3.00")}


# --- the admin actions ----------------------------------------------------------------------------


@pytest.fixture
def operator(db):
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("finance", "finance@example.com", None))
    return client


CHANGELIST = "admin:billing_invoice_changelist"


def test_admin_void_asks_for_a_reason_then_voids(operator, finalized_jan):
    url = reverse(CHANGELIST)
    ask = operator.post(url, {"action": "void_selected", "_selected_action": [finalized_jan.pk]})
    assert ask.status_code == 200 and b'name="reason"' in ask.content and finalized_jan.number.encode() in ask.content
    finalized_jan.refresh_from_db()
    assert finalized_jan.status == Invoice.Status.FINALIZED  # nothing until the reason is given
    empty = operator.post(url, {"action": "void_selected", "_selected_action": [finalized_jan.pk], "apply": "Void"})
    assert b"This field is required" in empty.content
    done = operator.post(
        url,
        {"action": "void_selected", "_selected_action": [finalized_jan.pk], "apply": "Void", "reason": "duplicate"},
        follow=True,
    )
    assert b"1 invoice voided." in done.content
    finalized_jan.refresh_from_db()
    assert (finalized_jan.status, finalized_jan.void_reason, finalized_jan.voided_by.username) == (
        Invoice.Status.VOID,
        "duplicate",
        "finance",
    )


def test_admin_void_of_a_draft_says_why_not(operator, world, priced):
    priced(datetime.now(UTC) - timedelta(seconds=5), 1_000_000)
    invoice_roll_up()
    draft = Invoice.objects.get(workspace=world.workspace)
    done = operator.post(
        reverse(CHANGELIST),
        {"action": "void_selected", "_selected_action": [draft.pk], "apply": "Void", "reason": "oops"},
        follow=True,
    )
    assert b"Only a finalized invoice can be voided; this one is draft" in done.content
    draft.refresh_from_db()
    assert draft.status == Invoice.Status.DRAFT


def test_admin_credit_issues_a_ledger_entry_for_the_invoices_workspace(operator, world, finalized_jan):
    url = reverse(CHANGELIST)
    ask = operator.post(url, {"action": "credit_workspace", "_selected_action": [finalized_jan.pk]})
    assert b'name="amount"' in ask.content and b'name="reason"' in ask.content
    bad = operator.post(
        url,
        {
            "action": "credit_workspace",
            "_selected_action": [finalized_jan.pk],
            "apply": "1",
            "amount": "0.001",
            "reason": "x",
        },
    )
    assert bad.status_code == 200 and not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADJUSTMENT).exists()
    done = operator.post(
        url,
        {
            "action": "credit_workspace",
            "_selected_action": [finalized_jan.pk],
            "apply": "1",
            "amount": "12.34",
            "reason": "SLA credit",
        },
        follow=True,
    )
    assert b"Credit of 12.34 USD issued" in done.content
    entry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.ADJUSTMENT)
    assert (entry.workspace, entry.amount, entry.memo, entry.created_by.username) == (
        world.workspace,
        Decimal("-12.34"),
        "SLA credit",
        "finance",
    )
    assert frozen(finalized_jan)[0] == Decimal(3)


def test_admin_actions_need_the_permissions(world, finalized_jan):
    user = get_user_model().objects.create_user("viewer", "viewer@example.com", is_staff=True)
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename="view_invoice"))
    client = Client()
    client.force_login(user)
    page = client.get(reverse(CHANGELIST))
    assert page.status_code == 200 and b"void_selected" not in page.content and b"credit_workspace" not in page.content
    client.post(
        reverse(CHANGELIST),
        {"action": "void_selected", "_selected_action": [finalized_jan.pk], "apply": "Void", "reason": "x"},
    )
    finalized_jan.refresh_from_db()
    assert finalized_jan.status == Invoice.Status.FINALIZED


# --- who did it -----------------------------------------------------------------------------------


def test_void_and_credit_write_audit_rows_in_their_transaction(world, finalized_jan):
    from audit.models import AuditLog

    invoice_void(invoice=finalized_jan, reason="duplicate", by=world.owner)
    entry = credit_issue(workspace=world.workspace, amount="4.20", reason="goodwill", by=world.owner)
    corrections = AuditLog.objects.filter(action__in=["invoice.void", "credit.issue"])
    void_row, credit_row = corrections.order_by("id")
    assert (void_row.action, void_row.actor_user, void_row.workspace, void_row.target_id) == (
        "invoice.void",
        world.owner,
        world.workspace,
        str(finalized_jan.pk),
    )
    assert void_row.old == {"status": "finalized"}
    assert void_row.new == {"status": "void", "void_reason": "duplicate", "number": finalized_jan.number}
    assert (credit_row.action, credit_row.actor_user, credit_row.workspace) == (
        "credit.issue",
        world.owner,
        world.workspace,
    )
    assert credit_row.target_id == str(entry.pk)
    assert credit_row.new == {"amount": "-4.20", "currency": "USD", "reason": "goodwill"}
    # A refused correction leaves no row.
    with pytest.raises(BillingError):
        credit_issue(workspace=world.workspace, amount="0", reason="nothing", by=world.owner)
    assert corrections.count() == 2


# --- the commands ---------------------------------------------------------------------------------


def test_void_invoice_command_prints_the_void_invoice(finalized_jan):
    out = StringIO()
    call_command("void_invoice", "--number", finalized_jan.number, "--reason", "test account", stdout=out)
    printed = json.loads(out.getvalue())
    assert printed["status"] == "void" and printed["number"] == finalized_jan.number
    assert (printed["void_reason"], printed["total"], printed["period"]) == ("test account", "3.00", "2026-01")
    finalized_jan.refresh_from_db()
    assert finalized_jan.status == Invoice.Status.VOID and finalized_jan.voided_by is None
    with pytest.raises(CommandError, match="only a finalized invoice can be voided; this one is void"):
        call_command("void_invoice", "--number", finalized_jan.number, "--reason", "again")
    with pytest.raises(CommandError, match="no invoice numbered 'OMX-000000-000000'"):
        call_command("void_invoice", "--number", "OMX-000000-000000", "--reason", "x")


def test_issue_credit_command_writes_one_adjustment(world):
    out = StringIO()
    call_command(
        "issue_credit", "--workspace", world.workspace.slug, "--amount", "7.50", "--reason", "outage", stdout=out
    )
    printed = json.loads(out.getvalue())
    entry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.ADJUSTMENT)
    assert printed == {
        "id": entry.id,
        "workspace": world.workspace.slug,
        "amount": "-7.50",
        "currency": "USD",
        "reason": "outage",
        "period": f"{datetime.now(UTC):%Y-%m}",
    }
    with pytest.raises(CommandError, match="whole cents"):
        call_command("issue_credit", "--workspace", world.workspace.slug, "--amount", "0.005", "--reason", "x")
    with pytest.raises(CommandError, match="no workspace 'nope'"):
        call_command("issue_credit", "--workspace", "nope", "--amount", "1", "--reason", "x")
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADJUSTMENT).count() == 1
