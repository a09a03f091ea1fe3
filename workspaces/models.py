from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Workspace(models.Model):
    class BudgetPeriod(models.TextChoices):
        NONE = "none", "No budget"
        DAY = "day", "Per day (UTC)"
        MONTH = "month", "Per month (UTC)"

    class FailMode(models.TextChoices):
        OPEN = "open", "Open: admit requests when the limits store is unreachable"
        CLOSED = "closed", "Closed: refuse requests (503) when the limits store is unreachable"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=64, unique=True)
    currency = models.CharField(max_length=3, default="USD")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Limits for every key of the workspace together (each key may have its own on top).
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute.")
    budget_amount = models.DecimalField(
        max_digits=18,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="Spend allowed per budget period, in the workspace's currency.",
    )
    budget_period = models.CharField(max_length=8, choices=BudgetPeriod.choices, default=BudgetPeriod.NONE)
    limits_fail_mode = models.CharField(max_length=8, choices=FailMode.choices, default=FailMode.OPEN)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(budget_amount__isnull=True) | Q(budget_amount__gte=0), name="workspace_budget_nonneg"
            ),
            models.CheckConstraint(
                condition=Q(budget_period__in=["none", "day", "month"]), name="workspace_budget_period_valid"
            ),
            models.CheckConstraint(
                condition=Q(limits_fail_mode__in=["open", "closed"]), name="workspace_fail_mode_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        DEVELOPER = "developer", "Developer"
        FINANCE = "finance", "Finance"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.DEVELOPER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="membership_unique_user_workspace"),
            models.CheckConstraint(
                condition=Q(role__in=["owner", "admin", "developer", "finance"]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"


class ApiKey(models.Model):
    """A workspace key. Only the SHA-256 of the secret is stored; the secret is shown once."""

    class Scope(models.TextChoices):
        INFERENCE = "inference", "Inference (omx_live_…)"
        ADMIN = "admin", "Management API (omx_admin_…)"

    class BudgetPeriod(models.TextChoices):
        NONE = "none", "No budget"
        DAY = "day", "Per day"
        MONTH = "month", "Per month"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=120)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.INFERENCE)
    prefix = models.CharField(max_length=24, help_text="Shown in lists so a key can be recognised.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Model slugs this key may call; empty means every model."
    )
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute.")
    budget_amount = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True, validators=[MinValueValidator(Decimal(0))]
    )
    budget_period = models.CharField(max_length=8, choices=BudgetPeriod.choices, default=BudgetPeriod.NONE)

    class Meta:
        ordering = ["workspace", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name"],
                condition=Q(revoked_at__isnull=True),
                name="apikey_unique_active_name",
            ),
            models.CheckConstraint(condition=Q(scope__in=["inference", "admin"]), name="apikey_scope_valid"),
            models.CheckConstraint(condition=Q(key_hash__regex=r"^[0-9a-f]{64}$"), name="apikey_hash_is_sha256_hex"),
            models.CheckConstraint(
                condition=Q(budget_amount__isnull=True) | Q(budget_amount__gte=0), name="apikey_budget_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class ConfigRevision(models.Model):
    """One counter, bumped in the same transaction as any change the gateway caches.

    Gateway workers poll it off the request path and reload their snapshot when it moves, so a
    revoked key or a re-ordered route reaches every worker within seconds.
    """

    value = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"config revision {self.value}"
