"""Operator screens for the catalog, price cards and the (read-only) money trail.

Price history is never rewritten: existing cards are read-only everywhere, a price change is a new
card, and a new card cannot start in the past (usage already priced or waiting would change price).
Usage, ledger and invoices are written by the gateway and the workers only; the two corrections
finance makes (void a finalized invoice, credit a workspace) are invoice actions that ask for a
reason and call `billing.services`, which append (a credit is a new ledger entry) and never edit.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils import timezone

from billing.models import Invoice, InvoiceLine, LedgerEntry, Model, PriceCard, UsageEvent
from billing.services import BillingError, credit_issue, invoice_void

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


def _audit_new_card(request, card: PriceCard) -> None:
    from audit import services as audit  # imported here: price cards are the audit app's only hook in billing

    # Inside the admin's transaction: the card and its audit row commit together (operator-global: no workspace).
    audit.record(request.user, "price_card.create", card, None, audit.snapshot(card, ["model", *CARD_FIELDS]))


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

    def save_formset(self, request, form, formset, change) -> None:
        super().save_formset(request, form, formset, change)
        if formset.model is PriceCard:
            for card in formset.new_objects:  # the inline only adds (existing cards are read-only)
                _audit_new_card(request, card)


@admin.register(PriceCard)
class PriceCardAdmin(admin.ModelAdmin):
    form = PriceCardForm
    list_display = ["model", *CARD_FIELDS]
    list_filter = ["model", "service_tier", "currency"]
    list_select_related = ["model"]
    date_hierarchy = "effective_from"

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        _audit_new_card(request, obj)

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
    list_display = ["occurred_at", "workspace", "kind", "model_slug", "amount", "currency", "memo", "created_by"]
    list_filter = ["kind", "currency", "workspace"]
    list_select_related = ["workspace", "price_card__model", "created_by"]
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


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=300, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class CreditForm(ReasonForm):
    amount = forms.DecimalField(min_value=Decimal("0.01"), max_digits=16, decimal_places=2, help_text="Whole cents.")

    field_order = ["amount", "reason"]


def _ask(request, modeladmin, queryset, *, form, action: str, title: str, intro: str, submit: str):
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.model._meta,
        "title": title,
        "intro": intro,
        "submit": submit,
        "form": form,
        "action": action,
        "invoices": queryset.select_related("workspace"),
    }
    return TemplateResponse(request, "admin/billing/invoice/action_with_reason.html", context)


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "workspace", "period_start", "status", "currency", "total", "finalized_at"]
    list_filter = ["status", "currency", "workspace"]
    list_select_related = ["workspace"]
    date_hierarchy = "period_start"
    inlines = [InvoiceLineInline]
    actions = ["void_selected", "credit_workspace"]

    def has_void_permission(self, request) -> bool:
        return request.user.has_perm("billing.change_invoice")

    def has_credit_permission(self, request) -> bool:
        return request.user.has_perm("billing.add_ledgerentry")

    @admin.action(permissions=["void"], description="Void the selected finalized invoices (asks for a reason)")
    def void_selected(self, request, queryset):
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return _ask(
                request,
                self,
                queryset,
                form=form,
                action="void_selected",
                title="Void invoices",
                intro="A void cancels an invoice: it is no longer owed. Its number, lines and usage stay on record "
                "and nothing is billed again. To correct part of an invoice, issue a credit instead.",
                submit="Void",
            )
        voided = 0
        for invoice in queryset.order_by("id"):
            try:
                invoice_void(invoice=invoice, reason=form.cleaned_data["reason"], by=request.user)
                voided += 1
            except BillingError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        if voided:
            self.message_user(request, f"{voided} invoice{'s' if voided != 1 else ''} voided.", messages.SUCCESS)
        return None

    @admin.action(
        permissions=["credit"], description="Credit the workspace of the selected invoice (asks for a reason)"
    )
    def credit_workspace(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(
                request, "Select exactly one invoice: its workspace and currency get the credit.", messages.ERROR
            )
            return None
        form = CreditForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return _ask(
                request,
                self,
                queryset,
                form=form,
                action="credit_workspace",
                title="Credit a workspace",
                intro="The credit is a new ledger entry dated now: it appears as its own negative line on the "
                "workspace's invoice for the current month at the next roll-up. Finalized invoices never change.",
                submit="Issue credit",
            )
        invoice = queryset.select_related("workspace").get()
        try:
            entry = credit_issue(
                workspace=invoice.workspace,
                amount=form.cleaned_data["amount"],
                currency=invoice.currency,
                reason=form.cleaned_data["reason"],
                by=request.user,
            )
        except BillingError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        self.message_user(
            request,
            f"Credit of {-entry.amount} {entry.currency} issued to {invoice.workspace}; "
            f"it appears on the {entry.occurred_at:%Y-%m} invoice.",
            messages.SUCCESS,
        )
        return None
