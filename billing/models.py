from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from workspaces.models import ApiKey, Workspace

RATE = {"max_digits": 20, "decimal_places": 10}  # per-1M-token rates
AMOUNT = {"max_digits": 32, "decimal_places": 16}  # full precision: a 10-place rate / 1M needs 16 places
CENTS = {"max_digits": 18, "decimal_places": 2}  # invoice lines and totals


class Model(models.Model):
    """A catalog model: what it can do, its limits, and the request fields it accepts (its spec)."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=120, blank=True)
    category_description = models.TextField(blank=True)
    provider = models.CharField(max_length=40, help_text="The provider family the page names.")
    endpoint_type = models.CharField(max_length=40, help_text="The default endpoint type of its routes.")
    endpoint_types = models.JSONField(default=list, blank=True, help_text="Endpoint types its routes may use.")
    capabilities = models.JSONField(default=list, blank=True)
    context_window = models.PositiveIntegerField()
    max_output_tokens = models.PositiveIntegerField()
    reasoning = models.BooleanField(default=False)
    spec = models.JSONField(default=dict, help_text="Request fields, types and accepted values.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(condition=Q(context_window__gt=0), name="model_context_positive"),
            models.CheckConstraint(condition=Q(max_output_tokens__gt=0), name="model_max_output_positive"),
        ]

    def __str__(self) -> str:
        return self.slug


class PriceCard(models.Model):
    """Per-1M-token rates in effect from `effective_from`; history is never rewritten."""

    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="price_cards")
    service_tier = models.CharField(
        max_length=16, blank=True, default="", help_text="Empty: every tier without a card of its own."
    )
    currency = models.CharField(max_length=3, default="USD")
    input_per_1m = models.DecimalField(**RATE)
    cached_input_per_1m = models.DecimalField(**RATE)
    cache_write_per_1m = models.DecimalField(
        **RATE, null=True, blank=True, help_text="Empty: cache writes are priced at the input rate."
    )
    output_per_1m = models.DecimalField(**RATE)
    effective_from = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "service_tier", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "service_tier", "currency", "effective_from"], name="pricecard_unique_start"
            ),
            models.CheckConstraint(
                condition=Q(input_per_1m__gte=0)
                & Q(cached_input_per_1m__gte=0)
                & Q(output_per_1m__gte=0)
                & (Q(cache_write_per_1m__isnull=True) | Q(cache_write_per_1m__gte=0)),
                name="pricecard_rates_nonneg",
            ),
        ]

    def __str__(self) -> str:
        tier = self.service_tier or "any tier"
        return f"{self.model.slug} ({tier}) from {self.effective_from:%Y-%m-%d}"


class UsageEvent(models.Model):
    """One request that reached a route, as the gateway recorded it (raw, unpriced)."""

    class Outcome(models.TextChoices):
        COMPLETED = "completed", "Completed"
        UPSTREAM_ERROR = "upstream_error", "Upstream error"
        BROKEN_STREAM = "broken_stream", "Stream broken after tokens"
        CLIENT_GONE = "client_gone", "Client disconnected"
        TIMEOUT = "timeout", "Timed out"

    class PricingState(models.TextChoices):
        PENDING = "pending", "Pending"
        PRICED = "priced", "Priced"
        UNPRICED = "unpriced", "Unpriced (no model or price card)"

    request_id = models.UUIDField(unique=True, help_text="Minted by Omixa before the first attempt.")
    client_request_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(db_index=True, help_text="When the request arrived.")
    recorded_at = models.DateTimeField(default=timezone.now)
    # Indexed by usage_ws_time (workspace first); pricing rewrites every index of a row it marks.
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="usage_events", db_index=False)
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, related_name="usage_events")
    model_slug = models.CharField(max_length=100)
    route_id = models.BigIntegerField(null=True, help_text="The serving provider key's id (a plain value).")
    route_name = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=40, blank=True)
    endpoint_type = models.CharField(max_length=40, blank=True)
    stream = models.BooleanField(default=False)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    http_status = models.PositiveSmallIntegerField()
    service_tier = models.CharField(max_length=16, blank=True, help_text="The tier the upstream reported.")
    input_tokens = models.PositiveBigIntegerField(default=0, help_text="Uncached input.")
    cached_input_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0, help_text="Includes reasoning.")
    reasoning_tokens = models.PositiveBigIntegerField(default=0, help_text="A part of output, never on top.")
    estimated = models.BooleanField(default=False, help_text="Tokens estimated: the upstream gave no usage.")
    attempts = models.JSONField(default=list, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    first_byte_ms = models.PositiveIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    pricing_state = models.CharField(max_length=10, choices=PricingState.choices, default=PricingState.PENDING)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["workspace", "created_at"], name="usage_ws_time"),
            models.Index(fields=["created_at"], condition=Q(pricing_state="pending"), name="usage_pending_by_time"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(reasoning_tokens__lte=F("output_tokens")), name="usage_reasoning_within_output"
            ),
            models.CheckConstraint(
                condition=Q(outcome__in=["completed", "upstream_error", "broken_stream", "client_gone", "timeout"]),
                name="usage_outcome_valid",
            ),
            models.CheckConstraint(
                condition=Q(pricing_state__in=["pending", "priced", "unpriced"]), name="usage_pricing_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model_slug} {self.outcome}"

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cached_input_tokens + self.cache_write_tokens


class LedgerEntry(models.Model):
    """Priced usage or an adjustment. Append-only; exactly one usage entry per usage event."""

    class Kind(models.TextChoices):
        USAGE = "usage", "Usage"
        ADJUSTMENT = "adjustment", "Adjustment"

    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.USAGE)
    usage_event = models.OneToOneField(
        UsageEvent, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entry"
    )
    # Indexed by ledger_ws_time (workspace first): a second index on the key alone would only slow inserts.
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="ledger_entries", db_index=False)
    model_slug = models.CharField(max_length=100, blank=True)
    occurred_at = models.DateTimeField(db_index=True, help_text="The usage's request time.")
    created_at = models.DateTimeField(default=timezone.now)
    currency = models.CharField(max_length=3, default="USD")
    amount = models.DecimalField(**AMOUNT)
    # A reference to history, not a dependency: the entry keeps the rates it applied, and cards are
    # never deleted (the admin refuses; the ORM's PROTECT still guards a delete). Neither an index nor
    # a database-level check: every priced event would pay for both (a trigger call per row).
    price_card = models.ForeignKey(
        PriceCard, on_delete=models.PROTECT, null=True, blank=True, db_index=False, db_constraint=False
    )
    input_tokens = models.PositiveBigIntegerField(default=0)
    cached_input_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    input_rate = models.DecimalField(**RATE, null=True, blank=True)
    cached_input_rate = models.DecimalField(**RATE, null=True, blank=True)
    cache_write_rate = models.DecimalField(**RATE, null=True, blank=True)
    output_rate = models.DecimalField(**RATE, null=True, blank=True)
    memo = models.CharField(max_length=300, blank=True, help_text="An adjustment's reason (shown on its line).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,  # empty on every priced event, yet each insert would run its check trigger
        help_text="Who issued an adjustment; empty for priced usage.",
    )
    posted_after_period = models.BooleanField(
        default=False,
        help_text="Written after the month it occurred in had ended: the only entries that can be late.",
    )

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [
            models.Index(fields=["workspace", "occurred_at"], name="ledger_ws_time"),
            # Late usage is looked for among these few rows only, never across the whole history.
            models.Index(fields=["occurred_at"], condition=Q(posted_after_period=True), name="ledger_late_candidates"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="usage") & Q(usage_event__isnull=False))
                | (Q(kind="adjustment") & Q(usage_event__isnull=True)),
                name="ledger_usage_has_event",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency}"


class Invoice(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        FINALIZED = "finalized", "Finalized"
        VOID = "void", "Void"

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="invoices")
    period_start = models.DateTimeField(help_text="Inclusive, UTC midnight of the month's first day.")
    period_end = models.DateTimeField(help_text="Exclusive.")
    currency = models.CharField(max_length=3, default="USD")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    number = models.CharField(max_length=40, unique=True, null=True, blank=True)
    total = models.DecimalField(**CENTS, default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=300, blank=True)
    voided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )

    class Meta:
        ordering = ["-period_start", "workspace"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "period_start", "currency"], name="invoice_one_per_workspace_period"
            ),
            models.CheckConstraint(condition=Q(period_end__gt=F("period_start")), name="invoice_period_order"),
            models.CheckConstraint(condition=Q(status__in=["draft", "finalized", "void"]), name="invoice_status_valid"),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(number__isnull=False), name="invoice_closed_has_number"
            ),
            models.CheckConstraint(
                condition=~Q(status="void") | (Q(voided_at__isnull=False) & ~Q(void_reason="")),
                name="invoice_void_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return self.number or f"draft {self.workspace} {self.period_start:%Y-%m}"


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    model_slug = models.CharField(max_length=100, blank=True)
    description = models.CharField(max_length=300)
    is_late = models.BooleanField(default=False, help_text="Usage from an already finalized period.")
    input_tokens = models.PositiveBigIntegerField(default=0)
    cached_input_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="USD")
    amount = models.DecimalField(**CENTS)

    class Meta:
        ordering = ["invoice", "model_slug", "is_late"]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount} {self.currency}"
