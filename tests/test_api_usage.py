"""Usage aggregated by day, model or key, and each request's record, through the management API:
exact costs as decimal strings from the ledger, every UTC day listed, nothing of another workspace."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from billing.models import LedgerEntry
from billing.services import usage_price
from tests.api_fixtures import NOV, call_as, money, team, usage_event  # noqa: F401
from workspaces.services import api_key_issue

pytestmark = pytest.mark.django_db


@pytest.fixture
def usage(team, catalog):
    """Three priced requests and one still pending in the team's workspace, one in another."""
    app = team.keys["inference"]
    batch, _ = api_key_issue(workspace=team.workspace, name="batch")
    a = usage_event(team.workspace, at=NOV + timedelta(days=1, hours=3), key=app, input_tokens=1000, output_tokens=500)
    b = usage_event(
        team.workspace,
        at=NOV + timedelta(days=2, hours=23, minutes=59),
        key=batch,
        input_tokens=2000,
        cached_input_tokens=1000,
        output_tokens=100,
        reasoning_tokens=40,
    )
    c = usage_event(
        team.workspace, at=NOV + timedelta(days=2), key=app, model_slug="gpt-4.1-mini", input_tokens=10, output_tokens=5
    )
    pending = usage_event(team.workspace, at=NOV + timedelta(days=2, hours=1), key=app, input_tokens=7)
    theirs = usage_event(team.other, at=NOV + timedelta(days=1), key=team.other_key, input_tokens=999_999)
    usage_price(request_ids=[a.request_id, b.request_id, c.request_id, theirs.request_id])
    return {"a": a, "b": b, "c": c, "pending": pending, "theirs": theirs, "batch": batch}


def report(team, who="developer", **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    answer = call_as(team, who, "GET", team.url(f"usage/?{query}"))
    assert answer.status_code == 200, answer.content
    return answer.json()


def test_usage_by_day_lists_every_utc_day_with_exact_costs(team, usage):
    body = report(team, group_by="day", start="2026-11-01", end="2026-11-05")
    assert body["currency"] == "USD" and body["start"] == "2026-11-01T00:00:00Z"
    days = {row["group"]: row for row in body["data"]}
    assert list(days) == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    assert days["2026-11-01"]["requests"] == 0 and days["2026-11-01"]["cost"] == "0"
    # codex-mini: $1.50 per 1M input, $6.00 output: 1000 in + 500 out = 0.0045 exactly.
    assert days["2026-11-02"]["cost"] == "0.0045" and days["2026-11-02"]["requests"] == 1
    c_cost = LedgerEntry.objects.get(usage_event=usage["c"]).amount
    # 2000 in, 1000 cached at $0.375, 100 out: 0.003 + 0.000375 + 0.0006.
    assert money(days["2026-11-03"]["cost"]) == Decimal("0.003975") + c_cost
    assert days["2026-11-03"]["requests"] == 3 and days["2026-11-03"]["unpriced_requests"] == 1
    assert days["2026-11-03"]["reasoning_tokens"] == 40
    total = body["total"]
    assert total["requests"] == 4 and total["input_tokens"] == 1000 + 2000 + 10 + 7
    assert money(total["cost"]) == Decimal("0.0045") + Decimal("0.003975") + c_cost


def test_usage_by_model_and_by_key(team, usage):
    by_model = {r["group"]: r for r in report(team, group_by="model", start="2026-11-01", end="2026-12-01")["data"]}
    assert set(by_model) == {"codex-mini", "gpt-4.1-mini"}
    assert by_model["codex-mini"]["requests"] == 3 and by_model["codex-mini"]["cost"] == "0.008475"
    by_key = {r["group"]: r for r in report(team, group_by="key", start="2026-11-01", end="2026-12-01")["data"]}
    app, batch = team.keys["inference"], usage["batch"]
    assert set(by_key) == {str(app.pk), str(batch.pk)}
    assert (by_key[str(batch.pk)]["key_name"], by_key[str(batch.pk)]["key_prefix"]) == ("batch", batch.prefix)
    assert by_key[str(batch.pk)]["cost"] == "0.003975" and by_key[str(app.pk)]["requests"] == 3


def test_usage_filters_by_model_and_key(team, usage):
    only = report(team, group_by="model", start="2026-11-01", end="2026-12-01", model="gpt-4.1-mini")
    assert [r["group"] for r in only["data"]] == ["gpt-4.1-mini"]
    batch = report(team, group_by="day", start="2026-11-01", end="2026-11-04", key=usage["batch"].pk)
    assert batch["total"]["requests"] == 1


def test_usage_never_counts_another_workspace(team, usage):
    body = report(team, group_by="key", start="2026-11-01", end="2026-12-01")
    assert str(team.other_key.pk) not in {r["group"] for r in body["data"]}
    assert body["total"]["input_tokens"] < 999_999
    # Filtering by another workspace's key id yields nothing, not its usage.
    assert (
        report(team, group_by="day", start="2026-11-01", end="2026-11-03", key=team.other_key.pk)["total"]["requests"]
        == 0
    )


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("group_by=week", "group_by"),
        ("start=2026-11-05&end=2026-11-01", "start"),
        ("start=2025-01-01&end=2026-11-01", "start"),
        ("start=yesterday", "start"),
        ("key=abc", "key"),
    ],
)
def test_bad_usage_queries_are_400_naming_the_parameter(team, query, param):
    answer = call_as(team, "owner", "GET", team.url(f"usage/?{query}"))
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param


def test_a_request_record_has_tokens_cost_route_attempts_status_and_latency(team, usage):
    event = usage["b"]
    answer = call_as(team, "finance", "GET", team.url(f"requests/{event.request_id}/"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["request_id"] == str(event.request_id) and body["model"] == "codex-mini"
    assert body["key"] == {"id": usage["batch"].pk, "name": "batch", "prefix": usage["batch"].prefix}
    assert body["usage"] == {
        "prompt_tokens": 3000,
        "input_tokens": 2000,
        "cached_input_tokens": 1000,
        "cache_write_tokens": 0,
        "completion_tokens": 100,
        "reasoning_tokens": 40,
        "total_tokens": 3100,
    }
    assert body["cost"] == "0.003975" and body["currency"] == "USD" and body["pricing_state"] == "priced"
    assert body["route"] == {
        "id": 7,
        "name": "azure-openai-1",
        "provider": "azure-openai",
        "endpoint_type": "azure_openai_v1_chat",
    }
    assert [a["outcome"] for a in body["attempts"]] == ["upstream_5xx", "ok"]
    assert (body["status"], body["http_status"], body["latency_ms"], body["first_byte_ms"]) == (
        "completed",
        200,
        420,
        180,
    )


def test_an_unpriced_request_has_a_null_cost(team, usage):
    body = call_as(team, "owner", "GET", team.url(f"requests/{usage['pending'].request_id}/")).json()
    assert body["cost"] is None and body["pricing_state"] == "pending"


def test_another_workspaces_request_is_404(team, usage):
    theirs = usage["theirs"].request_id
    assert call_as(team, "owner", "GET", team.url(f"requests/{theirs}/")).status_code == 404
    assert call_as(team, "stranger", "GET", team.url(f"requests/{theirs}/", slug="elsewhere")).status_code == 200


def test_requests_are_listed_newest_first_with_filters(team, usage):
    listed = call_as(team, "developer", "GET", team.url("requests/?start=2026-11-01&end=2026-12-01")).json()
    ids = [r["request_id"] for r in listed["results"]]
    assert ids == [str(usage[n].request_id) for n in ("b", "pending", "c", "a")]
    filtered = call_as(
        team, "developer", "GET", team.url("requests/?start=2026-11-01&end=2026-12-01&model=gpt-4.1-mini")
    ).json()
    assert [r["request_id"] for r in filtered["results"]] == [str(usage["c"].request_id)]
    bad = call_as(team, "developer", "GET", team.url("requests/?outcome=exploded"))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "outcome"
