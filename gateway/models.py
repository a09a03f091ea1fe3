from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from billing.models import Model
from gateway.crypto import decrypt_secret, encrypt_secret


class Provider(models.TextChoices):
    AZURE_OPENAI = "azure-openai", "Azure OpenAI"
    OPENAI = "openai", "OpenAI"
    GOOGLE_VERTEX = "google-vertex", "Google Vertex AI"
    ANTHROPIC = "anthropic", "Anthropic"
    SIMULATED = "simulated", "Local simulator (offline demo)"


class EndpointType(models.TextChoices):
    AZURE_OPENAI_V1_CHAT = "azure_openai_v1_chat", "Azure OpenAI v1 chat completions"
    OPENAI_CHAT = "openai_chat", "OpenAI chat completions"
    AZURE_OPENAI_V1_RESPONSES = "azure_openai_v1_responses", "Azure OpenAI v1 Responses"
    OPENAI_RESPONSES = "openai_responses", "OpenAI Responses"
    GOOGLE_VERTEX = "google_vertex", "Google Vertex AI generateContent"
    ANTHROPIC_MESSAGES = "anthropic_messages", "Anthropic Messages"


DEFAULT_ENDPOINT_TYPE = {
    Provider.AZURE_OPENAI: EndpointType.AZURE_OPENAI_V1_CHAT,
    Provider.OPENAI: EndpointType.OPENAI_CHAT,
    Provider.GOOGLE_VERTEX: EndpointType.GOOGLE_VERTEX,
    Provider.ANTHROPIC: EndpointType.ANTHROPIC_MESSAGES,
    Provider.SIMULATED: EndpointType.OPENAI_CHAT,
}


class ProviderKey(models.Model):
    """A route: one upstream credential serving one catalog model, tried in priority order."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="provider_keys")
    name = models.CharField(max_length=120)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    endpoint_type = models.CharField(max_length=32, choices=EndpointType.choices)
    base_url = models.URLField(max_length=500, help_text="The provider's root, e.g. https://RES.openai.azure.com")
    deployment = models.CharField(max_length=200, blank=True, help_text="Upstream model or deployment name.")
    api_version = models.CharField(max_length=40, blank=True)
    secret_encrypted = models.TextField(editable=False)
    priority = models.PositiveIntegerField(default=100, help_text="Lower is tried first; equal shares load.")
    enabled = models.BooleanField(default=True)
    supports_priority = models.BooleanField(
        default=False, help_text="The deployment has priority processing (service_tier=priority)."
    )
    store = models.BooleanField(
        default=False,
        help_text="Responses endpoint types: let the provider retain responses (store=true). Off: store=false upstream.",
    )
    connect_timeout = models.FloatField(null=True, blank=True, help_text="Seconds; empty: the default.")
    first_byte_timeout = models.FloatField(null=True, blank=True)
    idle_timeout = models.FloatField(null=True, blank=True)
    disabled_reason = models.CharField(
        max_length=300, blank=True, help_text="Set when the gateway took the key out of rotation."
    )
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["model", "name"], name="providerkey_unique_name_per_model"),
            models.CheckConstraint(
                condition=Q(provider__in=[p.value for p in Provider]), name="providerkey_provider_valid"
            ),
            models.CheckConstraint(
                condition=Q(endpoint_type__in=[e.value for e in EndpointType]),
                name="providerkey_endpoint_type_valid",
            ),
            models.CheckConstraint(
                condition=(Q(connect_timeout__isnull=True) | Q(connect_timeout__gt=0))
                & (Q(first_byte_timeout__isnull=True) | Q(first_byte_timeout__gt=0))
                & (Q(idle_timeout__isnull=True) | Q(idle_timeout__gt=0)),
                name="providerkey_timeouts_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} → {self.model.slug} (p{self.priority})"

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = encrypt_secret(secret)

    def get_secret(self) -> str:
        return decrypt_secret(self.secret_encrypted)
