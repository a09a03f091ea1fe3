"""Operator screens for the catalog, price cards and the (read-only) money trail.

Price history is never rewritten: existing cards are read-only everywhere, a price change is a new
card, and a new card cannot start in the past (usage already priced or waiting would change price).
Usage, ledger and invoices are written by the gateway and the workers only.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin
from django.utils import timezone

from billing.models import Invoice, InvoiceLine, LedgerEntry, Model, PriceCard, UsageEvent

# Lets an operator submit a form prefilled with "now" a few minutes later.
BACKDATE_GRACE = timedelta(minutes=10)


# A card's own fields, in the order the form, the inline and the list show them.
CARD_FIELDS = [
    "service_tier",
    "currency",
    "input_per_1m",
    "cached_input_per_1m",
    "cache_write_per_1m",
    "output_per_1m",
    "effective_from",
]


class PriceCardForm(forms.ModelForm):
    class Meta:
        model = PriceCard
        fields = ["model", *CARD_FIELDS]

    def clean_effective_from(self):
        value = self.cleaned_data["effective_from"]
        if value and value < timezone.now() - BACKDATE_GRACE:
            raise forms.ValidationError(
                "A new card cannot start in the past: usage already recorded keeps the price it had."
            )
        return value


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the gateway and the workers: operators look, they do not touch."""

    show_full_result_count = False  # no COUNT(*) over the whole table on every page

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class PriceCardInline(admin.TabularInline):
    model = PriceCard
    form = PriceCardForm
    extra = 0
    can_delete = False
    fields = CARD_FIELDS

    def has_change_permission(self, request, obj=None) -> bool:
        # Existing rows render read-only; the "add another" row stays available.
        return False


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "name",
        "provider",
        "endpoint_type",
        "context_window",
        "max_output_tokens",
        "reasoning",
        "is_active",
    ]
    list_filter = ["provider", "endpoint_type", "reasoning", "is_active"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [PriceCardInline]

    def get_readonly_fields(self, request, obj=None):
        # The slug is the public model id (and may hold dots, which a slug form field refuses).
        return [*self.readonly_fields, "slug"] if obj is not None else self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deactivate instead; price cards and usage refer to it


@admin.register(PriceCard)
class PriceCardAdmin(admin.ModelAdmin):
    form = PriceCardForm
    list_display = ["model", *CARD_FIELDS]
    list_filter = ["model", "service_tier", "currency"]
    list_select_related = ["model"]
    date_hierarchy = "effective_from"

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class UnpricedFirstFilter(admin.SimpleListFilter):
    """Pricing state, with the states that need an operator (unpriced, pending) named first."""

    title = "pricing state"
    parameter_name = "pricing_state"

    def lookups(self, request, model_admin):
        return [
            (UsageEvent.PricingState.UNPRICED, "Unpriced (needs a model or price card)"),
            (UsageEvent.PricingState.PENDING, "Pending"),
            (UsageEvent.PricingState.PRICED, "Priced"),
        ]

    def queryset(self, request, queryset):
        return queryset.filter(pricing_state=self.value()) if self.value() else queryset


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "workspace",
        "model_slug",
        "route_name",
        "outcome",
        "http_status",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "estimated",
        "pricing_state",
    ]
    # No model_slug filter: it would SELECT DISTINCT over the whole usage table on every page.
    list_filter = [UnpricedFirstFilter, "outcome", "workspace", "stream", "estimated"]
    list_select_related = ["workspace"]
    search_fields = ["=request_id", "=client_request_id"]
    date_hierarchy = "created_at"


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "workspace", "kind", "model_slug", "amount", "currency", "price_card"]
    list_filter = ["kind", "currency", "workspace"]
    list_select_related = ["workspace", "price_card__model"]
    date_hierarchy = "occurred_at"
    raw_id_fields = ["usage_event", "price_card"]


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "workspace", "period_start", "status", "currency", "total", "finalized_at"]
    list_filter = ["status", "currency", "workspace"]
    list_select_related = ["workspace"]
    date_hierarchy = "period_start"
    inlines = [InvoiceLineInline]
