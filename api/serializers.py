"""Shapes of the management API. Money is a decimal string, never a float."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audit.models import AuditLog
from billing.models import Invoice, InvoiceLine, UsageEvent
from billing.pricing import format_cost
from workspaces.models import ApiKey, Membership, Workspace
from workspaces.services import ROTATION_MAX_GRACE


class Money(serializers.DecimalField):
    """An exact amount as a decimal string without trailing zeros ("0.0015", "12"): ledger amounts
    keep 16 decimal places, and `1.5000000000000000` would only hide the number."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_digits", 32)
        kwargs.setdefault("decimal_places", 16)
        kwargs["coerce_to_string"] = True
        super().__init__(**kwargs)

    def to_representation(self, value) -> str:
        return format_cost(Decimal(value))


def cents() -> serializers.DecimalField:
    """An invoice amount: two decimals, as a string ("12.30")."""
    return serializers.DecimalField(max_digits=18, decimal_places=2, coerce_to_string=True, read_only=True)


# --- workspaces -----------------------------------------------------------------------------------


class WorkspaceLimitsSerializer(serializers.Serializer):
    """Limits shared by all the workspace's keys (each key may have its own too); null clears one."""

    rpm_limit = serializers.IntegerField(min_value=1, max_value=2**31 - 1, allow_null=True, required=False)
    tpm_limit = serializers.IntegerField(min_value=1, max_value=2**31 - 1, allow_null=True, required=False)
    budget_amount = serializers.DecimalField(
        max_digits=18, decimal_places=6, min_value=Decimal(0), allow_null=True, required=False, coerce_to_string=True
    )
    # The key's choices: the same values, and one enum in the schema instead of two.
    budget_period = serializers.ChoiceField(choices=ApiKey.BudgetPeriod.choices, required=False)
    limits_fail_mode = serializers.ChoiceField(
        choices=Workspace.FailMode.choices,
        required=False,
        help_text="When the limits store (Redis) is unreachable: `open` admits requests, `closed` refuses them.",
    )


class WorkspaceSerializer(WorkspaceLimitsSerializer):
    slug = serializers.SlugField(read_only=True)
    name = serializers.CharField(read_only=True)
    currency = serializers.CharField(read_only=True)
    role = serializers.ChoiceField(choices=Membership.Role.choices, read_only=True, help_text="Your role here.")


# --- API keys -------------------------------------------------------------------------------------


class ApiKeySerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()
    budget_amount = serializers.DecimalField(
        max_digits=18, decimal_places=6, coerce_to_string=True, allow_null=True, read_only=True
    )

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "scope",
            "prefix",
            "status",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "allowed_models",
            "rpm_limit",
            "tpm_limit",
            "budget_amount",
            "budget_period",
        ]
        read_only_fields = fields

    def get_status(self, obj: ApiKey) -> str:
        if obj.revoked_at is not None:
            return "revoked"
        return "active" if obj.is_active else "expired"


class KeyQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["active", "revoked", "expired"], required=False, help_text="Only keys in this state."
    )
    scope = serializers.ChoiceField(choices=ApiKey.Scope.choices, required=False, help_text="Only keys of this scope.")


class ApiKeyLimitsSerializer(serializers.Serializer):
    """A key's limits; every field optional, null clears one (PATCH changes only what it names)."""

    rpm_limit = serializers.IntegerField(min_value=1, max_value=2**31 - 1, allow_null=True, required=False)
    tpm_limit = serializers.IntegerField(min_value=1, max_value=2**31 - 1, allow_null=True, required=False)
    budget_amount = serializers.DecimalField(
        max_digits=18, decimal_places=6, min_value=Decimal(0), allow_null=True, required=False, coerce_to_string=True
    )
    budget_period = serializers.ChoiceField(choices=ApiKey.BudgetPeriod.choices, required=False)
    allowed_models = serializers.ListField(
        child=serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$", max_length=100),
        max_length=200,
        required=False,
        help_text="Model ids this key may call; empty: every model.",
    )
    expires_at = serializers.DateTimeField(allow_null=True, required=False)


class ApiKeyCreateSerializer(ApiKeyLimitsSerializer):
    name = serializers.CharField(max_length=120)
    scope = serializers.ChoiceField(
        choices=ApiKey.Scope.choices,
        default=ApiKey.Scope.INFERENCE,
        help_text="`inference` (omx_live_…) for the gateway; `admin` (omx_admin_…) for this API, owners only.",
    )


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The secret. Shown in this response only: store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ApiKeyRotateSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        min_value=0,
        max_value=int(ROTATION_MAX_GRACE.total_seconds()),
        default=0,
        help_text="0: the old key is revoked now. Otherwise it keeps working this long (it expires then).",
    )


class ApiKeyRotatedSerializer(serializers.Serializer):
    key = ApiKeyCreatedSerializer(help_text="The new key, with its secret (shown this once).")
    old_key = ApiKeySerializer(help_text="The replaced key: revoked, or expiring after the grace.")


# --- members --------------------------------------------------------------------------------------


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email"]
        read_only_fields = fields


class MemberSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "created_at"]
        read_only_fields = fields


class MemberCreateSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=254, help_text="An existing user's username or email.")
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


# --- usage ----------------------------------------------------------------------------------------

GROUP_BY = ("day", "model", "key")


class UsageQuerySerializer(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=GROUP_BY, default="day")
    start = serializers.DateTimeField(
        required=False, help_text="Inclusive, ISO 8601 (a date is UTC midnight). Default: 30 days before `end`."
    )
    end = serializers.DateTimeField(required=False, help_text="Exclusive, ISO 8601. Default: now.")
    model = serializers.CharField(required=False, max_length=100, help_text="Only this model.")
    key = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1, help_text="Only this key's id.")


class UsageTotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField(help_text="Uncached input.")
    cached_input_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField(help_text="Includes reasoning.")
    reasoning_tokens = serializers.IntegerField()
    cost = Money(help_text="Sum of the priced requests' ledger amounts, exact.")
    unpriced_requests = serializers.IntegerField(help_text="Requests without a price yet (pending or no card).")


class UsageRowSerializer(UsageTotalsSerializer):
    group = serializers.CharField(help_text="The UTC day (YYYY-MM-DD), the model id, or the key id.")
    key_name = serializers.CharField(allow_null=True, help_text="group_by=key: the key's name.")
    key_prefix = serializers.CharField(allow_null=True, help_text="group_by=key: the key's prefix.")


class UsageReportSerializer(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=GROUP_BY)
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    currency = serializers.CharField()
    data = UsageRowSerializer(many=True)
    total = UsageTotalsSerializer()


# --- requests -------------------------------------------------------------------------------------


class RequestQuerySerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False, help_text="Inclusive. Default: 30 days before `end`.")
    end = serializers.DateTimeField(required=False, help_text="Exclusive. Default: now.")
    model = serializers.CharField(required=False, max_length=100)
    key = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    outcome = serializers.ChoiceField(choices=UsageEvent.Outcome.choices, required=False)


class AttemptSerializer(serializers.Serializer):
    route_id = serializers.IntegerField(allow_null=True)
    route = serializers.CharField(allow_blank=True)
    outcome = serializers.CharField()
    status = serializers.IntegerField(required=False, allow_null=True)
    ms = serializers.FloatField(required=False, allow_null=True, help_text="How long the attempt took.")


class RouteSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="route_id", allow_null=True)
    name = serializers.CharField(source="route_name")
    provider = serializers.CharField()
    endpoint_type = serializers.CharField()


class KeyRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()


class TokensSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(help_text="input + cached input + cache write.")
    input_tokens = serializers.IntegerField(help_text="Uncached input.")
    cached_input_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField(source="output_tokens", help_text="Includes reasoning.")
    reasoning_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class RequestRecordSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model_slug")
    key = serializers.SerializerMethodField()
    route = serializers.SerializerMethodField()
    status = serializers.CharField(source="outcome", help_text="completed, upstream_error, broken_stream, ...")
    usage = serializers.SerializerMethodField()
    attempts = AttemptSerializer(many=True)
    cost = serializers.SerializerMethodField(help_text="The ledger amount, exact; null until priced.")
    currency = serializers.SerializerMethodField()

    class Meta:
        model = UsageEvent
        fields = [
            "request_id",
            "client_request_id",
            "created_at",
            "model",
            "key",
            "stream",
            "status",
            "http_status",
            "error_code",
            "route",
            "attempts",
            "latency_ms",
            "first_byte_ms",
            "service_tier",
            "usage",
            "estimated",
            "pricing_state",
            "cost",
            "currency",
        ]
        read_only_fields = fields

    @extend_schema_field(KeyRefSerializer(allow_null=True))
    def get_key(self, obj: UsageEvent) -> dict | None:
        key = obj.api_key
        return {"id": key.pk, "name": key.name, "prefix": key.prefix} if key is not None else None

    @extend_schema_field(RouteSerializer(allow_null=True))
    def get_route(self, obj: UsageEvent) -> dict | None:
        if obj.route_id is None and not obj.route_name:
            return None
        return RouteSerializer(obj).data

    @extend_schema_field(TokensSerializer)
    def get_usage(self, obj: UsageEvent) -> dict:
        prompt = obj.prompt_tokens
        return {
            "prompt_tokens": prompt,
            "input_tokens": obj.input_tokens,
            "cached_input_tokens": obj.cached_input_tokens,
            "cache_write_tokens": obj.cache_write_tokens,
            "completion_tokens": obj.output_tokens,
            "reasoning_tokens": obj.reasoning_tokens,
            "total_tokens": prompt + obj.output_tokens,
        }

    def _entry(self, obj: UsageEvent):
        try:
            return obj.ledger_entry
        except UsageEvent.ledger_entry.RelatedObjectDoesNotExist:
            return None

    @extend_schema_field(Money(allow_null=True))
    def get_cost(self, obj: UsageEvent) -> str | None:
        entry = self._entry(obj)
        return format_cost(entry.amount) if entry is not None else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_currency(self, obj: UsageEvent) -> str | None:
        entry = self._entry(obj)
        return entry.currency if entry is not None else obj.workspace.currency


# --- invoices -------------------------------------------------------------------------------------


class InvoiceQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Invoice.Status.choices, required=False)
    period = serializers.RegexField(
        r"^\d{4}-(0[1-9]|1[0-2])$", required=False, help_text="A month, YYYY-MM (the period's start)."
    )

    def validate_period(self, value: str) -> datetime:
        try:
            return datetime.strptime(value, "%Y-%m").replace(tzinfo=UTC)
        except ValueError:  # year 0000: the pattern matches, the calendar has no such month
            raise serializers.ValidationError("Not a month: expected YYYY-MM with a year from 0001.") from None


class InvoiceLineSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model_slug")
    amount = cents()

    class Meta:
        model = InvoiceLine
        fields = [
            "id",
            "description",
            "model",
            "is_late",
            "input_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "output_tokens",
            "amount",
            "currency",
        ]
        read_only_fields = fields


class InvoiceSerializer(serializers.ModelSerializer):
    total = cents()

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "status",
            "period_start",
            "period_end",
            "currency",
            "total",
            "created_at",
            "updated_at",
            "finalized_at",
            "voided_at",
            "void_reason",
        ]
        read_only_fields = fields


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True, read_only=True)

    class Meta(InvoiceSerializer.Meta):
        fields = [*InvoiceSerializer.Meta.fields, "lines"]
        read_only_fields = fields


# --- audit ----------------------------------------------------------------------------------------


class AuditQuerySerializer(serializers.Serializer):
    action = serializers.CharField(required=False, max_length=64, help_text="e.g. api_key.revoke")
    target_type = serializers.ChoiceField(
        choices=["api_key", "member", "workspace", "invoice", "ledger_entry"],
        required=False,
        help_text="What was changed.",
    )
    target_id = serializers.CharField(required=False, max_length=64)
    start = serializers.DateTimeField(required=False, help_text="Inclusive.")
    end = serializers.DateTimeField(required=False, help_text="Exclusive.")


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    old = serializers.JSONField(
        allow_null=True, help_text="The values before (only what changed); null for a creation."
    )
    new = serializers.JSONField(allow_null=True, help_text="The values after (only what changed); null for a removal.")

    class Meta:
        model = AuditLog
        fields = ["id", "created_at", "actor", "action", "target_type", "target_id", "target_label", "old", "new"]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": ["user", "api_key", "system"]},
                "label": {"type": "string"},
                "user_id": {"type": "integer", "nullable": True},
                "key_id": {"type": "integer", "nullable": True},
            },
            "required": ["kind", "label", "user_id", "key_id"],
        }
    )
    def get_actor(self, obj: AuditLog) -> dict:
        return {
            "kind": obj.actor_kind,
            "label": obj.actor_label,
            "user_id": obj.actor_user_id,
            "key_id": obj.actor_api_key_id,
        }
