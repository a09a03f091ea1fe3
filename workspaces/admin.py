"""Operator screens for workspaces and API keys.

Keys are issued through `api_key_issue`: the add form never sees a secret, and the secret is
rendered once in the response to the add itself (not in a flash message, which would travel in a
cookie or sit in the session store).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.template import engines
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import ngettext

from audit import services as audit
from workspaces.models import ApiKey, Membership, Workspace
from workspaces.services import (
    API_KEY_AUDIT_FIELDS,
    MEMBER_AUDIT_FIELDS,
    WORKSPACE_LIMIT_FIELDS,
    api_key_issue,
    api_key_revoke,
)

# Inline, so that the one page that ever shows a secret lives next to the code that issues it.
_KEY_CREATED_PAGE = """{% extends "admin/base_site.html" %}
{% block content %}
<p>The API key <strong>{{ key.name }}</strong> ({{ key.prefix }}…) for workspace
<strong>{{ key.workspace.slug }}</strong> was created.</p>
<p>Copy the key now. Omixa stores only its hash: it cannot be shown again.</p>
<p><input type="text" readonly size="60" value="{{ secret }}" id="omixa-new-key" onclick="this.select()"></p>
<p><a href="{{ change_url }}">Continue to the key</a> · <a href="{{ changelist_url }}">All keys</a></p>
{% endblock %}"""


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["name", "prefix", "scope", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # keys are issued on the API key screen, which shows the secret once

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "currency", "created_at"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    inlines = [MembershipInline, ApiKeyInline]

    def save_model(self, request, obj, form, change) -> None:
        stored = Workspace.objects.filter(pk=obj.pk).first() if change else None
        before = audit.snapshot(stored, WORKSPACE_LIMIT_FIELDS) if stored is not None else None
        super().save_model(request, obj, form, change)
        if before is not None:
            old, new = audit.changed(before, audit.snapshot(obj, WORKSPACE_LIMIT_FIELDS))
            if new:
                audit.record(request.user, "workspace.update", obj, old, new)

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)
            return
        # Inside the admin's transaction: each membership added, changed or removed gets its audit row.
        # Read afresh: the formset's own rows already carry the submitted values.
        stored = Membership.objects.filter(workspace_id=form.instance.pk) if form.instance.pk else []
        before = {m.pk: audit.snapshot(m, MEMBER_AUDIT_FIELDS) for m in stored}
        for deleted in formset.deleted_forms:
            if deleted.instance.pk is not None:
                audit.record(request.user, "member.remove", deleted.instance, before.get(deleted.instance.pk), None)
        super().save_formset(request, form, formset, change)
        for added in formset.new_objects:
            audit.record(request.user, "member.add", added, None, audit.snapshot(added, MEMBER_AUDIT_FIELDS))
        for changed, _fields in formset.changed_objects:
            old, new = audit.changed(before.get(changed.pk, {}), audit.snapshot(changed, MEMBER_AUDIT_FIELDS))
            if new:
                action = "member.role_change" if set(new) == {"role"} else "member.update"
                audit.record(request.user, action, changed, old, new)

    fieldsets = [
        (None, {"fields": ["name", "slug", "currency", "created_at", "updated_at"]}),
        (
            "Limits (for all the workspace's keys together; each key may have its own too)",
            {"fields": ["rpm_limit", "tpm_limit", "budget_amount", "budget_period", "limits_fail_mode"]},
        ),
    ]


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        return queryset


class ApiKeyForm(forms.ModelForm):
    """Checks the one-active-key-per-name rule in words; a field error also skips the raw constraint message."""

    def clean(self):
        cleaned = super().clean()
        workspace = cleaned.get("workspace") or getattr(self.instance, "workspace", None)
        name = (cleaned.get("name") or "").strip()
        if workspace and name and self.instance.revoked_at is None:
            clash = ApiKey.objects.filter(workspace=workspace, name=name, revoked_at__isnull=True)
            if self.instance.pk:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("name", f"{workspace.slug} already has an active key named {name!r}: revoke it first.")
        expires_at = cleaned.get("expires_at")
        if expires_at and not self.instance.pk and expires_at <= timezone.now():
            self.add_error("expires_at", "This time is in the past: the key would never work.")
        return cleaned


class ApiKeyAddForm(ApiKeyForm):
    class Meta:
        model = ApiKey
        fields = [
            "workspace",
            "name",
            "scope",
            "expires_at",
            "allowed_models",
            "rpm_limit",
            "tpm_limit",
            "budget_amount",
            "budget_period",
        ]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "workspace",
        "prefix",
        "scope",
        "status",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = [ApiKeyStatusFilter, "scope", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["name", "prefix", "workspace__slug"]
    actions = ["revoke_selected"]
    # key_hash is editable=False and listed nowhere: a hash is not a secret, but nobody needs to see it.
    change_readonly = ["workspace", "scope", "prefix", "created_at", "updated_at", "last_used_at", "revoked_at"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ApiKeyAddForm if obj is None else ApiKeyForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ApiKeyAddForm._meta.fields
        return [*self.change_readonly[:3], "name", *ApiKeyAddForm._meta.fields[3:], *self.change_readonly[3:]]

    def get_readonly_fields(self, request, obj=None):
        return self.change_readonly if obj is not None else []

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: usage rows keep pointing at the key

    @admin.display(description="status")
    def status(self, obj: ApiKey) -> str:
        if obj.revoked_at:
            return "revoked"
        return "active" if obj.is_active else "expired"

    def save_model(self, request, obj, form, change) -> None:
        if change:
            # Inside the admin's transaction, so the audit row commits (or rolls back) with the change.
            before = audit.snapshot(ApiKey.objects.get(pk=obj.pk), API_KEY_AUDIT_FIELDS)
            super().save_model(request, obj, form, change)
            old, new = audit.changed(before, audit.snapshot(obj, API_KEY_AUDIT_FIELDS))
            if new:
                audit.record(request.user, "api_key.update", obj, old, new)
            return
        data = form.cleaned_data
        # A WorkspaceError here is a race the form's clean() could not see; nothing was created.
        key, secret = api_key_issue(
            workspace=data["workspace"],
            name=data["name"],
            scope=data["scope"],
            expires_at=data.get("expires_at"),
            allowed_models=data.get("allowed_models") or [],
            rpm_limit=data.get("rpm_limit"),
            tpm_limit=data.get("tpm_limit"),
            budget_amount=data.get("budget_amount"),
            budget_period=data.get("budget_period") or ApiKey.BudgetPeriod.NONE,
            acting_user=request.user,
        )
        # The admin goes on with `obj` (log entry, redirect): make it the issued row.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(key, field.attname))
        obj._state.adding = False
        obj._state.db = key._state.db
        request._omixa_issued_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_omixa_issued_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "opts": self.opts,
            "key": obj,
            "secret": secret,
            "change_url": reverse("admin:workspaces_apikey_change", args=[obj.pk]),
            "changelist_url": reverse("admin:workspaces_apikey_changelist"),
        }
        page = engines["django"].from_string(_KEY_CREATED_PAGE)
        response = HttpResponse(page.render(context, request))
        # The page holds a secret: no browser or proxy cache may keep it (this sets no-store).
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request, queryset) -> None:
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=key, acting_user=request.user)
            revoked += 1
        self.message_user(
            request, ngettext("%d key revoked.", "%d keys revoked.", revoked) % revoked, level=messages.SUCCESS
        )
