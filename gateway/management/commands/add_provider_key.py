"""`manage.py add_provider_key --model SLUG --provider P --base-url URL --api-key SECRET [...]` → one JSON object.

The secret is encrypted at rest and never printed back.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from gateway.models import EndpointType, Provider, ProviderKey
from gateway.services import ProviderKeyError, provider_key_add


def provider_key_as_json(key: ProviderKey) -> dict:
    return {
        "id": key.pk,
        "name": key.name,
        "model": key.model.slug,
        "provider": key.provider,
        "endpoint_type": key.endpoint_type,
        "base_url": key.base_url,
        "deployment": key.deployment,
        "api_version": key.api_version,
        "priority": key.priority,
        "enabled": key.enabled,
        "supports_priority": key.supports_priority,
        "store": key.store,
    }


class Command(BaseCommand):
    help = "Add a provider key (a route) for a catalog model. Lower priority numbers are tried first."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--model", required=True, help="The catalog model's slug.")
        parser.add_argument("--provider", required=True, help=" | ".join(Provider.values))
        parser.add_argument("--base-url", required=True, help="The provider's root, e.g. https://RES.openai.azure.com")
        parser.add_argument("--api-key", required=True, help="The upstream secret (stored encrypted).")
        parser.add_argument("--priority", type=int, default=100)
        parser.add_argument("--deployment", default="", help="Upstream model or deployment name (default: the slug).")
        parser.add_argument("--api-version", default="")
        parser.add_argument("--endpoint-type", help=" | ".join(EndpointType.values) + " (default: per provider)")
        parser.add_argument("--name", help="Default: PROVIDER-N, unique per model.")
        parser.add_argument("--supports-priority", action="store_true", help="The deployment has priority processing.")
        parser.add_argument(
            "--store",
            action="store_true",
            help="Responses endpoint types: let the provider retain responses (default: store=false upstream).",
        )

    def handle(self, *args, **options) -> None:
        try:
            key = provider_key_add(
                model_slug=options["model"],
                provider=options["provider"],
                base_url=options["base_url"],
                api_key=options["api_key"],
                priority=options["priority"],
                deployment=options["deployment"],
                api_version=options["api_version"],
                endpoint_type=options.get("endpoint_type"),
                name=options.get("name"),
                supports_priority=options["supports_priority"],
                store=options["store"],
            )
        except ProviderKeyError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(provider_key_as_json(key)))
