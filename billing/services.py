"""Billing writes: pricing usage events into the ledger, invoices, and corrections (void, credit).

Pricing is set-based. On PostgreSQL a batch is one SQL statement (`_PRICE_SQL`: claim, card lookup,
ledger insert, state update); elsewhere (SQLite) a batch is claimed with one query, its price cards
are read with one query, its ledger rows are written with one bulk insert and its events' states
with one bulk update. Either way, one transaction. Exactly once is the database's job, not the
caller's:

- On PostgreSQL the batch is claimed with `SELECT ... FOR UPDATE SKIP LOCKED` on pending rows, so
  two workers running at the same moment take disjoint batches; a row a committed worker has just
  priced no longer matches `pricing_state = 'pending'` when the next one re-checks it.
- On SQLite a transaction starts with `BEGIN IMMEDIATE` (settings), which serializes writers.
- Either way the ledger's one-to-one key on `usage_event` is the backstop: the insert skips a row
  that already has its entry (`ON CONFLICT DO NOTHING`), so "priced" always means "has exactly one
  ledger entry" (the Python path also counts the entries, since SQLite's INSERT OR IGNORE would hide
  any other failed insert too).
- A worker that dies mid-batch rolls its transaction back: its events stay pending for the next run.

Corrections never edit: a void changes only a finalized invoice's status (with a reason), and a
credit is a new ledger entry.
"""

from __future__ import annotations

import logging
import uuid
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, Subquery, Sum, Value, When
from django.utils import timezone

from audit.services import record as audit_record
from billing.models import Invoice, InvoiceLine, LedgerEntry, PriceCard, UsageEvent
from billing.pricing import Rates, usage_cost

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
LEDGER_LOCK_KEY = 0x4F4D5831  # "OMX1": the advisory lock that orders ledger writes and finalization

PENDING = UsageEvent.PricingState.PENDING
PRICED = UsageEvent.PricingState.PRICED
UNPRICED = UsageEvent.PricingState.UNPRICED

_EVENT_FIELDS = (
    "id",
    "workspace_id",
    "workspace__currency",
    "model_slug",
    "service_tier",
    "created_at",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
)
_CARD_FIELDS = (
    "id",
    "model__slug",
    "service_tier",
    "currency",
    "effective_from",
    "input_per_1m",
    "cached_input_per_1m",
    "cache_write_per_1m",
    "output_per_1m",
)
# The ledger column's scale: an amount finer than this would be rounded by the database.
_AMOUNT_EXPONENT = Decimal(1).scaleb(-LedgerEntry._meta.get_field("amount").decimal_places)


@dataclass(frozen=True, slots=True)
class PricingResult:
    claimed: int = 0
    priced: int = 0
    unpriced: int = 0
    through: datetime | None = None  # the latest request time in the batch (where the next one starts)


@dataclass(frozen=True, slots=True)
class _Card:
    id: int
    currency: str
    rates: Rates


class _CardBook:
    """The price cards a batch can need, read once: (model slug, tier, currency) → cards by start."""

    def __init__(self, rows: Iterable[dict[str, Any]]) -> None:
        self._starts: dict[tuple[str, str, str], list[datetime]] = {}
        self._cards: dict[tuple[str, str, str], list[_Card]] = {}
        for row in sorted(rows, key=lambda r: (r["effective_from"], r["id"])):
            key = (row["model__slug"], row["service_tier"], row["currency"])
            rates = Rates.of(row)
            self._starts.setdefault(key, []).append(row["effective_from"])
            self._cards.setdefault(key, []).append(_Card(id=row["id"], currency=row["currency"], rates=rates))

    @classmethod
    def for_events(cls, events: list[dict[str, Any]]) -> _CardBook:
        slugs = {e["model_slug"] for e in events}
        tiers = {e["service_tier"] for e in events} | {""}
        currencies = {e["workspace__currency"] for e in events}
        latest = max(e["created_at"] for e in events)
        rows = PriceCard.objects.filter(
            model__slug__in=slugs, service_tier__in=tiers, currency__in=currencies, effective_from__lte=latest
        ).values(*_CARD_FIELDS)
        return cls(rows)

    def card_at(self, *, model_slug: str, service_tier: str, currency: str, at: datetime) -> _Card | None:
        """Same rule as `selectors.price_card_for`: the tier's card in effect, else the all-tier card."""
        for tier in (service_tier, "") if service_tier else ("",):
            key = (model_slug, tier, currency)
            starts = self._starts.get(key)
            if starts:
                index = bisect_right(starts, at)
                if index:
                    return self._cards[key][index - 1]
        return None


def _ledger_entry(event: dict[str, Any], card: _Card, now: datetime) -> LedgerEntry:
    rates = card.rates
    amount = usage_cost(
        rates,
        input_tokens=event["input_tokens"],
        cached_input_tokens=event["cached_input_tokens"],
        cache_write_tokens=event["cache_write_tokens"],
        output_tokens=event["output_tokens"],
    )
    if amount != amount.quantize(_AMOUNT_EXPONENT):
        logger.error(
            "pricing: usage event %s costs %s, finer than the ledger column keeps; the database rounds it",
            event["id"],
            amount,
        )
    return LedgerEntry(
        kind=LedgerEntry.Kind.USAGE,
        usage_event_id=event["id"],
        workspace_id=event["workspace_id"],
        model_slug=event["model_slug"],
        occurred_at=event["created_at"],
        created_at=now,
        currency=card.currency,
        amount=amount,
        price_card_id=card.id,
        input_tokens=event["input_tokens"],
        cached_input_tokens=event["cached_input_tokens"],
        cache_write_tokens=event["cache_write_tokens"],
        output_tokens=event["output_tokens"],
        # The rates actually applied: a card without a cache-write rate charged cache writes at input.
        input_rate=rates.input_per_1m,
        cached_input_rate=rates.cached_input_per_1m,
        cache_write_rate=rates.input_per_1m if rates.cache_write_per_1m is None else rates.cache_write_per_1m,
        output_rate=rates.output_per_1m,
        posted_after_period=month_start(event["created_at"]) < month_start(now),
    )


def _ledger_clock(*, exclusive: bool) -> datetime:
    """The time to stamp on ledger writes, ordered against invoice finalization.

    On PostgreSQL, pricing holds a shared transaction-level advisory lock and finalization an
    exclusive one: when finalization holds it, every entry stamped earlier is committed (and on the
    invoice), and every entry stamped later is stamped with a later database clock (and is late).
    The clock is the database's, read after the lock is granted, so workers' clocks never matter.
    SQLite serializes write transactions already; its clock is this process's.
    """
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        if exclusive:
            cursor.execute("SELECT pg_advisory_xact_lock(%s), clock_timestamp()", [LEDGER_LOCK_KEY])
        else:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s), clock_timestamp()", [LEDGER_LOCK_KEY])
        return cursor.fetchone()[1]


def _parse_request_ids(request_ids: Iterable[str | uuid.UUID]) -> list[uuid.UUID]:
    parsed = []
    for value in request_ids:
        try:
            parsed.append(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
        except ValueError:
            logger.warning("pricing: ignoring a request id that is not a UUID: %r", value)
    return parsed


def usage_price(
    *,
    request_ids: Iterable[str | uuid.UUID] | None = None,
    limit: int = BATCH_SIZE,
    since: datetime | None = None,
) -> PricingResult:
    """Price one batch of pending usage events into ledger entries, in one transaction.

    With `request_ids`, the batch is those of them still pending (at most `limit`); without, the
    oldest pending events by request time (from `since` on, when given: a drain's cursor, so that
    each batch starts where the last one ended instead of stepping again over the index entries of
    the rows already priced). Events another worker holds are skipped, not waited for.
    An event whose model or price card (for its tier, else for all tiers, in the workspace's
    currency, in effect at its `created_at`) is missing is marked `unpriced`: no entry, no zero.

    On PostgreSQL the whole batch is one SQL statement (`_price_batch_sql`); elsewhere the same rule
    runs in Python (`_price_batch_python`). Both give the same entries to the last decimal place.
    """
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    ids = None
    if request_ids is not None:
        ids = _parse_request_ids(request_ids)
        if not ids:
            return PricingResult()
    price_batch = _price_batch_sql if connection.vendor == "postgresql" else _price_batch_python
    result = price_batch(ids=ids, limit=limit, since=since)
    if result.unpriced:
        logger.warning("pricing: %d usage events have no model or price card; marked unpriced", result.unpriced)
    return result


def _price_batch_python(*, ids: list[uuid.UUID] | None, limit: int, since: datetime | None) -> PricingResult:
    """The portable path (SQLite): claim with one query, read the cards with one, bulk insert, one update."""
    pending = UsageEvent.objects.filter(pricing_state=PENDING)
    if since is not None:
        pending = pending.filter(created_at__gte=since)
    if ids is not None:
        pending = pending.filter(request_id__in=ids)
    else:
        pending = pending.order_by("created_at")  # the partial index on pending rows, oldest first
    with transaction.atomic():
        events = list(pending.select_for_update(skip_locked=True, of=("self",)).values(*_EVENT_FIELDS)[:limit])
        if not events:
            return PricingResult()
        book = _CardBook.for_events(events)
        now = _ledger_clock(exclusive=False)
        entries: list[LedgerEntry] = []
        unpriced_ids: list[int] = []
        for event in events:
            card = book.card_at(
                model_slug=event["model_slug"],
                service_tier=event["service_tier"],
                currency=event["workspace__currency"],
                at=event["created_at"],
            )
            if card is None:
                unpriced_ids.append(event["id"])
            else:
                entries.append(_ledger_entry(event, card, now))
        priced_ids = [entry.usage_event_id for entry in entries]
        if entries:
            LedgerEntry.objects.bulk_create(entries, ignore_conflicts=True)
        _set_states(priced_ids=priced_ids, unpriced_ids=unpriced_ids)
        if priced_ids:
            # The backstop made visible: ignore_conflicts also hides an insert that failed for another
            # reason on SQLite (INSERT OR IGNORE). "Priced" must mean "has its entry", so check.
            stored = LedgerEntry.objects.filter(usage_event_id__in=priced_ids).count()
            if stored != len(priced_ids):
                raise RuntimeError(f"pricing: {len(priced_ids) - stored} of {len(priced_ids)} ledger entries missing")
    through = max(event["created_at"] for event in events)
    return PricingResult(claimed=len(events), priced=len(priced_ids), unpriced=len(unpriced_ids), through=through)


# One statement prices a batch on PostgreSQL: it claims pending events (row locks that skip rows
# another worker holds), finds each one's card with a LATERAL lookup (the tier's card in effect at
# the request's time first, else the all-tier card; the workspace's currency), inserts the ledger
# rows (ON CONFLICT on the one-to-one usage event: a second entry is impossible) and marks the
# events. The arithmetic is `billing/pricing.py`'s, in numeric: tokens (bigint) times 10-place rates
# are exact, and multiplying by 0.000001 (not dividing by 1,000,000, which numeric rounds to a
# chosen scale) keeps all 16 places of the ledger column.
_PRICE_SQL = """
WITH batch AS (
    SELECT u.ctid AS row_ref, u.id, u.workspace_id, u.model_slug, u.service_tier, u.created_at,
           u.input_tokens, u.cached_input_tokens, u.cache_write_tokens, u.output_tokens
    FROM billing_usageevent u
    WHERE u.pricing_state = 'pending' {filters}
    {order}
    LIMIT %(limit)s
    FOR UPDATE OF u SKIP LOCKED
),
rated AS (
    SELECT b.*, c.id AS card_id, c.currency, c.input_per_1m, c.cached_input_per_1m,
           COALESCE(c.cache_write_per_1m, c.input_per_1m) AS cache_write_rate, c.output_per_1m
    FROM batch b
    JOIN workspaces_workspace w ON w.id = b.workspace_id
    LEFT JOIN billing_model m ON m.slug = b.model_slug
    LEFT JOIN LATERAL (
        SELECT pc.id, pc.currency, pc.input_per_1m, pc.cached_input_per_1m, pc.cache_write_per_1m, pc.output_per_1m
        FROM billing_pricecard pc
        WHERE pc.model_id = m.id AND pc.currency = w.currency AND pc.effective_from <= b.created_at
          AND pc.service_tier IN (b.service_tier, '')
        ORDER BY pc.service_tier = '', pc.effective_from DESC, pc.id DESC
        LIMIT 1
    ) c ON true
),
inserted AS (
    INSERT INTO billing_ledgerentry (
        kind, usage_event_id, workspace_id, model_slug, occurred_at, created_at, currency, amount,
        price_card_id, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens,
        input_rate, cached_input_rate, cache_write_rate, output_rate, memo, posted_after_period
    )
    SELECT 'usage', r.id, r.workspace_id, r.model_slug, r.created_at, %(now)s, r.currency,
           (r.input_tokens * r.input_per_1m + r.cached_input_tokens * r.cached_input_per_1m
            + r.cache_write_tokens * r.cache_write_rate + r.output_tokens * r.output_per_1m) * 0.000001,
           r.card_id, r.input_tokens, r.cached_input_tokens, r.cache_write_tokens, r.output_tokens,
           r.input_per_1m, r.cached_input_per_1m, r.cache_write_rate, r.output_per_1m, '',
           date_trunc('month', r.created_at AT TIME ZONE 'UTC') < date_trunc('month', %(now)s AT TIME ZONE 'UTC')
    FROM rated r
    WHERE r.card_id IS NOT NULL
    ON CONFLICT (usage_event_id) DO NOTHING
    RETURNING 1
),
marked AS (
    UPDATE billing_usageevent u
    SET pricing_state = CASE WHEN r.card_id IS NULL THEN 'unpriced' ELSE 'priced' END
    FROM rated r
    WHERE u.ctid = r.row_ref  -- the locked row itself (a TID scan): it cannot move while we hold its lock
    RETURNING r.card_id IS NOT NULL AS priced, r.created_at
)
SELECT count(*), count(*) FILTER (WHERE priced), (SELECT count(*) FROM inserted), max(created_at) FROM marked
"""


def _price_batch_sql(*, ids: list[uuid.UUID] | None, limit: int, since: datetime | None) -> PricingResult:
    """The PostgreSQL path: one statement per batch, nothing per row in Python (see `_PRICE_SQL`)."""
    filters = []
    if ids is not None:
        filters.append("AND u.request_id = ANY(%(ids)s)")
    if since is not None:
        filters.append("AND u.created_at >= %(since)s")
    # Given ids are found by their unique index; only a sweep walks the pending index in time order
    # (ordering an id list would tempt the planner into that walk over the whole backlog).
    sql = _PRICE_SQL.format(filters=" ".join(filters), order="" if ids is not None else "ORDER BY u.created_at")
    own_transaction = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if own_transaction:
            # A batch's commit need not wait for the disk: if the server crashed right after, the
            # whole batch (entries and states together) would be lost and its events simply priced
            # again. WAL is flushed in order, so a finalization (a normal, durable commit) makes every
            # batch committed before it durable too. Never done for a caller's transaction: its other
            # writes may need the durable commit.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        now = _ledger_clock(exclusive=False)
        cursor.execute(sql, {"limit": limit, "now": now, "ids": ids, "since": since})
        claimed, priced, inserted, through = cursor.fetchone()
    if inserted != priced:  # an entry already existed: the one-to-one key kept it single
        logger.warning("pricing: %d of %d events already had their ledger entry", priced - inserted, priced)
    return PricingResult(claimed=claimed, priced=priced, unpriced=claimed - priced, through=through)


def _set_states(*, priced_ids: list[int], unpriced_ids: list[int]) -> None:
    if priced_ids and unpriced_ids:
        state = Case(When(id__in=unpriced_ids, then=Value(UNPRICED)), default=Value(PRICED))
    else:
        state = Value(PRICED if priced_ids else UNPRICED)
    UsageEvent.objects.filter(id__in=priced_ids + unpriced_ids, pricing_state=PENDING).update(pricing_state=state)


def usage_price_pending(*, batch_size: int = BATCH_SIZE, max_batches: int | None = None) -> dict[str, int | bool]:
    """Drain pending usage events in batches of `batch_size` (each its own transaction).

    Stops when a batch comes back short (nothing more is claimable now) or after `max_batches`;
    `more` is true when it stopped on the limit with a full last batch, i.e. work may remain.
    """
    if max_batches is not None and max_batches <= 0:
        raise ValueError(f"max_batches must be positive, got {max_batches}")
    totals = {"priced": 0, "unpriced": 0, "batches": 0, "more": False}
    since = None
    while max_batches is None or totals["batches"] < max_batches:
        result = usage_price(limit=batch_size, since=since)
        if result.claimed:
            totals["batches"] += 1
        totals["priced"] += result.priced
        totals["unpriced"] += result.unpriced
        if result.claimed < batch_size:
            if since is None:
                return totals
            since = None  # one more pass from the oldest: events recorded late, behind the cursor
            continue
        since = result.through
    totals["more"] = True
    return totals


def usage_unpriced_retry() -> int:
    """Put every `unpriced` usage event back to `pending` (after a model or card was added).

    One UPDATE; the next pricing run prices those whose card now exists and marks the rest
    unpriced again. Returns how many events were put back.
    """
    return UsageEvent.objects.filter(pricing_state=UNPRICED).update(pricing_state=PENDING)


# --- invoices -------------------------------------------------------------------------------------

INVOICE_GRACE = timedelta(days=3)  # a period is finalized this long after its end (late pricing lands first)
CENT = Decimal("0.01")
_CLOSED = (Invoice.Status.FINALIZED, Invoice.Status.VOID)  # both were finalized: a cut-off and a number


class BillingError(Exception):
    """A billing request that cannot be honoured as asked (e.g. finalizing an open period)."""


def month_start(at: datetime) -> datetime:
    """UTC midnight of the first day of `at`'s month (UTC): the start of its half-open period."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def month_after(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def month_before(start: datetime) -> datetime:
    return datetime(start.year - (start.month == 1), (start.month - 2) % 12 + 1, 1, tzinfo=UTC)


def round_line(amount: Decimal) -> Decimal:
    """The one rounding rule: per line, to the cent, half up (ties away from zero)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


_SUMS = {
    "amount_sum": Sum("amount"),
    "input_sum": Sum("input_tokens"),
    "cached_sum": Sum("cached_input_tokens"),
    "cache_write_sum": Sum("cache_write_tokens"),
    "output_sum": Sum("output_tokens"),
}


def _grouped(entries) -> list[dict[str, Any]]:
    # Usage has no memo: one line per model. Adjustments get one line per reason.
    return list(entries.values("workspace_id", "currency", "model_slug", "memo").annotate(**_SUMS).order_by())


def line_description(*, model_slug: str, memo: str, late: bool) -> str:
    """An invoice line's text: the model, or an adjustment's reason; late usage says so."""
    if model_slug:
        description = model_slug
    else:
        description = f"Adjustment: {memo}" if memo else "Adjustments"
    if late:
        description += " (late usage from an earlier period)" if model_slug else " (from an earlier period)"
    return description[: InvoiceLine._meta.get_field("description").max_length]


def _late_entries(start: datetime):
    """Ledger entries that belong on the invoice of period `start` although they occurred earlier.

    An entry is late when its own period's invoice was finalized before the entry was written (or
    its period has no invoice at all). It lands on the first invoice after that: the one whose
    predecessor (the workspace's latest earlier invoice) was finalized at or before the entry was
    written, or that has no predecessor. A predecessor still in draft takes them itself.
    """
    invoices = Invoice.objects.filter(workspace=OuterRef("workspace"), currency=OuterRef("currency"))
    predecessor = invoices.filter(period_start__lt=start).order_by("-period_start")
    own = invoices.filter(period_start__lte=OuterRef("occurred_at"), period_end__gt=OuterRef("occurred_at"))
    return (
        # Only entries written after their own month ended can be late (a partial index holds them), so
        # the check reads those few rows, not the whole history of the ledger.
        LedgerEntry.objects.filter(posted_after_period=True, occurred_at__lt=start)
        .annotate(
            predecessor_status=Subquery(predecessor.values("status")[:1]),
            predecessor_finalized_at=Subquery(predecessor.values("finalized_at")[:1]),
        )
        .filter(
            Q(predecessor_status__isnull=True)
            | Q(predecessor_status__in=_CLOSED, created_at__gte=F("predecessor_finalized_at"))
        )
        .exclude(Exists(own.filter(status=Invoice.Status.DRAFT)))
        # A voided invoice was finalized first: what it held stays on it (cancelled, not moved).
        .exclude(Exists(own.filter(status__in=_CLOSED, finalized_at__gt=OuterRef("created_at"))))
    )


def _line(invoice: Invoice, row: dict[str, Any], *, late: bool) -> InvoiceLine:
    return InvoiceLine(
        invoice=invoice,
        model_slug=row["model_slug"],
        description=line_description(model_slug=row["model_slug"], memo=row["memo"], late=late),
        is_late=late,
        input_tokens=row["input_sum"] or 0,
        cached_input_tokens=row["cached_sum"] or 0,
        cache_write_tokens=row["cache_write_sum"] or 0,
        output_tokens=row["output_sum"] or 0,
        currency=row["currency"],
        amount=round_line(row["amount_sum"] or Decimal(0)),
    )


def _roll_up_period(start: datetime, *, finalize: bool) -> list[Invoice]:
    end = month_after(start)
    with transaction.atomic():
        # Finalizing waits for in-flight pricing and stamps the cut-off with the database clock.
        cutoff = _ledger_clock(exclusive=True) if finalize else None
        # A workspace whose invoice for this period (or a later one) is finalized is closed here:
        # entries it did not include are late and go forward, never back.
        closed = set(
            Invoice.objects.filter(period_start__gte=start)
            .exclude(status=Invoice.Status.DRAFT)
            .values_list("workspace_id", "currency")
        )
        regular = LedgerEntry.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
        late = _late_entries(start)
        if cutoff is not None:
            regular, late = regular.filter(created_at__lt=cutoff), late.filter(created_at__lt=cutoff)
        rows = [(r, False) for r in _grouped(regular)] + [(r, True) for r in _grouped(late)]
        rows = [(r, is_late) for r, is_late in rows if (r["workspace_id"], r["currency"]) not in closed]

        pairs = {(r["workspace_id"], r["currency"]) for r, _ in rows}
        Invoice.objects.bulk_create(
            [Invoice(workspace_id=w, currency=c, period_start=start, period_end=end) for w, c in sorted(pairs)],
            ignore_conflicts=True,
        )
        # Lock this period's drafts (in id order: two roll-ups never deadlock) before rewriting them.
        drafts = {
            (i.workspace_id, i.currency): i
            for i in Invoice.objects.select_for_update()
            .filter(period_start=start, status=Invoice.Status.DRAFT)
            .order_by("id")
        }
        InvoiceLine.objects.filter(invoice__in=list(drafts.values())).delete()
        # A concurrent finalization may have closed an invoice since the rows were read: skip it.
        lines = [
            _line(drafts[pair], r, late=is_late)
            for r, is_late in rows
            if (pair := (r["workspace_id"], r["currency"])) in drafts
        ]
        InvoiceLine.objects.bulk_create(lines)

        totals: dict[int, Decimal] = {}
        for line in lines:
            totals[line.invoice_id] = totals.get(line.invoice_id, Decimal(0)) + line.amount
        empty = [i.id for i in drafts.values() if i.id not in totals]
        if empty:  # everything it held moved to an earlier period's invoice
            Invoice.objects.filter(id__in=empty, status=Invoice.Status.DRAFT).delete()
        kept = [i for i in drafts.values() if i.id in totals]
        open_earlier = set()
        if finalize:
            open_earlier = set(
                Invoice.objects.filter(period_start__lt=start, status=Invoice.Status.DRAFT).values_list(
                    "workspace_id", "currency"
                )
            )
        touched_at = timezone.now()
        for invoice in kept:
            invoice.total = totals[invoice.id]
            invoice.updated_at = touched_at
            if finalize and (invoice.workspace_id, invoice.currency) not in open_earlier:
                invoice.status = Invoice.Status.FINALIZED
                invoice.finalized_at = cutoff
                invoice.number = f"OMX-{start:%Y%m}-{invoice.id:06d}"
        Invoice.objects.bulk_update(kept, ["total", "status", "finalized_at", "number", "updated_at"])
    return sorted(kept, key=lambda i: i.id)


def invoice_roll_up(
    *,
    period: datetime | None = None,
    finalize: bool = False,
    now: datetime | None = None,
    grace: timedelta = INVOICE_GRACE,
) -> list[Invoice]:
    """Keep draft invoices current from the ledger; with `finalize`, finalize those past their grace.

    Without `period`: the current month, the previous one (open during its grace window) and any
    older month that still has a draft, oldest first. Per workspace and currency, one invoice per
    period with one line per model (and per model for late usage), each rounded half up to the
    cent; the total is the sum of the lines. A finalized invoice is never rewritten: usage priced
    after it lands, marked late, on the workspace's next invoice. Returns the invoices touched.
    """
    now = now or timezone.now()
    current = month_start(now)
    if period is not None:
        period = month_start(period)
        if period > current:
            raise BillingError(f"period {period:%Y-%m} has not started yet")
        if finalize and month_after(period) + grace > now:
            raise BillingError(
                f"period {period:%Y-%m} cannot be finalized before {month_after(period) + grace:%Y-%m-%d %H:%M} UTC"
            )
        periods = [period]
    else:
        older = {
            month_start(p)
            for p in Invoice.objects.filter(status=Invoice.Status.DRAFT)
            .order_by()
            .values_list("period_start", flat=True)
            .distinct()
        }
        periods = sorted(older | {month_before(current), current})
    touched: list[Invoice] = []
    for start in periods:
        touched += _roll_up_period(start, finalize=finalize and month_after(start) + grace <= now)
    return touched


# --- corrections: void and credit (nothing is edited in place) ---------------------------------------

_REASON_MAX = Invoice._meta.get_field("void_reason").max_length
CREDIT_MAX = Decimal(10) ** 12  # far above any real credit, far below what the money columns hold


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise BillingError("a reason is required")
    if len(reason) > _REASON_MAX:
        raise BillingError(f"the reason is longer than {_REASON_MAX} characters")
    return reason


def invoice_void(*, invoice: Invoice, reason: str, by: Any | None) -> Invoice:
    """Cancel a finalized invoice: it is no longer owed. Returns the invoice, now void.

    `by` is who did it (a user; None for the system): stored on the invoice and in the audit log.

    Only a finalized invoice can be voided (a draft is still being built from the ledger and
    changes every roll-up). Nothing else changes: the number, the lines and the total stay as they
    were, for the record; the ledger entries it held stay in the ledger, on this (void) invoice, and
    are never moved to another one, so voiding re-opens nothing and bills nothing twice. A partial
    correction is a credit (`credit_issue`), not a void.
    """
    reason = _reason(reason)
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.status != Invoice.Status.FINALIZED:
            raise BillingError(f"only a finalized invoice can be voided; this one is {locked.status}")
        locked.status = Invoice.Status.VOID
        locked.void_reason = reason
        locked.voided_at = timezone.now()
        locked.voided_by = by
        locked.save(update_fields=["status", "void_reason", "voided_at", "voided_by", "updated_at"])
        audit_record(
            by,
            "invoice.void",
            locked,
            old={"status": Invoice.Status.FINALIZED},
            new={"status": Invoice.Status.VOID, "void_reason": reason, "number": locked.number},
        )
    logger.info("invoice %s voided: %s", locked, reason)
    return locked


def credit_issue(
    *, workspace: Any, amount: Decimal | str, reason: str, by: Any | None, currency: str | None = None
) -> LedgerEntry:
    """Credit `amount` (a positive sum in whole cents) to a workspace: a new, negative ledger entry.

    The credit is dated when it is issued, so it lands on the workspace's invoice for the current
    month (a draft: a month is finalized only after it ends), as its own line "Adjustment: <reason>",
    at the next roll-up. A finalized invoice is never changed. The credit is in the workspace's
    currency unless another is given (then it goes on that currency's invoice). `by` is stored on
    the entry and in the audit log.
    """
    try:
        value = Decimal(str(amount).strip()) if not isinstance(amount, Decimal) else amount
    except ArithmeticError as exc:
        raise BillingError(f"the amount must be a decimal number, got {amount!r}") from exc
    if not value.is_finite() or value <= 0:
        raise BillingError(f"a credit must be a positive amount, got {amount}")
    if value >= CREDIT_MAX:
        raise BillingError(f"a credit must be less than {CREDIT_MAX}, got {amount}")
    if value != value.quantize(CENT):
        raise BillingError(f"a credit is in whole cents, got {amount}")
    currency = (currency or workspace.currency).upper()
    if len(currency) != 3 or not currency.isalpha():
        raise BillingError(f"the currency must be a 3-letter code, got {currency!r}")
    reason = _reason(reason)
    with transaction.atomic():
        now = _ledger_clock(exclusive=False)  # ordered against finalization like priced usage
        entry = LedgerEntry.objects.create(
            kind=LedgerEntry.Kind.ADJUSTMENT,
            workspace=workspace,
            occurred_at=now,
            created_at=now,
            currency=currency,
            amount=-value,
            memo=reason,
            created_by=by,
        )
        audit_record(by, "credit.issue", entry, new={"amount": entry.amount, "currency": currency, "reason": reason})
    logger.info("credit of %s %s issued to workspace %s: %s", value, currency, workspace.pk, reason)
    return entry
