"""Operators read the whole audit log here; nobody edits or deletes it."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from audit.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "workspace", "actor_label", "action", "target_type", "target_label"]
    list_filter = ["target_type", "actor_kind", "action", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["action", "actor_label", "target_label", "=target_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # no COUNT(*) over the whole log on every page
    fields = [
        "created_at",
        "workspace",
        "actor_kind",
        "actor_label",
        "actor_user",
        "actor_api_key",
        "action",
        "target_type",
        "target_id",
        "target_label",
        "old_values",
        "new_values",
    ]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="old values")
    def old_values(self, obj: AuditLog) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.old, indent=2, sort_keys=True))

    @admin.display(description="new values")
    def new_values(self, obj: AuditLog) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.new, indent=2, sort_keys=True))
