"""The workspace's audit log through the management API: owners only, newest first, filters, only this
workspace's entries (never another's, never the operators' global ones), and never a secret."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.services import credit_issue
from gateway.services import provider_key_add
from tests.api_fixtures import call_as, team  # noqa: F401

pytestmark = pytest.mark.django_db


def entries(team, who="owner", query=""):
    answer = call_as(team, who, "GET", team.url(f"audit/{query}"))
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


def test_owners_see_their_workspaces_changes_newest_first_and_nothing_else(team, catalog):
    created = call_as(team, "admin", "POST", team.url("keys/"), {"name": "ci"}).json()
    call_as(team, "admin", "POST", team.url(f"keys/{created['id']}/revoke/"))
    call_as(team, "stranger", "POST", team.url("keys/", slug="elsewhere"), {"name": "theirs"})
    provider_key_add(
        model_slug="codex-mini", provider="openai", base_url="https://api.openai.com", api_key="sk-x123456"
    )

    log = entries(team)
    assert [e["action"] for e in log[:2]] == ["api_key.revoke", "api_key.create"]
    assert log[0]["actor"] == {"kind": "user", "label": "admin", "user_id": team.users["admin"].pk, "key_id": None}
    assert log[0]["target_type"] == "api_key" and log[0]["target_id"] == str(created["id"])
    assert log[0]["old"] == {"revoked_at": None} and log[0]["new"]["revoked_at"] is not None
    labels = {e["target_label"] for e in log}
    assert not any("theirs" in label for label in labels)
    assert "provider_key.add" not in {e["action"] for e in log}  # operator-global: the admin only
    text = str(log)
    assert created["key"] not in text


def test_the_audit_log_filters_by_action_target_and_time(team):
    created = call_as(team, "owner", "POST", team.url("keys/"), {"name": "ci"}).json()
    call_as(team, "owner", "PATCH", team.url(f"keys/{created['id']}/"), {"rpm_limit": 5})
    updates = entries(team, query="?action=api_key.update")
    assert [(e["old"], e["new"]) for e in updates] == [({"rpm_limit": None}, {"rpm_limit": 5})]
    about_key = entries(team, query=f"?target_type=api_key&target_id={created['id']}")
    assert [e["action"] for e in about_key] == ["api_key.update", "api_key.create"]
    assert entries(team, query="?start=2100-01-01T00:00:00Z") == []
    assert call_as(team, "owner", "GET", team.url("audit/?target_type=password")).status_code == 400


def test_only_owners_and_management_keys_read_the_audit_log(team):
    for who in ("admin", "developer", "finance"):
        assert call_as(team, who, "GET", team.url("audit/")).status_code == 403
    assert entries(team, who="admin_key")
    assert call_as(team, "stranger", "GET", team.url("audit/")).status_code == 404


def test_billing_corrections_show_in_the_workspaces_log(team, catalog):
    credit_issue(workspace=team.workspace, amount=Decimal("5"), reason="goodwill", by=team.users["owner"])
    (entry,) = entries(team, query="?target_type=ledger_entry")
    assert entry["action"] == "credit.issue" and entry["actor"]["label"] == "owner"
    assert entry["new"]["reason"] == "goodwill"
