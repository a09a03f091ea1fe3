"""An invoice as CSV: one row per line, then a total row. Amounts are the invoice's exact cents."""

from __future__ import annotations

import csv
import io

from billing.models import Invoice
from console.selectors import invoice_lines

HEADER = [
    "invoice",
    "period",
    "status",
    "description",
    "model",
    "late",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "amount",
    "currency",
]


def invoice_label(invoice: Invoice) -> str:
    """The invoice's number, or `draft-<slug>-YYYY-MM` before it has one."""
    return invoice.number or f"draft-{invoice.workspace.slug}-{invoice.period_start:%Y-%m}"


def invoice_filename(invoice: Invoice) -> str:
    return f"invoice-{invoice_label(invoice)}.csv"


def invoice_csv(invoice: Invoice) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    label, period, status = invoice_label(invoice), f"{invoice.period_start:%Y-%m}", invoice.status
    sums = [0, 0, 0, 0]
    for line in invoice_lines(invoice):
        tokens = [line.input_tokens, line.cached_input_tokens, line.cache_write_tokens, line.output_tokens]
        sums = [a + b for a, b in zip(sums, tokens, strict=True)]
        late = "yes" if line.is_late else "no"
        writer.writerow(
            [label, period, status, line.description, line.model_slug, late, *tokens, line.amount, line.currency]
        )
    writer.writerow([label, period, status, "Total", "", "", *sums, invoice.total, invoice.currency])
    return out.getvalue()
