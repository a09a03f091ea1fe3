"""Invoices through the management API: list with filters, detail with lines (late ones marked), CSV,
money as decimal strings, and another workspace's invoices out of reach (404)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import Invoice, InvoiceLine
from billing.services import invoice_roll_up, usage_price
from tests.api_fixtures import NOV, call_as, money, team, usage_event  # noqa: F401

pytestmark = pytest.mark.django_db
SEP = datetime(2026, 9, 1, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def invoices(team, catalog):
    """November's draft rolled up from real priced usage; September finalized with a late line."""
    events = [
        usage_event(team.workspace, at=NOV + timedelta(days=d), key=team.keys["inference"], input_tokens=n)
        for d, n in ((1, 1_000_000), (2, 333_333))
    ]
    events.append(
        usage_event(team.workspace, at=NOV + timedelta(days=3), model_slug="gpt-4.1-mini", output_tokens=250_000)
    )
    theirs = usage_event(team.other, at=NOV + timedelta(days=1), input_tokens=5)
    usage_price(request_ids=[e.request_id for e in [*events, theirs]])
    drafts = {i.workspace_id: i for i in invoice_roll_up(period=NOV, now=NOV + timedelta(days=10))}
    september = Invoice.objects.create(
        workspace=team.workspace,
        period_start=SEP,
        period_end=OCT,
        status=Invoice.Status.FINALIZED,
        number="OMX-2026-09-0001",
        total=Decimal("3.10"),
        finalized_at=OCT + timedelta(days=3),
    )
    InvoiceLine.objects.create(
        invoice=september, model_slug="codex-mini", description="codex-mini", input_tokens=2_000_000, amount="3.00"
    )
    InvoiceLine.objects.create(
        invoice=september,
        model_slug="codex-mini",
        description="codex-mini (late usage from August)",
        is_late=True,
        output_tokens=16_667,
        amount="0.10",
    )
    return {"draft": drafts[team.workspace.pk], "theirs": drafts[team.other.pk], "september": september}


def test_invoices_are_listed_latest_first_and_filtered(team, invoices):
    listed = call_as(team, "finance", "GET", team.url("invoices/")).json()["results"]
    assert [(i["status"], i["period_start"]) for i in listed] == [
        ("draft", "2026-11-01T00:00:00Z"),
        ("finalized", "2026-09-01T00:00:00Z"),
    ]
    assert listed[1]["total"] == "3.10" and listed[1]["number"] == "OMX-2026-09-0001"
    finalized = call_as(team, "finance", "GET", team.url("invoices/?status=finalized")).json()["results"]
    assert [i["number"] for i in finalized] == ["OMX-2026-09-0001"]
    november = call_as(team, "finance", "GET", team.url("invoices/?period=2026-11")).json()["results"]
    assert [i["id"] for i in november] == [invoices["draft"].pk]
    for period in ("2026-13", "0000-01"):  # year 0 matches the pattern but is no month (schemathesis found it)
        bad = call_as(team, "finance", "GET", team.url(f"invoices/?period={period}"))
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "period"


def test_invoice_detail_has_its_lines_with_amounts_as_strings(team, invoices):
    draft = invoices["draft"]
    body = call_as(team, "finance", "GET", team.url(f"invoices/{draft.pk}/")).json()
    lines = {line["model"]: line for line in body["lines"]}
    # codex-mini: 1,333,333 input tokens at $1.50 per 1M = 1.9999995 → 2.00 (half up, per line).
    assert lines["codex-mini"]["amount"] == "2.00" and lines["codex-mini"]["input_tokens"] == 1_333_333
    assert all(isinstance(line["amount"], str) for line in body["lines"])
    assert money(body["total"]) == sum(money(line["amount"]) for line in body["lines"])
    september = call_as(team, "owner", "GET", team.url(f"invoices/{invoices['september'].pk}/")).json()
    assert [(line["is_late"], line["amount"]) for line in september["lines"]] == [(False, "3.00"), (True, "0.10")]


def test_invoice_csv_has_one_row_per_line_and_a_total(team, invoices):
    answer = call_as(team, "finance", "GET", team.url(f"invoices/{invoices['september'].pk}/csv/"))
    assert answer.status_code == 200 and answer["Content-Type"] == "text/csv; charset=utf-8"
    assert answer["Content-Disposition"] == 'attachment; filename="invoice-OMX-2026-09-0001.csv"'
    rows = list(csv.DictReader(io.StringIO(answer.content.decode())))
    assert [(r["description"], r["late"], r["amount"]) for r in rows] == [
        ("codex-mini", "no", "3.00"),
        ("codex-mini (late usage from August)", "yes", "0.10"),
        ("Total", "", "3.10"),
    ]
    assert rows[-1]["input_tokens"] == "2000000" and rows[-1]["output_tokens"] == "16667"
    assert {r["invoice"] for r in rows} == {"OMX-2026-09-0001"} and {r["status"] for r in rows} == {"finalized"}
    draft_csv = call_as(team, "finance", "GET", team.url(f"invoices/{invoices['draft'].pk}/csv/"))
    assert 'filename="invoice-draft-acme-2026-11.csv"' in draft_csv["Content-Disposition"]
    total = list(csv.reader(io.StringIO(draft_csv.content.decode())))[-1]
    assert Decimal(total[10]) == invoices["draft"].total


def test_another_workspaces_invoice_is_404_in_every_form(team, invoices):
    theirs = invoices["theirs"].pk
    for rest in (f"invoices/{theirs}/", f"invoices/{theirs}/csv/"):
        answer = call_as(team, "finance", "GET", team.url(rest))
        assert answer.status_code == 404 and answer["Content-Type"] == "application/json"
    listed = call_as(team, "finance", "GET", team.url("invoices/")).json()["results"]
    assert theirs not in {i["id"] for i in listed}
