"""The gateway's in-process picture of keys, models, prices and routes.

Built in one go from the database (in a thread, off the request path) and swapped atomically.
A background task reloads it when the config revision moves (workspaces.revision), so the hot
path reads plain dicts and never waits on the ORM.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings

from billing.pricing import Rates, usage_cost
from gateway.limits import Limits, limits_of
from gateway.spec import ModelSpec
from gateway.types import Route, Usage
from omixa.logging import register_secret

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    id: int
    workspace_id: int
    workspace_slug: str
    currency: str
    scope: str
    expires_at: float | None  # epoch seconds
    revoked: bool
    allowed_models: frozenset[str] | None  # None: every model
    limits: Limits | None = None  # the key's own rate limits and budget (None: none)
    workspace_limits: Limits | None = None  # its workspace's, for all its keys together
    fail_closed: bool = False  # the workspace refuses requests when the limits store is down

    @property
    def limited(self) -> bool:
        return self.limits is not None or self.workspace_limits is not None


@dataclass(frozen=True, slots=True)
class PriceEntry:
    effective_from: float  # epoch seconds
    rates: Rates


@dataclass(frozen=True, slots=True)
class ModelEntry:
    slug: str
    name: str
    description: str
    provider: str
    endpoint_type: str
    created: int
    context_window: int
    max_output_tokens: int
    capabilities: tuple[str, ...]
    reasoning: bool
    spec: ModelSpec
    routes: tuple[Route, ...]
    # service tier ("" = every tier) → cards sorted by effective_from ascending
    prices: dict[str, tuple[PriceEntry, ...]] = field(default_factory=dict)

    def rates_at(self, at: float, service_tier: str = "") -> Rates | None:
        """The card in effect at `at` for the tier, else the all-tier card (None: unpriced)."""
        for tier in (service_tier, "") if service_tier else ("",):
            cards = self.prices.get(tier)
            if cards:
                index = bisect_right([c.effective_from for c in cards], at)
                if index:
                    return cards[index - 1].rates
        return None

    def cost_at(self, at: float, usage: Usage) -> Decimal | None:
        """The exact cost of `usage` at the card in effect at `at` (what the ledger will hold); None: unpriced."""
        rates = self.rates_at(at, usage.service_tier)
        if rates is None:
            return None
        return usage_cost(
            rates,
            input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    revision: int
    keys: dict[str, KeyEntry]  # sha256 hex → key
    models: dict[str, ModelEntry]
    loaded_at: float

    @classmethod
    def empty(cls) -> Snapshot:
        return cls(revision=-1, keys={}, models={}, loaded_at=0.0)


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def key_entry(row) -> KeyEntry:
    return KeyEntry(
        id=row.id,
        workspace_id=row.workspace_id,
        workspace_slug=row.workspace.slug,
        currency=row.workspace.currency,
        scope=row.scope,
        expires_at=_ts(row.expires_at),
        revoked=row.revoked_at is not None,
        allowed_models=frozenset(row.allowed_models) if row.allowed_models else None,
        limits=limits_of(row),
        workspace_limits=limits_of(row.workspace),
        fail_closed=row.workspace.limits_fail_mode == "closed",
    )


def load_snapshot(now: float) -> Snapshot:
    """Read everything the hot path needs. Sync: run it in a thread."""
    from django.db import close_old_connections

    from billing.models import Model, PriceCard
    from gateway.crypto import SecretDecryptionError
    from gateway.models import ProviderKey
    from workspaces.models import ApiKey
    from workspaces.revision import current_config_revision

    close_old_connections()  # runs in a worker thread: no request cycle closes its connection
    revision = current_config_revision()
    keys = {
        row.key_hash: key_entry(row)
        for row in ApiKey.objects.select_related("workspace").filter(revoked_at__isnull=True)
    }

    prices: dict[int, dict[str, list[PriceEntry]]] = {}
    for card in PriceCard.objects.order_by("effective_from"):
        rates = Rates.of(card)
        prices.setdefault(card.model_id, {}).setdefault(card.service_tier, []).append(
            PriceEntry(effective_from=card.effective_from.timestamp(), rates=rates)
        )

    routes: dict[int, list[Route]] = {}
    route_rows = ProviderKey.objects.filter(enabled=True, disabled_reason="").select_related("model")
    for row in route_rows.order_by("priority", "id"):
        try:
            secret = row.get_secret()
        except SecretDecryptionError:
            logger.error("provider key %s (%s) cannot be decrypted with the configured keys; skipped", row.id, row.name)
            continue
        register_secret(secret)
        routes.setdefault(row.model_id, []).append(
            Route(
                id=row.id,
                name=row.name,
                model_slug=row.model.slug,
                provider=row.provider,
                endpoint_type=row.endpoint_type,
                base_url=row.base_url.rstrip("/"),
                deployment=row.deployment or row.model.slug,
                api_key=secret,
                api_version=row.api_version,
                priority=row.priority,
                supports_priority=row.supports_priority,
                store=row.store,
                reasoning=row.model.reasoning,
                connect_timeout=row.connect_timeout or settings.OMIXA_UPSTREAM_CONNECT_TIMEOUT,
                first_byte_timeout=row.first_byte_timeout or settings.OMIXA_UPSTREAM_FIRST_BYTE_TIMEOUT,
                idle_timeout=row.idle_timeout or settings.OMIXA_UPSTREAM_IDLE_TIMEOUT,
            )
        )

    models = {}
    for model in Model.objects.filter(is_active=True):
        try:
            spec = ModelSpec.from_model(model)
        except ValueError as exc:
            # One bad catalog entry must not keep every other model on a stale snapshot.
            logger.error("model %s has an invalid spec and is not served: %s", model.slug, exc)
            continue
        models[model.slug] = ModelEntry(
            slug=model.slug,
            name=model.name,
            description=model.description,
            provider=model.provider,
            endpoint_type=model.endpoint_type,
            created=int(model.created_at.timestamp()),
            context_window=model.context_window,
            max_output_tokens=model.max_output_tokens,
            capabilities=tuple(model.capabilities),
            reasoning=model.reasoning,
            spec=spec,
            routes=tuple(routes.get(model.id, ())),
            prices={tier: tuple(cards) for tier, cards in prices.get(model.id, {}).items()},
        )
    return Snapshot(revision=revision, keys=keys, models=models, loaded_at=now)
