"""The catalog: loaded idempotently, price history never rewritten, and codex-mini exactly as its page."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from billing.catalog import DEFAULT_CATALOG_PATH, CatalogError, catalog_load
from billing.models import Model, PriceCard
from billing.selectors import price_card_for
from tests.conftest import shared_dir

pytestmark = pytest.mark.django_db

ROW = re.compile(
    r"^(?P<name>\S+) (?P<type>.+?) (?P<required>Yes|No) "
    r"(?P<accepted>Any valid value|[a-z0-9.\-]+(?:, [a-z0-9.\-]+)*) (?P<description>.+)$"
)


@pytest.fixture(scope="module")
def page() -> str:
    shared = shared_dir()
    if shared is None:
        pytest.skip("shared/reference/ not found beside the repository (../shared): cannot compare with the page")
    return (shared / "reference" / "codex-mini-model-page.txt").read_text(encoding="utf-8")


def page_request_rows(page: str) -> list[dict[str, str]]:
    lines = page.splitlines()
    start = lines.index("Field Type Required Accepted values Description") + 1
    rows = []
    for line in lines[start:]:
        if line.strip() == "Ready to send":
            break
        match = ROW.match(line)
        assert match, f"unparsed request-field row: {line!r}"
        rows.append(match.groupdict())
    return rows


def page_value(page: str, label: str) -> str:
    match = re.search(rf"^\s*(?:•\s*)?{re.escape(label)}:? (.+)$", page, re.MULTILINE)
    assert match, f"{label!r} not on the page"
    return match.group(1).strip()


def tokens(text: str) -> int:
    return int(text.removesuffix(" tokens").replace(",", ""))


def test_codex_mini_request_fields_match_the_page_row_for_row(page, catalog):
    model = Model.objects.get(slug="codex-mini")
    rows = page_request_rows(page)
    fields = model.spec["fields"]
    assert [r["name"] for r in rows] == [f["name"] for f in fields]
    for row, spec in zip(rows, fields, strict=True):
        accepted = ", ".join(spec["accepted"]) if spec["accepted"] else "Any valid value"
        assert row == {
            "name": spec["name"],
            "type": spec["type"],
            "required": "Yes" if spec["required"] else "No",
            "accepted": accepted,
            "description": spec["description"],
        }


def test_codex_mini_limits_provider_and_reasoning_match_the_page(page, catalog):
    model = Model.objects.get(slug="codex-mini")
    assert page.splitlines()[0] == model.name
    assert model.description in page
    assert f"\n{model.category}\n" in page
    assert tokens(page_value(page, "Context window")) == model.context_window == 200_000
    assert tokens(page_value(page, "Max output")) == model.max_output_tokens == 100_000
    assert page_value(page, "Provider") == model.provider
    assert page_value(page, "Endpoint type") == model.endpoint_type
    controls = page_value(page, "Reasoning controls").split(", ")
    effort = next(f for f in model.spec["fields"] if f["name"] == "reasoning_effort")
    assert model.reasoning and controls == effort["accepted"]
    for capability, evidence in (
        ("streaming", "Streaming supported"),
        ("tools", "Tool/function calling supported"),
        ("vision", "Inline images/documents supported through message parts"),
    ):
        assert evidence in page and capability in model.capabilities


def test_codex_mini_prices_match_the_page(page, catalog):
    card = PriceCard.objects.get(model__slug="codex-mini", service_tier="")
    prices = {
        label: Decimal(re.search(rf"^{label} per 1m tokens \$([0-9.]+)$", page, re.MULTILINE).group(1))
        for label in ("input", "cached input", "output")
    }
    assert prices == {
        "input": card.input_per_1m,
        "cached input": card.cached_input_per_1m,
        "output": card.output_per_1m,
    }
    assert (card.input_per_1m, card.cached_input_per_1m, card.output_per_1m) == (
        Decimal("1.5"),
        Decimal("0.375"),
        Decimal("6"),
    )
    assert card.cache_write_per_1m is None and card.currency == "USD"


def test_load_catalog_twice_is_idempotent(db):
    first = catalog_load()
    models = json.loads(DEFAULT_CATALOG_PATH.read_text())["models"]
    assert first["models_created"] == len(models)
    assert first["price_cards_created"] == sum(len(m["prices"]) for m in models)
    snapshot = list(Model.objects.order_by("slug").values())
    cards = list(PriceCard.objects.order_by("pk").values())
    second = catalog_load()
    assert second == {
        "models": len(models),
        "models_created": 0,
        "models_updated": 0,
        "models_unchanged": len(models),
        "price_cards_created": 0,
        "price_cards_unchanged": sum(len(m["prices"]) for m in models),
    }
    assert list(Model.objects.order_by("slug").values()) == snapshot
    assert list(PriceCard.objects.order_by("pk").values()) == cards


def edited_catalog(tmp_path: Path, edit) -> Path:
    data = json.loads(DEFAULT_CATALOG_PATH.read_text())
    edit(data["models"])
    path = tmp_path / "models.json"
    path.write_text(json.dumps(data))
    return path


def test_catalog_never_rewrites_an_existing_price_card(catalog, tmp_path):
    def raise_codex_input(models):
        models[0]["prices"][0]["input_per_1m"] = "2.00"
        models[0]["description"] = "changed"

    with pytest.raises(CatalogError, match=r"rewrite price history.*codex-mini.*input_per_1m"):
        catalog_load(path=edited_catalog(tmp_path, raise_codex_input))
    # All or nothing: the model change in the same file was rolled back too.
    assert PriceCard.objects.get(model__slug="codex-mini").input_per_1m == Decimal("1.5")
    assert Model.objects.get(slug="codex-mini").description != "changed"


def test_catalog_adds_a_later_card_and_updates_model_fields(catalog, tmp_path):
    def new_price(models):
        models[0]["prices"].append(
            {**models[0]["prices"][0], "effective_from": "2030-01-01T00:00:00Z", "input_per_1m": "1.00"}
        )
        models[0]["max_output_tokens"] = 90_000

    counts = catalog_load(path=edited_catalog(tmp_path, new_price))
    assert counts["price_cards_created"] == 1 and counts["models_updated"] == 1
    assert PriceCard.objects.filter(model__slug="codex-mini").count() == 2
    assert Model.objects.get(slug="codex-mini").max_output_tokens == 90_000


def test_catalog_refuses_a_malformed_file(tmp_path, db):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CatalogError, match="not valid JSON"):
        catalog_load(path=bad)
    with pytest.raises(CatalogError, match="not found"):
        catalog_load(path=tmp_path / "missing.json")

    def no_context(models):
        del models[1]["context_window"]

    with pytest.raises(CatalogError, match="lacks context_window"):
        catalog_load(path=edited_catalog(tmp_path, no_context))
    assert not Model.objects.exists()


# --- price card selection ------------------------------------------------------------------------


def card(model: Model, start: datetime, rate: str, tier: str = "") -> PriceCard:
    value = Decimal(rate)
    return PriceCard.objects.create(
        model=model,
        service_tier=tier,
        effective_from=start,
        input_per_1m=value,
        cached_input_per_1m=value,
        output_per_1m=value,
    )


def test_price_card_in_effect_at_a_time(catalog):
    model = Model.objects.get(slug="codex-mini")
    launch = PriceCard.objects.get(model=model)  # 2025-05-16
    cut = card(model, datetime(2026, 3, 1, tzinfo=UTC), "1.00")
    assert price_card_for(model=model, at=datetime(2025, 5, 15, 23, 59, tzinfo=UTC)) is None
    assert price_card_for(model=model, at=launch.effective_from) == launch
    assert price_card_for(model=model, at=cut.effective_from - timedelta(microseconds=1)) == launch
    assert price_card_for(model=model, at=cut.effective_from) == cut
    assert price_card_for(model=model, at=datetime(2027, 1, 1, tzinfo=UTC)) == cut


def test_price_card_for_a_tier_falls_back_to_the_all_tier_card(catalog):
    model = Model.objects.get(slug="codex-mini")
    launch = PriceCard.objects.get(model=model)
    priority = card(model, datetime(2026, 1, 1, tzinfo=UTC), "3.00", tier="priority")
    before = datetime(2025, 12, 31, tzinfo=UTC)
    after = datetime(2026, 6, 1, tzinfo=UTC)
    assert price_card_for(model=model, at=after, service_tier="priority") == priority
    assert price_card_for(model=model, at=before, service_tier="priority") == launch  # the tier had no card yet
    assert price_card_for(model=model, at=after, service_tier="default") == launch
    assert price_card_for(model=model, at=after) == launch
    assert price_card_for(model=model, at=after, currency="EUR") is None
