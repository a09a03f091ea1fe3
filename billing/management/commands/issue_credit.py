"""`manage.py issue_credit --workspace SLUG --amount 12.34 --reason TEXT [--currency USD]`: credit a workspace.

Same service as the admin action (`billing.services.credit_issue`): a new ledger entry of kind
`adjustment` with the negative amount, dated now, which appears as its own line on the workspace's
invoice for the current month at the next roll-up. Prints {"id", "workspace", "amount", "currency",
"reason", "period"}; money as a string. A non-positive amount, fractions of a cent, an unknown
workspace or an empty reason is an error (exit 1, nothing written).
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from billing.services import BillingError, credit_issue
from workspaces.models import Workspace


class Command(BaseCommand):
    help = "Credit a workspace: a negative adjustment on its invoice for the current month."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--workspace", required=True, help="The workspace's slug.")
        parser.add_argument("--amount", required=True, help="A positive amount in whole cents, e.g. 12.34.")
        parser.add_argument("--reason", required=True, help="Shown on the invoice line and kept in the audit log.")
        parser.add_argument("--currency", help="Default: the workspace's currency.")

    def handle(self, *args, **options) -> None:
        workspace = Workspace.objects.filter(slug=options["workspace"]).first()
        if workspace is None:
            raise CommandError(f"no workspace {options['workspace']!r}")
        try:
            entry = credit_issue(
                workspace=workspace,
                amount=options["amount"],
                currency=options["currency"],
                reason=options["reason"],
                by=None,
            )
        except BillingError as exc:
            raise CommandError(str(exc)) from exc
        out = {
            "id": entry.id,
            "workspace": workspace.slug,
            "amount": str(entry.amount),
            "currency": entry.currency,
            "reason": entry.memo,
            "period": f"{entry.occurred_at:%Y-%m}",
        }
        self.stdout.write(json.dumps(out))
