"""`manage.py price_usage [--retry-unpriced]`: price every pending usage event now.

The same service as the Celery sweep (`billing.tasks.price_pending_usage`), drained to the end in
batches. Prints one JSON object: {"priced": n, "unpriced": m, "batches": k} (plus "retried" with
--retry-unpriced). Safe to run while workers price too: they claim disjoint rows.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from billing.services import BATCH_SIZE, usage_price_pending, usage_unpriced_retry


class Command(BaseCommand):
    help = "Price every pending usage event into the ledger (same code as the Celery task)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--retry-unpriced",
            action="store_true",
            help="First put events flagged unpriced back to pending (after adding a model or price card).",
        )
        parser.add_argument(
            "--batch-size", type=int, default=BATCH_SIZE, help=f"Events per batch (default {BATCH_SIZE})."
        )

    def handle(self, *args, **options) -> None:
        batch_size = options["batch_size"]
        if batch_size <= 0:
            raise CommandError(f"--batch-size must be positive, got {batch_size}")
        retried = None
        try:
            if options["retry_unpriced"]:
                retried = usage_unpriced_retry()
            totals = usage_price_pending(batch_size=batch_size)
        except DatabaseError as exc:
            raise CommandError(f"pricing failed (nothing in the failed batch was priced): {exc}") from exc
        output = {"priced": totals["priced"], "unpriced": totals["unpriced"], "batches": totals["batches"]}
        if retried is not None:
            output["retried"] = retried
        self.stdout.write(json.dumps(output))
