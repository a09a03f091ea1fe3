"""`manage.py void_invoice --number OMX-YYYYMM-NNNNNN --reason TEXT`: cancel a finalized invoice.

Same service as the admin action (`billing.services.invoice_void`): the invoice keeps its number,
lines and total for the record and is no longer owed; nothing is re-billed. Prints {"id", "number",
"workspace", "period", "status", "total", "currency", "void_reason", "voided_at"}. A draft, an
already void invoice, an unknown number or an empty reason is an error (exit 1, nothing changed).
Done by "the system" in the audit log (a command has no user).
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from billing.models import Invoice
from billing.services import BillingError, invoice_void


class Command(BaseCommand):
    help = "Void a finalized invoice, with a reason (it is then no longer owed; nothing is re-billed)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--number", required=True, help="The invoice number, e.g. OMX-202601-000042.")
        parser.add_argument("--reason", required=True, help="Why (kept on the invoice and in the audit log).")

    def handle(self, *args, **options) -> None:
        invoice = Invoice.objects.select_related("workspace").filter(number=options["number"]).first()
        if invoice is None:
            raise CommandError(f"no invoice numbered {options['number']!r}")
        try:
            invoice = invoice_void(invoice=invoice, reason=options["reason"], by=None)
        except BillingError as exc:
            raise CommandError(str(exc)) from exc
        out = {
            "id": invoice.id,
            "number": invoice.number,
            "workspace": invoice.workspace.slug,
            "period": f"{invoice.period_start:%Y-%m}",
            "status": invoice.status,
            "total": str(invoice.total),
            "currency": invoice.currency,
            "void_reason": invoice.void_reason,
            "voided_at": invoice.voided_at.isoformat(),
        }
        self.stdout.write(json.dumps(out))
