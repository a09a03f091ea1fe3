"""The API reference page renders in real headless Chromium from Omixa's own assets: every request the
page makes goes to Omixa (none to a CDN or font host), and the operations of the schema are listed."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.browser_fixtures import browser, page, screenshot  # noqa: F401
from tests.gateway_fixtures import gateway  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def _record_hosts(page) -> list[str]:
    hosts: list[str] = []
    page.on("request", lambda request: hosts.append(urlsplit(request.url).netloc))
    return hosts


def test_swagger_ui_lists_the_management_and_gateway_operations_offline(gateway, page):
    hosts = _record_hosts(page)
    assert page.goto(gateway.url + "/api/docs/").status == 200
    page.wait_for_selector(".opblock", timeout=20_000)
    summaries = page.locator(".opblock-summary-path").all_inner_texts()
    joined = " ".join(summaries)
    assert "/api/v1/workspaces/{slug}/keys/" in joined and "/api/v1/chat/completions" in joined
    assert len(summaries) >= 20
    assert set(hosts) == {urlsplit(gateway.url).netloc}, hosts
    screenshot(page, "api-docs-swagger")
