"""The docs page's fields table and the running gateway's validation are one spec: the table served by the live app
is cell for cell the ModelSpec held in the gateway's snapshot, and a catalog edit changes both at once."""

from __future__ import annotations

import copy
import re

import httpx
import pytest

from billing.models import Model
from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.test_modeldocs import html_table, spec_rows

pytestmark = pytest.mark.django_db(transaction=True)


def snapshot_spec(slug: str):
    from gateway import runtime

    return runtime.current().snapshot.models[slug].spec


def served_rows(gateway, slug: str) -> list[list[str]]:
    page = httpx.get(f"{gateway.url}/docs/models/{slug}", timeout=10)
    assert page.status_code == 200
    return html_table(page.text, "fields-table")[1]


def chat(gateway, world, **fields) -> httpx.Response:
    body = {"model": "codex-mini", "messages": [{"role": "user", "content": "Hi"}], **fields}
    return httpx.post(
        gateway.api + "/chat/completions", headers={"Authorization": f"Bearer {world.key}"}, json=body, timeout=20
    )


def test_served_table_is_the_spec_in_the_gateways_snapshot(gateway, world):
    gateway.refresh()
    for slug in Model.objects.filter(is_active=True).values_list("slug", flat=True):
        assert served_rows(gateway, slug) == spec_rows(snapshot_spec(slug)), slug


def test_a_catalog_edit_reaches_the_page_and_the_gateway_together(gateway, world, mock_upstream):
    mock_route(gateway, mock_upstream)
    assert chat(gateway, world, reasoning_effort="medium").status_code == 200
    assert chat(gateway, world, logprobs=True).status_code == 400  # in neither its table nor its extra fields

    model = Model.objects.get(slug="codex-mini")
    spec = copy.deepcopy(model.spec)
    next(row for row in spec["fields"] if row["name"] == "reasoning_effort")["accepted"] = ["low", "high"]
    model.spec = spec
    model.save()
    gateway.refresh()

    rows = served_rows(gateway, "codex-mini")
    assert rows == spec_rows(snapshot_spec("codex-mini"))
    effort = next(row for row in rows if row[0] == "`reasoning_effort`")
    assert effort[3] == "low, high"
    refused = chat(gateway, world, reasoning_effort="medium")
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "reasoning_effort"
    assert re.search(r"'low' and 'high'", refused.json()["error"]["message"])
    assert chat(gateway, world, reasoning_effort="high").status_code == 200
