"""`manage.py reconcile --period YYYY-MM`: re-add the month's ledger and compare it with its invoices.

Prints one JSON object: {"period", "mismatches": [...], "invoices": {status: n}, "ledger": {currency:
{"entries", "amount"}}, "carried_forward": {currency: amount}, "unpriced_events", "pending_events"};
money as decimal strings. Exit status: 0 when everything matches, 1 on any mismatch (the JSON names
each one, with the expected and actual values and their difference), 2 on an error (a bad period,
the database unreachable), with the message on stderr and nothing on stdout.
Mismatch kinds: line (tokens or amount differ), missing_line, extra_line, total (the invoice total is
not the sum of its lines or not the ledger's), not_invoiced (usage of the month on no invoice at
all), priced_without_entry (an event marked priced with no ledger entry). Unpriced and pending
events of the month are counted, not mismatches: they are not money yet (see `price_usage`).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from billing.reconcile import reconcile_period

ERROR = 2
MISMATCH = 1


def _period(value: str) -> datetime:
    if not re.fullmatch(r"\d{4}-\d{2}", value or ""):
        raise CommandError(f"--period must be YYYY-MM, got {value!r}", returncode=ERROR)
    try:
        return datetime.strptime(value, "%Y-%m").replace(tzinfo=UTC)
    except ValueError as exc:
        raise CommandError(f"--period must be YYYY-MM, got {value!r}", returncode=ERROR) from exc


class Command(BaseCommand):
    help = "Re-add one month's ledger and compare it with its invoices; exit 1 on any mismatch, 2 on an error."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--period", required=True, help="One calendar month (UTC), YYYY-MM.")

    def handle(self, *args, **options) -> None:
        period = _period(options["period"])
        if period > datetime.now(UTC):
            raise CommandError(f"period {options['period']} has not started yet", returncode=ERROR)
        try:
            report = reconcile_period(period)
        except DatabaseError as exc:
            raise CommandError(f"reconcile failed: {exc}", returncode=ERROR) from exc
        self.stdout.write(json.dumps(report))
        if report["mismatches"]:
            count = len(report["mismatches"])
            raise CommandError(
                f"{count} mismatch{'es' if count != 1 else ''} in {report['period']}", returncode=MISMATCH
            )
