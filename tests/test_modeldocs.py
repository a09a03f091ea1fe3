"""The model docs pages (/docs/models/, /docs/models/<slug>, /docs/models/<slug>.md) through Django's test client.

The fields table is held to two independent sources: the gateway's own spec object (ModelSpec.from_model, the
constructor the gateway's snapshot uses) and, for codex-mini, the reference product page read from
shared/reference/codex-mini-model-page.txt; a drift between the catalog, the spec and the page fails here.
"""

from __future__ import annotations

import ast
import copy
import html
import json
import re
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.utils import timezone

from billing.models import Model, PriceCard
from billing.selectors import price_card_for
from gateway.spec import ModelSpec, validate_chat
from gateway.types import RequestRejected
from modeldocs.examples import build_examples, payload_json, python_literal
from modeldocs.markdown import fence
from modeldocs.selectors import format_rate
from tests.conftest import shared_dir
from tests.reference import REFERENCE_PAYLOAD

pytestmark = pytest.mark.django_db


# --- reading pages -------------------------------------------------------------------------------------------------


class _Tables(HTMLParser):
    """Rows of the <table id=...> asked for, each cell's text with <code> spans written back as `code`."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.inside = False
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.cell_tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = []
            self.cell_tags.append(f"{tag}:{attrs.get('scope', '')}")
        elif self.cell is not None and tag == "code":
            self.cell.append("`")

    def handle_endtag(self, tag):
        if tag == "table" and self.inside:
            self.inside = False
        elif self.cell is not None and tag == "code":
            self.cell.append("`")
        elif self.cell is not None and tag in ("td", "th"):
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def html_table(body: str, table_id: str) -> tuple[list[str], list[list[str]], list[str]]:
    parser = _Tables(table_id)
    parser.feed(body)
    header, *rows = parser.rows
    return header, rows, parser.cell_tags


def pre_text(body: str, element_id: str) -> str:
    match = re.search(rf'<pre id="{re.escape(element_id)}"[^>]*><code>(.*?)</code></pre>', body, re.S)
    assert match, f"no <pre id={element_id}>"
    return html.unescape(match.group(1))


def headings(body: str) -> list[tuple[str, str]]:
    return [
        (tag, html.unescape(re.sub(r"<[^>]+>", "", text)).strip())
        for tag, text in re.findall(r"<(h[1-3])[^>]*>(.*?)</h[1-3]>", body, re.S)
    ]


def markdown_table(text: str, header: str) -> list[list[str]]:
    """The rows of the GFM table under `header`, cells unescaped (\\| → |)."""
    lines = text.split(header + "\n", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    return [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def spec_rows(spec: ModelSpec) -> list[list[str]]:
    """The table the spec object itself describes, cell by cell."""
    return [
        [f"`{row.name}`", row.type, "Yes" if row.required else "No", row.accepted_label, row.description]
        for row in spec.fields
    ]


def reference_page() -> str:
    shared = shared_dir()
    if shared is None:
        pytest.skip("shared/reference/ is not beside the repository: cannot compare with the product page")
    return (shared / "reference" / "codex-mini-model-page.txt").read_text(encoding="utf-8")


@pytest.fixture
def models(catalog) -> list[Model]:
    return list(Model.objects.filter(is_active=True).order_by("slug"))


# --- the catalog page ----------------------------------------------------------------------------------------------


def test_index_lists_each_active_model_with_its_card_prices_limits_and_capabilities(client, models):
    Model.objects.filter(slug="gemini-2.5-pro").update(is_active=False)
    response = client.get("/docs/models/")
    assert response.status_code == 200
    body = response.content.decode()
    listed = re.findall(r'<tr data-model="([^"]+)">', body)
    active = [m for m in models if m.slug != "gemini-2.5-pro"]
    assert sorted(listed) == sorted(m.slug for m in active)
    now = timezone.now()
    for model in active:
        row = body.split(f'<tr data-model="{model.slug}">', 1)[1].split("</tr>", 1)[0]
        assert f'href="/docs/models/{model.slug}"' in row
        card = price_card_for(model=model, at=now)
        for label, value in (
            ("input", card.input_per_1m),
            ("cached input", card.cached_input_per_1m),
            ("output", card.output_per_1m),
        ):
            shown = re.search(rf'data-price="{label}">\$([0-9.]+)<', row).group(1)
            assert Decimal(shown) == value and shown == format_rate(value)
        cache_write = re.search(r'data-price="cache write">(.*?)</td>', row, re.S).group(1)
        if card.cache_write_per_1m is None:
            assert "$" not in cache_write
        else:
            assert cache_write == f"${format_rate(card.cache_write_per_1m)}"
        assert f"{model.context_window:,}" in row and f"{model.max_output_tokens:,}" in row
    claude = body.split('<tr data-model="claude-sonnet-4-5">', 1)[1].split("</tr>", 1)[0]
    assert 'data-price="cache write">$3.750000<' in claude
    assert "<li>Reasoning</li>" in claude and "<li>Tools</li>" in claude
    assert "gemini-2.5-pro" not in body


def test_rates_show_at_least_six_places_and_never_round():
    assert format_rate(Decimal("1.5000000000")) == "1.500000"  # the reference page's $1.500000
    assert format_rate(Decimal("0.3750000000")) == "0.375000"
    assert format_rate(Decimal("0.1234567891")) == "0.1234567891"
    assert format_rate(Decimal("12")) == "12.000000"


def test_pages_show_the_card_in_effect_now_not_an_older_or_a_future_one(client, catalog):
    model = Model.objects.get(slug="codex-mini")
    now = timezone.now()
    PriceCard.objects.create(
        model=model,
        input_per_1m=Decimal("1.2345678901"),
        cached_input_per_1m=Decimal("0.3"),
        output_per_1m=Decimal("5"),
        cache_write_per_1m=Decimal("2.5"),
        effective_from=now - timedelta(days=1),
    )
    PriceCard.objects.create(
        model=model,
        input_per_1m=Decimal("9"),
        cached_input_per_1m=Decimal("9"),
        output_per_1m=Decimal("9"),
        effective_from=now + timedelta(days=1),
    )
    for path in ("/docs/models/", "/docs/models/codex-mini"):
        body = client.get(path).content.decode()
        assert 'data-price="input">$1.2345678901<' in body
        assert 'data-price="cached input">$0.300000<' in body
        assert 'data-price="output">$5.000000<' in body
        assert 'data-price="cache write">$2.500000<' in body
        assert "$9.000000" not in body and "$1.500000" not in body
    markdown = client.get("/docs/models/codex-mini.md").content.decode()
    assert "| input | $1.2345678901 |" in markdown and "| cache write | $2.500000 |" in markdown


# --- a model page --------------------------------------------------------------------------------------------------


def test_codex_mini_page_has_the_reference_pages_sections_in_its_order(client, catalog):
    page = reference_page()
    # The reference page's section titles, each found in the page text in this order (read, not assumed).
    expected = [
        ("h1", "Codex Mini"),
        ("h2", "Chat and reasoning models"),
        ("h3", "Codex Mini"),
        ("h2", "Connect Codex Mini"),
        ("h2", "Request fields"),
        ("h2", "Payload and response"),
        ("h2", "Copy-ready integration code"),
        ("h3", "cURL"),
        ("h3", "JavaScript fetch"),
        ("h3", "Python requests"),
        ("h3", "PHP cURL"),
        ("h3", "C# HttpClient"),
        ("h3", "Go net/http"),
        ("h2", "Streaming note"),
        ("h2", "Operational notes"),
    ]
    position = page.index("Developer documentation")
    for _, title in expected[1:]:
        position = page.index(f"\n{title}\n", position) + 1
    for eyebrow in ("Model Reference", "Integration reference", "Request schema", "Ready to send", "Language examples"):
        assert eyebrow in page
    response = client.get("/docs/models/codex-mini")
    assert response.status_code == 200
    body = response.content.decode()
    assert headings(body) == expected
    for text in (
        "Developer documentation",
        "Model Reference",
        "Integration reference",
        "Request schema",
        "Ready to send",
        "Language examples",
        "Production checklist",
        "Example JSON payload",
        "Response shape",
        "Copy Markdown",
    ):
        assert text in body
    # the reference page's facts, rendered from the catalog
    for line in (
        "Provider: azure-openai",
        "Endpoint type: azure_openai_v1_chat",
        "Context window: 200,000 tokens",
        "Max output: 100,000 tokens",
        "Streaming supported",
        "Tool/function calling supported",
        "Inline images/documents supported through message parts",
        "Reasoning controls: low, medium, high",
    ):
        assert f"  • {line}" in page
        assert f"<li>{line}</li>" in body
    # beyond the page: the route types an operator may pick for it (a Responses-only deployment)
    routes = (
        "Routes may also use: azure_openai_v1_responses, openai_chat, openai_responses (same request; Omixa translates)"
    )
    assert f"<li>{routes}</li>" in body
    for label, price in (("input", "$1.500000"), ("cached input", "$0.375000"), ("output", "$6.000000")):
        assert f"{label} per 1m tokens {price}" in page
        assert f'<th scope="row">{label} per 1m tokens</th><td class="num" data-price="{label}">{price}</td>' in body
    assert "POST http://testserver/api/v1/chat/completions" in body
    assert "Authorization: Bearer omx_live_xxx" in body


@pytest.mark.parametrize(
    "slug", ["codex-mini", "gpt-4.1-mini", "gemini-2.5-flash", "gemini-2.5-pro", "claude-sonnet-4-5"]
)
def test_fields_table_rows_are_the_gateway_specs_rows(client, models, slug):
    model = Model.objects.get(slug=slug)
    spec = ModelSpec.from_model(model)
    body = client.get(f"/docs/models/{slug}").content.decode()
    header, rows, cell_tags = html_table(body, "fields-table")
    assert header == ["Field", "Type", "Required", "Accepted values", "Description"]
    assert rows == spec_rows(spec)
    assert cell_tags[:5] == ["th:col"] * 5 and cell_tags[5] == "th:row"  # headers scoped for screen readers
    markdown = client.get(f"/docs/models/{slug}.md").content.decode()
    assert markdown_table(markdown, "| Field | Type | Required | Accepted values | Description |") == spec_rows(spec)


def test_codex_mini_fields_table_is_the_reference_pages_table(client, catalog):
    page = reference_page()
    table = page.split("Field Type Required Accepted values Description\n", 1)[1].split("\nReady to send", 1)[0]
    reference = table.splitlines()
    body = client.get("/docs/models/codex-mini").content.decode()
    _, rows, _ = html_table(body, "fields-table")
    rendered = [" ".join([row[0].strip("`"), *row[1:]]) for row in rows]
    assert rendered == reference
    markdown = client.get("/docs/models/codex-mini.md").content.decode()
    md_rows = markdown_table(markdown, "| Field | Type | Required | Accepted values | Description |")
    assert [" ".join([row[0].strip("`"), *row[1:]]) for row in md_rows] == reference


def test_a_catalog_edit_changes_the_table_and_the_gateways_validation_together(client, catalog):
    model = Model.objects.get(slug="codex-mini")
    spec = copy.deepcopy(model.spec)
    effort = next(row for row in spec["fields"] if row["name"] == "reasoning_effort")
    effort["accepted"] = ["low", "high"]
    spec["fields"].append(
        {"name": "seed", "type": "integer", "required": False, "accepted": None, "description": "Best-effort seed."}
    )
    model.spec = spec
    model.save()
    gateway_spec = ModelSpec.from_model(Model.objects.get(slug="codex-mini"))  # what the gateway snapshot builds
    body = client.get("/docs/models/codex-mini").content.decode()
    _, rows, _ = html_table(body, "fields-table")
    assert ["`reasoning_effort`", "string", "No", "low, high", effort["description"]] in rows
    assert rows[-1] == ["`seed`", "integer", "No", "Any valid value", "Best-effort seed."]
    assert "<li>Reasoning controls: low, high</li>" in body
    base = {"model": "codex-mini", "messages": [{"role": "user", "content": "Hi"}]}
    with pytest.raises(RequestRejected) as info:
        validate_chat({**base, "reasoning_effort": "medium"}, gateway_spec)
    assert info.value.param == "reasoning_effort"
    assert validate_chat({**base, "seed": 7}, gateway_spec).body["seed"] == 7


def test_a_rows_own_range_shows_in_accepted_values(client, models):
    body = client.get("/docs/models/claude-sonnet-4-5").content.decode()
    _, rows, _ = html_table(body, "fields-table")
    temperature = next(row for row in rows if row[0] == "`temperature`")
    assert temperature[3] == "at most 1"
    spec = ModelSpec.from_model(Model.objects.get(slug="claude-sonnet-4-5"))
    with pytest.raises(RequestRejected):
        validate_chat(
            {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hi"}], "temperature": 1.5}, spec
        )


def test_example_payload_is_the_catalogs_and_the_gateway_accepts_it(client, models):
    for model in models:
        body = client.get(f"/docs/models/{model.slug}").content.decode()
        shown = pre_text(body, "payload-code")
        assert shown == payload_json(model.spec["example"])
        assert json.loads(shown) == model.spec["example"]
        validate_chat(json.loads(shown), ModelSpec.from_model(model))
    codex = client.get("/docs/models/codex-mini").content.decode()
    assert json.loads(pre_text(codex, "payload-code")) == REFERENCE_PAYLOAD


def test_response_shape_is_the_recorded_gateway_answer_with_this_models_cost(client, catalog):
    body = client.get("/docs/models/codex-mini").content.decode()
    shown = json.loads(pre_text(body, "response-code"))
    assert shown["object"] == "chat.completion" and shown["model"] == "codex-mini"
    assert set(shown) >= {"id", "created", "choices", "usage"}
    usage = shown["usage"]
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    expected = (
        Decimal(usage["prompt_tokens"] - cached) * Decimal("1.50")
        + Decimal(cached) * Decimal("0.375")
        + Decimal(usage["completion_tokens"]) * Decimal("6.00")
    ) / Decimal(1_000_000)
    assert Decimal(usage["cost"]) == expected
    events = pre_text(body, "stream-events").split("\n\n")
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0].removeprefix("data: "))["object"] == "chat.completion.chunk"
    assert json.loads(events[1].removeprefix("data: "))["usage"]["cost"] == usage["cost"]


@pytest.mark.parametrize("secure,host", [(False, "docs.example.test:8443"), (True, "omixa.example.com")])
def test_examples_call_the_host_the_page_is_served_from(client, catalog, settings, secure, host):
    settings.ALLOWED_HOSTS = [host.split(":")[0]]
    body = client.get("/docs/models/codex-mini", HTTP_HOST=host, secure=secure).content.decode()
    endpoint = f"{'https' if secure else 'http'}://{host}/api/v1/chat/completions"
    for slug in ("curl", "javascript", "python", "php", "csharp", "go"):
        code = pre_text(body, f"example-{slug}-code")
        assert endpoint in code, slug
        assert "testserver" not in code
    assert f"POST {endpoint}" in body


def test_examples_embed_the_payload_exactly_in_each_language():
    tricky = {
        "model": "codex-mini",
        "messages": [
            {"role": "user", "content": "quote \" apostrophe ' backslash \\ backtick ` $HOME {x} é ☃ \u2028 \t"}
        ],
        "stream": True,
        "temperature": 0.2,
        "stop": None,
    }
    text = payload_json(tricky)
    examples = {e.slug: e.code for e in build_examples(payload=tricky, endpoint="http://h/api/v1/chat/completions")}
    curl = examples["curl"].split("<<'JSON'\n", 1)[1].rsplit("\nJSON\n", 1)[0]
    assert json.loads(curl) == tricky
    php = examples["php"].split("<<<'JSON'\n", 1)[1].split("\nJSON;\n", 1)[0]
    assert json.loads(php) == tricky
    python = examples["python"].split("payload = ", 1)[1].split("\n\nwith requests", 1)[0]
    assert ast.literal_eval(python) == tricky
    csharp = examples["csharp"].split('var json = @"', 1)[1].split('";\n', 1)[0].replace('""', '"')
    assert csharp == text
    go = examples["go"].split("const payload = ", 1)[1].split("\n\nfunc main", 1)[0]
    assert "".join(json.loads(part) if part.startswith('"') else part[1:-1] for part in go.split(" + ")) == text
    javascript = examples["javascript"].split("const payload = ", 1)[1].split(";\n\nconst response", 1)[0]
    assert json.loads(javascript) == tricky


def test_python_literal_reads_back_as_the_same_value():
    value = {"a": [True, False, None, 1, 2.5, "x\"y'z\\\n\u2028é"], "b": {}, "c": []}
    assert ast.literal_eval(python_literal(value)) == value


def test_fence_is_longer_than_any_backtick_run_inside():
    assert fence("a ``` b", "go").startswith("````go\n") and fence("a ``` b").endswith("\n````")
    assert fence("plain").startswith("```\n")


# --- Markdown, 404, public -----------------------------------------------------------------------------------------


def test_markdown_version_has_the_pages_content(client, models):
    response = client.get("/docs/models/gpt-4.1-mini.md")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    markdown = response.content.decode()
    body = client.get("/docs/models/gpt-4.1-mini").content.decode()
    assert markdown.startswith("# GPT-4.1 mini\n")
    for slug in ("curl", "javascript", "python", "php", "csharp", "go"):
        assert pre_text(body, f"example-{slug}-code").rstrip("\n") in markdown
    assert pre_text(body, "payload-code") in markdown
    assert pre_text(body, "response-code") in markdown
    assert "| input | $0.400000 |" in markdown and "| output | $1.600000 |" in markdown
    titles = [h[1] for h in headings(body) if h[0] == "h2"]
    md_titles = [line[3:] for line in markdown.splitlines() if line.startswith("## ")]
    assert [t.split(": ", 1)[-1] for t in md_titles] == titles


def test_unknown_or_inactive_slug_is_a_404(client, catalog):
    Model.objects.filter(slug="gemini-2.5-pro").update(is_active=False)
    for path in (
        "/docs/models/no-such-model",
        "/docs/models/no-such-model.md",
        "/docs/models/gemini-2.5-pro",
        "/docs/models/gemini-2.5-pro.md",
        "/docs/models/codex-mini.txt",
    ):
        assert client.get(path).status_code == 404, path
    page = client.get("/docs/models/codex-mni")
    assert "<h1>Model not found</h1>" in page.content.decode()
    assert 'href="/docs/models/codex-mini"' in page.content.decode()  # the way back
    assert 'href="/docs/models/gemini-2.5-pro"' not in page.content.decode()
    md = client.get("/docs/models/codex-mni.md")
    assert md["Content-Type"] == "text/markdown; charset=utf-8" and "`codex-mni`" in md.content.decode()


def test_a_model_whose_spec_the_gateway_refuses_has_no_page(client, catalog):
    Model.objects.filter(slug="gemini-2.5-pro").update(spec={"fields": []})
    assert client.get("/docs/models/gemini-2.5-pro").status_code == 404
    assert "gemini-2.5-pro" not in client.get("/docs/models/").content.decode()


def test_docs_root_leads_to_the_catalog(client, catalog):
    response = client.get("/docs/")
    assert response.status_code == 302 and response["Location"] == "/docs/models/"


def test_pages_are_public_and_read_only(client, world, catalog):
    for path in ("/docs/models/", "/docs/models/codex-mini", "/docs/models/codex-mini.md"):
        assert client.get(path).status_code == 200  # no sign-in
        assert client.post(path).status_code == 405
    client.force_login(world.outsider)
    assert client.get("/docs/models/codex-mini").status_code == 200


def test_static_assets_are_served_by_omixa(client, catalog):
    body = client.get("/docs/models/codex-mini").content.decode()
    for asset in re.findall(r'(?:href|src)="(/static/modeldocs/[^"]+)"', body):
        assert asset.endswith((".css", ".js"))
        assert client.get(asset).status_code == 200
    assert "/static/modeldocs/modeldocs.css" in body and "/static/modeldocs/modeldocs.js" in body
    assert "http://" not in "".join(re.findall(r'(?:href|src)="([^"]+)"', body))  # no CDN
