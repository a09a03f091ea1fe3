"""Operator screens for provider keys (routes) and their failover order.

The changelist edits `priority` and `enabled` in place. The secret is write-only: required when a
key is added, optional on change (empty keeps the current one), and never rendered back.
"""

from __future__ import annotations

import threading

from django import forms
from django.contrib import admin, messages
from django.db import models, transaction
from django.utils.translation import ngettext

from audit import services as audit
from gateway.breaker import shared_states
from gateway.models import ProviderKey
from gateway.services import (
    ProviderKeyError,
    normalize_base_url,
    provider_key_add,
    provider_key_enable,
    provider_key_record_change,
    provider_key_snapshot,
    resolve_endpoint_type,
)


class ProviderKeyForm(forms.ModelForm):
    base_url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        help_text="The provider's root, e.g. https://RES.openai.azure.com (a trailing /v1 or /openai/v1 is dropped).",
    )
    secret = forms.CharField(
        label="API key (secret)",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted. Leave empty to keep the current secret.",
    )

    class Meta:
        model = ProviderKey
        fields = [
            "model",
            "name",
            "provider",
            "endpoint_type",
            "base_url",
            "deployment",
            "api_version",
            "secret",
            "priority",
            "enabled",
            "supports_priority",
            "store",
            "connect_timeout",
            "first_byte_timeout",
            "idle_timeout",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            self.fields["secret"].required = True
            self.fields["secret"].help_text = "Stored encrypted; never shown again."
            # Defaults the service fills in: PROVIDER-N, the provider's endpoint type, the model slug.
            for name in ("name", "endpoint_type", "deployment"):
                if name in self.fields:
                    self.fields[name].required = False
            if "name" in self.fields:
                self.fields["name"].help_text = "Empty: PROVIDER-N, unique for the model."

    def clean_base_url(self) -> str:
        try:
            return normalize_base_url(self.cleaned_data["base_url"])
        except ProviderKeyError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self):
        cleaned = super().clean()
        provider = cleaned.get("provider")
        if provider:
            try:
                cleaned["endpoint_type"] = resolve_endpoint_type(
                    provider=provider, endpoint_type=cleaned.get("endpoint_type") or None
                )
            except ProviderKeyError as exc:
                self.add_error("endpoint_type", str(exc))
        model, name = cleaned.get("model"), (cleaned.get("name") or "").strip()
        if model and name:
            clash = ProviderKey.objects.filter(model=model, name=name).exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("name", f"{model.slug} already has a provider key named {name!r}.")
        return cleaned


_page = threading.local()


@admin.register(ProviderKey)
class ProviderKeyAdmin(admin.ModelAdmin):
    form = ProviderKeyForm
    # Django 6 turns https into the default scheme; say so now (and silence the transition warning).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = [
        "name",
        "model",
        "provider",
        "endpoint_type",
        "base_url",
        "deployment",
        "priority",
        "enabled",
        "health",
        "disabled_reason",
        "supports_priority",
    ]
    list_display_links = ["name"]
    list_editable = ["priority", "enabled"]
    list_filter = ["model", "provider", "endpoint_type", "enabled"]
    list_select_related = ["model"]
    search_fields = ["name", "model__slug", "deployment", "base_url"]
    ordering = ["model__slug", "priority", "id"]
    readonly_fields = ["disabled_reason", "disabled_at", "created_at", "updated_at"]
    actions = ["reenable_selected"]

    def changelist_view(self, request, extra_context=None):
        # Read every route's breaker state once per page (Redis when shared, else this process).
        _page.states = shared_states()
        return super().changelist_view(request, extra_context)

    @admin.display(description="Health")
    def health(self, obj: ProviderKey) -> str:
        if obj.disabled_reason:
            return "out of rotation"
        if not obj.enabled:
            return "disabled"
        return {"open": "cooling down", "half_open": "probing", "disabled": "out of rotation"}.get(
            getattr(_page, "states", {}).get(obj.pk, "closed"), "healthy"
        )

    def save_model(self, request, obj, form, change) -> None:
        secret = form.cleaned_data.get("secret")
        if change:
            # The change form and the changelist's priority/enabled edits both land here, inside the
            # admin's transaction: the audit row commits with the change.
            before = provider_key_snapshot(ProviderKey.objects.get(pk=obj.pk))
            if secret:
                obj.set_secret(secret)
            super().save_model(request, obj, form, change)
            provider_key_record_change(
                provider_key=obj, before=before, acting_user=request.user, secret_changed=bool(secret)
            )
            return
        data = form.cleaned_data
        key = provider_key_add(
            model_slug=data["model"].slug,
            provider=data["provider"],
            base_url=data["base_url"],
            api_key=secret,
            priority=data["priority"],
            deployment=data.get("deployment") or "",
            api_version=data.get("api_version") or "",
            endpoint_type=data.get("endpoint_type") or None,
            name=data.get("name") or None,
            supports_priority=data.get("supports_priority", False),
            store=data.get("store", False),
            enabled=data.get("enabled", True),
            connect_timeout=data.get("connect_timeout"),
            first_byte_timeout=data.get("first_byte_timeout"),
            idle_timeout=data.get("idle_timeout"),
            acting_user=request.user,
        )
        # The admin goes on with `obj` (log entry, redirect): make it the saved row.
        for field in ProviderKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(key, field.attname))
        obj._state.adding = False
        obj._state.db = key._state.db

    def delete_model(self, request, obj) -> None:
        with transaction.atomic():
            audit.record(request.user, "provider_key.delete", obj, provider_key_snapshot(obj), None)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            for obj in queryset:
                audit.record(request.user, "provider_key.delete", obj, provider_key_snapshot(obj), None)
            super().delete_queryset(request, queryset)

    @admin.action(description="Re-enable selected keys (clear the disabled reason)")
    def reenable_selected(self, request, queryset) -> None:
        count = 0
        for key in queryset:
            provider_key_enable(provider_key=key, acting_user=request.user)
            count += 1
        self.message_user(
            request, ngettext("%d key re-enabled.", "%d keys re-enabled.", count) % count, level=messages.SUCCESS
        )
