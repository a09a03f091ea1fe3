"""Reads behind the management API: usage aggregated in the database, one request's record.

Every usage query filters on the workspace and the event's time (usage_ws_time), so it stays on one
month's partition once the usage table is partitioned; nothing loads one row per request to sum it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from billing.models import UsageEvent
from workspaces.models import ApiKey, Workspace

MAX_RANGE = timedelta(days=366)
DEFAULT_RANGE = timedelta(days=30)
ZERO = Decimal(0)

_SUMS = {
    "input_tokens": Sum("input_tokens"),
    "cached_input_tokens": Sum("cached_input_tokens"),
    "cache_write_tokens": Sum("cache_write_tokens"),
    "output_tokens": Sum("output_tokens"),
    "reasoning_tokens": Sum("reasoning_tokens"),
    "cost": Sum("ledger_entry__amount"),
    "requests": Count("id"),
    "unpriced_requests": Count("id", filter=Q(ledger_entry__isnull=True)),
}
_TOTAL_FIELDS = (
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "unpriced_requests",
)


class RangeError(ValueError):
    """A time range the API refuses (the message is for the caller)."""


def time_range(start: datetime | None, end: datetime | None, *, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) in UTC, defaulting to the 30 days before now; at most MAX_RANGE long."""
    end = (end or now).astimezone(UTC)
    start = (start or end - DEFAULT_RANGE).astimezone(UTC)
    if start >= end:
        raise RangeError("start must be before end")
    if end - start > MAX_RANGE:
        raise RangeError(f"the range may span at most {MAX_RANGE.days} days")
    return start, end


@dataclass
class UsageReport:
    group_by: str
    start: datetime
    end: datetime
    currency: str
    data: list[dict[str, Any]] = field(default_factory=list)
    total: dict[str, Any] = field(default_factory=dict)


def _zero_row() -> dict[str, Any]:
    return {**dict.fromkeys(_TOTAL_FIELDS, 0), "cost": ZERO}


def usage_events(
    *, workspace: Workspace, start: datetime, end: datetime, model: str = "", key_id: int | None = None
) -> QuerySet[UsageEvent]:
    events = UsageEvent.objects.filter(workspace=workspace, created_at__gte=start, created_at__lt=end)
    if model:
        events = events.filter(model_slug=model)
    if key_id is not None:
        events = events.filter(api_key_id=key_id)
    return events


def usage_report(
    *,
    workspace: Workspace,
    group_by: str,
    start: datetime,
    end: datetime,
    model: str = "",
    key_id: int | None = None,
) -> UsageReport:
    """Requests, tokens and cost per UTC day, model or key over [start, end).

    Cost is the sum of the ledger amounts of the requests priced so far (exact, all 16 places);
    requests not priced yet are counted in `unpriced_requests`. Days with no usage are listed too.
    """
    events = usage_events(workspace=workspace, start=start, end=end, model=model, key_id=key_id)
    column = {"day": "day", "model": "model_slug", "key": "api_key_id"}[group_by]
    if group_by == "day":
        events = events.annotate(day=TruncDate("created_at", tzinfo=UTC))
    rows = events.values(column).annotate(**_SUMS).order_by(column)
    report = UsageReport(group_by=group_by, start=start, end=end, currency=workspace.currency, total=_zero_row())
    by_group: dict[str, dict[str, Any]] = {}
    for row in rows:
        value = row[column]
        group = value.isoformat() if group_by == "day" else ("" if value is None else str(value))
        clean = {name: row[name] or 0 for name in _TOTAL_FIELDS}
        clean["cost"] = row["cost"] if row["cost"] is not None else ZERO
        by_group[group] = clean
        for name in (*_TOTAL_FIELDS, "cost"):
            report.total[name] += clean[name]
    if group_by == "day":
        first, last = start.date(), (end - timedelta(microseconds=1)).date()
        groups = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    else:
        groups = list(by_group)
    keys = {}
    if group_by == "key":
        ids = [int(g) for g in groups if g]
        keys = {str(k.pk): k for k in ApiKey.objects.filter(workspace=workspace, pk__in=ids)}
    for group in groups:
        key = keys.get(group)
        report.data.append(
            {
                "group": group,
                "key_name": key.name if key is not None else None,
                "key_prefix": key.prefix if key is not None else None,
                **by_group.get(group, _zero_row()),
            }
        )
    return report
