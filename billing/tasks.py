"""Celery tasks for billing: thin wrappers that take ids, call one service, and retry only
transient database errors (a lost connection, a deadlock or serialization failure), never a bug.

Every task here is safe to run twice, or twice at the same moment: pricing claims pending events
with row locks that skip rows another worker holds, and the ledger's one-to-one key on the usage
event makes a second entry impossible (see billing/services.py).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from billing.services import BATCH_SIZE, invoice_roll_up, usage_price, usage_price_pending

logger = logging.getLogger(__name__)

# One sweep run prices at most this many batches before handing over to a fresh task, so a large
# backlog never holds one worker slot (or one beat tick) for long.
SWEEP_BATCHES_PER_RUN = 10

_TRANSIENT = (OperationalError, InterfaceError)
_RETRY = {"autoretry_for": _TRANSIENT, "retry_backoff": True, "retry_backoff_max": 60, "max_retries": 5}


@shared_task(**_RETRY)
def price_usage_events(request_ids: list[str]) -> dict[str, int]:
    """Price the usage events the gateway has just recorded (its usage writer calls this).

    Limits: the ids are priced in batches of BATCH_SIZE; ids that are unknown, already priced or
    unpriced, or held by another worker at this moment are skipped (the beat sweep catches any
    pending event this task did not reach). Safe to run twice: only `pending` events are claimed.
    """
    totals = {"priced": 0, "unpriced": 0}
    for start in range(0, len(request_ids), BATCH_SIZE):
        result = usage_price(request_ids=request_ids[start : start + BATCH_SIZE], limit=BATCH_SIZE)
        totals["priced"] += result.priced
        totals["unpriced"] += result.unpriced
    return totals


@shared_task(bind=True, **_RETRY)
def price_pending_usage(self) -> dict[str, int | bool]:
    """The beat sweep: price the oldest pending usage events, whatever scheduled them (or didn't).

    Limits: at most SWEEP_BATCHES_PER_RUN batches of BATCH_SIZE events per run; when the last one
    was full it re-enqueues itself, so a backlog drains in bounded steps. With eager Celery (no
    broker) re-enqueueing would recurse, so it drains in this call instead. Safe to run twice, and
    safe when beat starts a new run while an old chain still drains: runs claim disjoint rows.
    """
    eager = bool(self.app.conf.task_always_eager)
    totals = usage_price_pending(batch_size=BATCH_SIZE, max_batches=None if eager else SWEEP_BATCHES_PER_RUN)
    if totals["more"]:
        logger.info("pricing sweep: backlog remains after %d batches; re-enqueued", totals["batches"])
        self.apply_async()
    return totals


@shared_task(**_RETRY)
def roll_up_invoices() -> int:
    """The beat roll-up: keep this month's (and last month's, during its grace) draft invoices
    current, and finalize every draft whose period ended more than INVOICE_GRACE ago.

    Limits: one transaction per period; a draft is rebuilt from the ledger with GROUP BY (no row
    loop), under row locks on that period's drafts. Safe to run twice or at once: two runs rebuild
    the same drafts one after the other, and a finalized invoice is never touched again.
    """
    return len(invoice_roll_up(finalize=True))
