"""Reads behind the pages: the dashboard's spend and requests, usage by day and model, invoices.

Every query filters on the workspace and on the event's time (the usage and ledger tables are to be
partitioned by month), and aggregates in the database: a page never loads one row per request.
Days are UTC days, like the invoice periods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate

from billing.models import Invoice, InvoiceLine, LedgerEntry, UsageEvent
from billing.services import month_after, month_before, month_start
from workspaces.models import ApiKey, Workspace

ZERO = Decimal(0)


def day_start(day: date) -> datetime:
    """UTC midnight at the start of `day`."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


# --- dashboard ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dashboard:
    period_start: datetime
    period_end: datetime  # exclusive
    last_period_start: datetime
    spend: Decimal  # this period, to date
    last_spend: Decimal  # the whole last period
    last_spend_to_date: Decimal  # the last period up to the same point in it
    requests: int
    last_requests: int
    days: list[date]
    spend_by_day: dict[date, Decimal]
    requests_by_day: dict[date, int]
    currency: str

    @property
    def change(self) -> Decimal | None:
        """This period's spend against the last one at the same point, in percent (None: nothing to compare)."""
        if not self.last_spend_to_date:
            return None
        return ((self.spend - self.last_spend_to_date) / self.last_spend_to_date * 100).quantize(Decimal("0.1"))


def _ledger_sum(workspace: Workspace, start: datetime, end: datetime) -> Decimal:
    total = LedgerEntry.objects.filter(
        workspace=workspace, currency=workspace.currency, occurred_at__gte=start, occurred_at__lt=end
    ).aggregate(total=Sum("amount"))["total"]
    return total if total is not None else ZERO


def _request_count(workspace: Workspace, start: datetime, end: datetime) -> int:
    return UsageEvent.objects.filter(workspace=workspace, created_at__gte=start, created_at__lt=end).count()


def dashboard(*, workspace: Workspace, now: datetime) -> Dashboard:
    """Month to date against the last month (whole, and up to the same point), with daily figures."""
    start = month_start(now)
    end = month_after(start)
    last_start = month_before(start)
    elapsed = now - start
    spend_rows = (
        LedgerEntry.objects.filter(
            workspace=workspace, currency=workspace.currency, occurred_at__gte=start, occurred_at__lt=end
        )
        .annotate(day=TruncDate("occurred_at", tzinfo=UTC))
        .values("day")
        .annotate(total=Sum("amount"))
        .order_by("day")
    )
    request_rows = (
        UsageEvent.objects.filter(workspace=workspace, created_at__gte=start, created_at__lt=end)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day")
        .annotate(count=Count("id"))
        .order_by("day")
    )
    spend_by_day = {row["day"]: row["total"] or ZERO for row in spend_rows}
    requests_by_day = {row["day"]: row["count"] for row in request_rows}
    return Dashboard(
        period_start=start,
        period_end=end,
        last_period_start=last_start,
        spend=sum(spend_by_day.values(), ZERO),
        last_spend=_ledger_sum(workspace, last_start, start),
        last_spend_to_date=_ledger_sum(workspace, last_start, min(last_start + elapsed, start)),
        requests=sum(requests_by_day.values()),
        last_requests=_request_count(workspace, last_start, start),
        days=days_between(start.date(), (end - timedelta(days=1)).date()),
        spend_by_day=spend_by_day,
        requests_by_day=requests_by_day,
        currency=workspace.currency,
    )


# --- usage ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class UsageTotals:
    requests: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = ZERO
    unpriced: int = 0  # requests without a ledger entry yet (pending or no price card)

    def add(self, other: UsageTotals) -> None:
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.output_tokens += other.output_tokens
        self.cost += other.cost
        self.unpriced += other.unpriced

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.cached_input_tokens + self.cache_write_tokens + self.output_tokens


@dataclass(slots=True)
class UsageReport:
    days: list[date]
    models: list[str]
    cells: dict[tuple[date, str], UsageTotals] = field(default_factory=dict)
    by_model: dict[str, UsageTotals] = field(default_factory=dict)
    total: UsageTotals = field(default_factory=UsageTotals)


def usage_report(
    *, workspace: Workspace, first: date, last: date, model_slug: str = "", api_key: ApiKey | None = None
) -> UsageReport:
    """Requests, tokens and cost per (UTC day, model) from `first` to `last` (both included).

    Cost is the sum of the requests' ledger amounts, exact; requests not priced yet count as unpriced.
    """
    events = UsageEvent.objects.filter(
        workspace=workspace, created_at__gte=day_start(first), created_at__lt=day_start(last + timedelta(days=1))
    )
    if model_slug:
        events = events.filter(model_slug=model_slug)
    if api_key is not None:
        events = events.filter(api_key=api_key)
    rows = (
        events.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "model_slug")
        .annotate(
            requests=Count("id"),
            input_sum=Sum("input_tokens"),
            cached_sum=Sum("cached_input_tokens"),
            cache_write_sum=Sum("cache_write_tokens"),
            output_sum=Sum("output_tokens"),
            cost=Sum("ledger_entry__amount"),
            unpriced=Count("id", filter=Q(ledger_entry__isnull=True)),
        )
        .order_by("day", "model_slug")
    )
    report = UsageReport(days=days_between(first, last), models=[])
    for row in rows:
        cell = UsageTotals(
            requests=row["requests"],
            input_tokens=row["input_sum"] or 0,
            cached_input_tokens=row["cached_sum"] or 0,
            cache_write_tokens=row["cache_write_sum"] or 0,
            output_tokens=row["output_sum"] or 0,
            cost=row["cost"] if row["cost"] is not None else ZERO,
            unpriced=row["unpriced"],
        )
        slug = row["model_slug"]
        report.cells[(row["day"], slug)] = cell
        report.by_model.setdefault(slug, UsageTotals()).add(cell)
        report.total.add(cell)
    report.models = sorted(report.by_model)
    return report


# --- invoices -------------------------------------------------------------------------------------


def invoices_of(workspace: Workspace):
    """The workspace's invoices, latest period first."""
    return Invoice.objects.filter(workspace=workspace).order_by("-period_start", "currency")


def invoice_lines(invoice: Invoice) -> list[InvoiceLine]:
    """Regular lines first (by model), then late ones, then adjustments."""
    lines = list(invoice.lines.all())
    return sorted(lines, key=lambda line: (not line.model_slug, line.is_late, line.model_slug, line.pk))


def api_keys_of(workspace: Workspace):
    """The workspace's keys: active ones first, then the newest."""
    return ApiKey.objects.filter(workspace=workspace).order_by(F("revoked_at").desc(nulls_first=True), "-created_at")
