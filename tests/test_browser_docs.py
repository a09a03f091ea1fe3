"""The model docs in real headless Chromium, served by the whole ASGI app: the catalog links to a model page, the
page's "Copy Markdown" button puts exactly /docs/models/<slug>.md on the clipboard, a code block's "Copy" button
copies its program, and keyboard focus is visible. Screenshots: test-artifacts/screenshots/docs-*.png."""

from __future__ import annotations

import httpx
import pytest

from tests.browser_fixtures import browser, page, screenshot  # noqa: F401
from tests.gateway_fixtures import gateway, world  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_catalog_links_to_a_model_page_whose_copy_markdown_button_copies_the_md(gateway, world, page):
    response = page.goto(gateway.url + "/docs/models/")
    assert response.status == 200
    assert page.locator("table.catalog tbody tr").count() >= 5
    assert page.locator('tr[data-model="codex-mini"] [data-price="input"]').inner_text() == "$1.500000"
    assert screenshot(page, "docs-models-index").stat().st_size > 1000

    page.get_by_role("link", name="Codex Mini").click()
    page.wait_for_url(gateway.url + "/docs/models/codex-mini")
    assert page.get_by_role("heading", level=1).inner_text() == "Codex Mini"
    # the stylesheet (served by Omixa) applied
    assert page.evaluate("() => getComputedStyle(document.querySelector('pre')).backgroundColor") != "rgba(0, 0, 0, 0)"
    assert screenshot(page, "docs-model-codex-mini").stat().st_size > 1000

    markdown = httpx.get(gateway.url + "/docs/models/codex-mini.md", timeout=10).text
    button = page.locator("button.copy-markdown")
    assert button.inner_text() == "Copy Markdown"
    button.click()
    page.wait_for_function("() => document.getElementById('copy-status').textContent.includes('copied')")
    assert page.evaluate("navigator.clipboard.readText()") == markdown
    assert button.inner_text() == "Copied Markdown"

    page.get_by_role("button", name="Copy the Python requests example").click()
    page.wait_for_function("() => document.getElementById('copy-status').textContent.includes('Code copied')")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.locator("#example-python-code").text_content()
    assert copied.startswith("import json") and gateway.url + "/api/v1/chat/completions" in copied


def test_keyboard_users_see_focus_and_can_copy(gateway, world, page):
    page.goto(gateway.url + "/docs/models/gpt-4.1-mini")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    button = page.get_by_role("button", name="Copy Markdown")
    button.focus()
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('copy-status').textContent.includes('copied')")
    assert (
        page.evaluate("navigator.clipboard.readText()") == httpx.get(gateway.url + "/docs/models/gpt-4.1-mini.md").text
    )


def test_model_page_prints_without_buttons(gateway, world, page):
    page.goto(gateway.url + "/docs/models/claude-sonnet-4-5")
    page.emulate_media(media="print")
    assert not page.get_by_role("button", name="Copy Markdown").is_visible()
    assert page.locator("#fields-table").is_visible()
    page.emulate_media(media="screen")
