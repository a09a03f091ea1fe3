"""Who changed what, when: one row per change to keys, members, provider keys, failover order and
prices, written by `audit.services.record` in the same transaction as the change itself."""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from workspaces.models import ApiKey, Workspace


class AuditLog(models.Model):
    class ActorKind(models.TextChoices):
        USER = "user", "User"
        API_KEY = "api_key", "Management API key"
        SYSTEM = "system", "System"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Null for operator-global objects (provider keys, price cards). A workspace that is deleted takes
    # its log with it; one with usage cannot be deleted (usage and ledger rows protect it).
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, null=True, blank=True, related_name="audit_entries"
    )
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Kept in words as well, so that the row still says who it was after the user or key is gone.
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=64, help_text="e.g. api_key.create, member.role_change")
    target_type = models.CharField(max_length=64, help_text="api_key, member, provider_key, price_card")
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    old = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    new = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="audit_ws_time"),
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(actor_kind__in=["user", "api_key", "system"]), name="audit_actor_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target_label}"
