"""Reconciliation: re-add the ledger of one month and compare it with that month's invoices.

`reconcile_period` re-adds, per workspace, currency and line (model, or an adjustment's reason;
regular or late), the ledger entries that belong on each invoice of the period, rounds each sum the
one way invoices do, and compares tokens, amounts and totals with what the invoices hold. What
belongs on an invoice of period P:

- regular: the entries that occurred in P, minus those written after P's invoice was finalized
  (those are late usage and belong on a later invoice: reported as `carried_forward`, not a
  mismatch);
- late: entries of earlier months written after their own invoice was finalized, by the roll-up's
  rule (`services._late_entries`), minus those written after P's own finalization.

A void invoice is compared too: voiding keeps its lines. Every query is a GROUP BY; late candidates
come from the partial index of entries written after their month ended. Reconciling the open month
compares with drafts as of their last roll-up (every 15 minutes), so usage priced since shows up as
a difference: reconcile a period after it is finalized, or right after `rollup_invoices`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Sum

from billing.models import Invoice, InvoiceLine, LedgerEntry, UsageEvent
from billing.pricing import format_cost
from billing.services import CENT, _late_entries, line_description, month_after, month_start, round_line
from workspaces.models import Workspace

_TOKEN_FIELDS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")
_SUMS = {"amount": Sum("amount"), "entries": Count("id"), **{name: Sum(name) for name in _TOKEN_FIELDS}}

Key = tuple[int, str, str, str, bool]  # workspace id, currency, model slug, description, late


def _cents(value: Decimal) -> str:
    return format(value.quantize(CENT), "f")


def _exact(value: Decimal) -> str:
    return format_cost(value)  # full precision, no trailing zeros, whatever scale the database returned


def _grouped(entries) -> list[dict[str, Any]]:
    return list(entries.values("workspace_id", "currency", "model_slug", "memo").annotate(**_SUMS).order_by())


def _add(into: dict[Key, dict[str, Any]], rows: list[dict[str, Any]], *, late: bool, sign: int = 1) -> None:
    for row in rows:
        description = line_description(model_slug=row["model_slug"], memo=row["memo"], late=late)
        key = (row["workspace_id"], row["currency"], row["model_slug"], description, late)
        sums = into.setdefault(key, {"amount": Decimal(0), "entries": 0, **dict.fromkeys(_TOKEN_FIELDS, 0)})
        sums["amount"] += sign * (row["amount"] or Decimal(0))
        sums["entries"] += sign * row["entries"]
        for name in _TOKEN_FIELDS:
            sums[name] += sign * (row[name] or 0)


def reconcile_period(period: datetime) -> dict[str, Any]:
    """Compare the ledger of `period`'s month (UTC) with its invoices; returns the report as plain data."""
    start = month_start(period)
    end = month_after(start)
    invoices = {(i.workspace_id, i.currency): i for i in Invoice.objects.filter(period_start=start)}
    own_invoice = Invoice.objects.filter(
        workspace=OuterRef("workspace"), currency=OuterRef("currency"), period_start=start
    ).order_by()
    of_period = LedgerEntry.objects.filter(occurred_at__gte=start, occurred_at__lt=end)

    expected: dict[Key, dict[str, Any]] = {}
    _add(expected, _grouped(of_period), late=False)
    # Written after this period's invoice was finalized: late usage, on a later invoice.
    carried = of_period.filter(  # a join with the period's invoices (one per pair), not a subquery per row
        posted_after_period=True,
        workspace__invoices__period_start=start,
        workspace__invoices__currency=F("currency"),
        workspace__invoices__finalized_at__lte=F("created_at"),
    )
    carried_rows = _grouped(carried)
    _add(expected, carried_rows, late=False, sign=-1)
    late = (
        _late_entries(start)
        .annotate(cutoff=Subquery(own_invoice.values("finalized_at")[:1]))
        .filter(Q(cutoff__isnull=True) | Q(created_at__lt=F("cutoff")))
    )
    _add(expected, _grouped(late), late=True)

    actual: dict[Key, dict[str, Any]] = {}
    lines = InvoiceLine.objects.filter(invoice__period_start=start).values(
        "invoice__workspace_id", "currency", "model_slug", "description", "is_late", "amount", *_TOKEN_FIELDS
    )
    for line in lines:
        key = (
            line["invoice__workspace_id"],
            line["currency"],
            line["model_slug"],
            line["description"],
            line["is_late"],
        )
        if key in actual:  # two lines for one key: the roll-up never writes that
            actual[key]["duplicate"] = True
            for name in ("amount", *_TOKEN_FIELDS):
                actual[key][name] += line[name]
        else:
            actual[key] = {name: line[name] for name in ("amount", *_TOKEN_FIELDS)}

    later = set(
        Invoice.objects.filter(period_start__gt=start).order_by().values_list("workspace_id", "currency").distinct()
    )
    slugs = dict(Workspace.objects.filter(id__in={key[0] for key in (*expected, *actual)}).values_list("id", "slug"))
    mismatches: list[dict[str, Any]] = []
    uninvoiced: dict[tuple[int, str], dict[str, Any]] = defaultdict(lambda: {"entries": 0, "amount": Decimal(0)})
    expected_totals: dict[tuple[int, str], Decimal] = defaultdict(Decimal)

    for key in sorted(set(expected) | set(actual), key=lambda k: (k[0], k[1], k[2], k[3], k[4])):
        workspace_id, currency, slug, description, is_late = key
        want, have = expected.get(key), actual.get(key)
        if want is not None and want["entries"] == 0 and have is None:
            continue  # everything of this group was carried forward
        invoice = invoices.get((workspace_id, currency))
        if invoice is None and have is None:
            uninvoiced[(workspace_id, currency)]["entries"] += want["entries"]
            uninvoiced[(workspace_id, currency)]["amount"] += want["amount"]
            continue
        line_amount = round_line(want["amount"]) if want is not None else None
        if want is not None:
            expected_totals[(workspace_id, currency)] += line_amount
        base = {
            "workspace": slugs.get(workspace_id, workspace_id),
            "currency": currency,
            "invoice": (invoice.number or f"draft #{invoice.id}") if invoice else None,
            "model": slug,
            "description": description,
            "late": is_late,
        }
        if have is None:
            mismatches.append({**base, "kind": "missing_line", "expected": _cents(line_amount), "actual": None})
            continue
        if want is None:
            mismatches.append({**base, "kind": "extra_line", "expected": None, "actual": _cents(have["amount"])})
            continue
        differences = {}
        if have["amount"] != line_amount:
            differences["amount"] = {
                "expected": _cents(line_amount),
                "actual": _cents(have["amount"]),
                "difference": _cents(have["amount"] - line_amount),
            }
        for name in _TOKEN_FIELDS:
            if have[name] != want[name]:
                differences[name] = {
                    "expected": want[name],
                    "actual": have[name],
                    "difference": have[name] - want[name],
                }
        if have.get("duplicate"):
            differences["lines"] = {"expected": 1, "actual": "more than 1"}
        if differences:
            mismatches.append({**base, "kind": "line", "differences": differences})

    for (workspace_id, currency), sums in sorted(uninvoiced.items()):
        if (workspace_id, currency) in later:
            continue  # late usage of a month without an invoice: on the next one (reconciled with its period)
        mismatches.append(
            {
                "kind": "not_invoiced",
                "workspace": slugs.get(workspace_id, workspace_id),
                "currency": currency,
                "entries": sums["entries"],
                "amount": _exact(sums["amount"]),
            }
        )

    line_sums = InvoiceLine.objects.filter(invoice__period_start=start).values("invoice_id").annotate(s=Sum("amount"))
    line_sums = {row["invoice_id"]: row["s"] for row in line_sums}
    for (workspace_id, currency), invoice in sorted(invoices.items()):
        of_lines = line_sums.get(invoice.id, Decimal(0))
        want = expected_totals.get((workspace_id, currency), Decimal(0))
        if invoice.total != of_lines or invoice.total != want:
            mismatches.append(
                {
                    "kind": "total",
                    "workspace": slugs.get(workspace_id, workspace_id),
                    "currency": currency,
                    "invoice": invoice.number or f"draft #{invoice.id}",
                    "expected": _cents(want),
                    "actual": _cents(invoice.total),
                    "sum_of_lines": _cents(of_lines),
                    "difference": _cents(invoice.total - want),
                }
            )

    events = UsageEvent.objects.filter(created_at__gte=start, created_at__lt=end)
    states = dict(
        events.filter(pricing_state__in=[UsageEvent.PricingState.UNPRICED, UsageEvent.PricingState.PENDING])
        .values("pricing_state")
        .annotate(n=Count("id"))
        .values_list("pricing_state", "n")
    )
    priced_without_entry = (
        events.filter(pricing_state=UsageEvent.PricingState.PRICED)
        .exclude(Exists(LedgerEntry.objects.filter(usage_event=OuterRef("pk"))))
        .count()
    )
    if priced_without_entry:
        mismatches.append({"kind": "priced_without_entry", "events": priced_without_entry})

    ledger_totals = (
        of_period.values("currency").annotate(amount=Sum("amount"), entries=Count("id")).order_by("currency")
    )
    carried_totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in carried_rows:
        carried_totals[row["currency"]] += row["amount"] or Decimal(0)
    return {
        "period": f"{start:%Y-%m}",
        "mismatches": mismatches,
        "invoices": {
            status: sum(1 for i in invoices.values() if i.status == status) for status in Invoice.Status.values
        },
        "ledger": {
            row["currency"]: {"entries": row["entries"], "amount": _exact(row["amount"])} for row in ledger_totals
        },
        "carried_forward": {currency: _exact(amount) for currency, amount in sorted(carried_totals.items())},
        "unpriced_events": states.get(UsageEvent.PricingState.UNPRICED, 0),
        "pending_events": states.get(UsageEvent.PricingState.PENDING, 0),
    }
