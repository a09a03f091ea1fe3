"""`manage.py rollup_invoices [--period YYYY-MM] [--finalize]`: the invoices touched, as JSON.

The same service as the beat task (`billing.tasks.roll_up_invoices`). Without --period: the
current month, the previous one and any month that still has a draft. --finalize finalizes drafts
whose period ended more than the grace window ago (with --period, a period still in its grace is an
error). Prints {"invoices": [{"id", "number", "workspace", "period", "status", "currency", "total",
"lines"}, ...]}; money as strings.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.db.models import Count

from billing.models import Invoice
from billing.services import BillingError, invoice_roll_up


def _period(value: str) -> datetime:
    try:
        parsed = datetime.strptime(value, "%Y-%m")
    except ValueError as exc:
        raise CommandError(f"--period must be YYYY-MM, got {value!r}") from exc
    return parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Roll the ledger up into draft invoices; with --finalize, finalize periods past their grace window."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--period", help="One calendar month (UTC), YYYY-MM. Default: the open months.")
        parser.add_argument("--finalize", action="store_true", help="Finalize drafts whose grace window has passed.")

    def handle(self, *args, **options) -> None:
        period = _period(options["period"]) if options.get("period") else None
        try:
            invoices = invoice_roll_up(period=period, finalize=options["finalize"])
        except BillingError as exc:
            raise CommandError(str(exc)) from exc
        except DatabaseError as exc:
            raise CommandError(f"roll-up failed (nothing in the failed period was changed): {exc}") from exc
        extra = {
            row["id"]: row
            for row in Invoice.objects.filter(id__in=[i.id for i in invoices])
            .annotate(line_count=Count("lines"))
            .values("id", "workspace__slug", "line_count")
        }
        out = [
            {
                "id": i.id,
                "number": i.number,
                "workspace": extra[i.id]["workspace__slug"],
                "period": f"{i.period_start:%Y-%m}",
                "status": i.status,
                "currency": i.currency,
                "total": str(i.total),
                "lines": extra[i.id]["line_count"],
            }
            for i in invoices
        ]
        self.stdout.write(json.dumps({"invoices": out}))
