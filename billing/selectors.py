"""Reads of billing data that more than one caller needs."""

from __future__ import annotations

from datetime import datetime

from billing.models import Model, PriceCard


def price_card_for(*, model: Model, at: datetime, service_tier: str = "", currency: str = "USD") -> PriceCard | None:
    """The card in effect at `at`: the latest `effective_from <= at` for the tier.

    A tier without a card of its own in effect at `at` is priced at the all-tier card (tier ""), so
    an upstream reporting a tier nobody priced (e.g. "default") is still billed.
    """
    cards = PriceCard.objects.filter(model=model, currency=currency, effective_from__lte=at).order_by(
        "-effective_from", "-pk"
    )
    if service_tier:
        card = cards.filter(service_tier=service_tier).first()
        if card is not None:
            return card
    return cards.filter(service_tier="").first()
