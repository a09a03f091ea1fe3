"""Load the built-in model catalog (billing/catalog/models.json) into the database.

Idempotent: models are matched by slug and updated in place; price cards are matched by
(model, service tier, currency, effective_from) and only ever added. A file whose rates differ from
a card already stored is refused as a whole, because usage may already be priced at that card:
a price change is a new card with a later `effective_from`, never an edit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils.dateparse import parse_datetime

from billing.models import Model, PriceCard

DEFAULT_CATALOG_PATH = Path(__file__).resolve().parent / "catalog" / "models.json"

_REQUIRED_MODEL_FIELDS = ("name", "provider", "endpoint_type", "context_window", "max_output_tokens", "spec")
_OPTIONAL_DEFAULTS: dict[str, Any] = {
    "description": "",
    "category": "",
    "category_description": "",
    "endpoint_types": [],
    "capabilities": [],
    "reasoning": False,
}
_RATE_FIELDS = ("input_per_1m", "cached_input_per_1m", "cache_write_per_1m", "output_per_1m")


class CatalogError(Exception):
    """The catalog file is unreadable, malformed, or would rewrite price history."""


@dataclass
class _Counts:
    models_created: int = 0
    models_updated: int = 0
    models_unchanged: int = 0
    price_cards_created: int = 0
    price_cards_unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CatalogError(f"catalog file not found: {path}") from exc
    except (OSError, ValueError) as exc:
        raise CatalogError(f"catalog file {path} is not valid JSON: {exc}") from exc
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise CatalogError(f'catalog file {path} must hold {{"models": [...]}}')
    return models


def _model_values(entry: dict[str, Any]) -> dict[str, Any]:
    missing = [name for name in _REQUIRED_MODEL_FIELDS if name not in entry]
    if missing:
        raise CatalogError(f"catalog model {entry.get('slug', '?')!r} lacks {', '.join(missing)}")
    values = {name: entry.get(name, default) for name, default in _OPTIONAL_DEFAULTS.items()}
    values.update({name: entry[name] for name in _REQUIRED_MODEL_FIELDS})
    for name in ("context_window", "max_output_tokens"):
        if not isinstance(values[name], int) or isinstance(values[name], bool) or values[name] <= 0:
            raise CatalogError(f"catalog model {entry['slug']!r}: {name} must be a positive integer")
    if not isinstance(values["spec"], dict) or not isinstance(values["spec"].get("fields"), list):
        raise CatalogError(f"catalog model {entry['slug']!r}: spec.fields must be a list")
    return values


def _rate(value: Any, *, where: str) -> Decimal | None:
    if value is None:
        return None
    try:
        rate = Decimal(str(value))
    except InvalidOperation as exc:
        raise CatalogError(f"{where}: {value!r} is not a decimal rate") from exc
    if not rate.is_finite() or rate < 0:
        raise CatalogError(f"{where}: rates must be finite and not negative")
    return rate


def _card_values(slug: str, price: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Decimal | None]]:
    effective_from: datetime | None = parse_datetime(str(price.get("effective_from", "")))
    if effective_from is None or effective_from.tzinfo is None:
        raise CatalogError(f"catalog model {slug!r}: effective_from must be an ISO time with a zone")
    key = {
        "service_tier": price.get("service_tier") or "",
        "currency": price.get("currency") or "USD",
        "effective_from": effective_from,
    }
    rates = {name: _rate(price.get(name), where=f"{slug} {name}") for name in _RATE_FIELDS}
    for name in ("input_per_1m", "cached_input_per_1m", "output_per_1m"):
        if rates[name] is None:
            raise CatalogError(f"catalog model {slug!r}: a price card needs {name}")
    return key, rates


def _load_model(entry: dict[str, Any], counts: _Counts) -> Model:
    values = _model_values(entry)
    model = Model.objects.filter(slug=entry["slug"]).first()
    if model is None:
        counts.models_created += 1
        return Model.objects.create(slug=entry["slug"], **values)
    changed = [name for name, value in values.items() if getattr(model, name) != value]
    if changed:
        # Saving only when something changed keeps the config revision still on a no-op reload.
        for name in changed:
            setattr(model, name, values[name])
        model.save(update_fields=[*changed, "updated_at"])
        counts.models_updated += 1
    else:
        counts.models_unchanged += 1
    return model


def _load_prices(model: Model, prices: list[dict[str, Any]], counts: _Counts) -> None:
    for price in prices:
        key, rates = _card_values(model.slug, price)
        card = PriceCard.objects.filter(model=model, **key).first()
        if card is None:
            PriceCard.objects.create(model=model, **key, **rates)
            counts.price_cards_created += 1
            continue
        differing = [name for name, rate in rates.items() if getattr(card, name) != rate]
        if differing:
            counts.conflicts.append(
                f"{model.slug} card from {key['effective_from']:%Y-%m-%dT%H:%M:%SZ}"
                f" ({key['service_tier'] or 'any tier'}, {key['currency']}): {', '.join(differing)} differ"
            )
        else:
            counts.price_cards_unchanged += 1


def catalog_load(*, path: Path | str | None = None) -> dict[str, int]:
    """Load the catalog file; returns counts. Raises CatalogError (and writes nothing) on a conflict."""
    entries = _read(Path(path) if path else DEFAULT_CATALOG_PATH)
    counts = _Counts()
    with transaction.atomic():
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("slug"):
                raise CatalogError("every catalog model needs a slug")
            model = _load_model(entry, counts)
            _load_prices(model, entry.get("prices") or [], counts)
        if counts.conflicts:
            # Raising inside the block rolls back every model and card written above.
            raise CatalogError(
                "the catalog would rewrite price history (add a card with a later effective_from instead): "
                + "; ".join(counts.conflicts)
            )
    return {
        "models": len(entries),
        "models_created": counts.models_created,
        "models_updated": counts.models_updated,
        "models_unchanged": counts.models_unchanged,
        "price_cards_created": counts.price_cards_created,
        "price_cards_unchanged": counts.price_cards_unchanged,
    }
