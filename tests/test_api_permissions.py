"""Every management API endpoint against every kind of caller: the four roles, a stranger, nobody, an
inference key, this workspace's management key and another workspace's. Strangers (and another
workspace's key) get 404, never 403, so that nothing leaks; a role without the right gets 403;
nobody gets 401; an inference key gets 403. A refused change changes nothing and logs nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditLog
from billing.services import invoice_roll_up, usage_price
from tests.api_fixtures import NOV, PRINCIPALS, call_as, team, usage_event  # noqa: F401
from workspaces.models import ApiKey, Membership, Workspace

pytestmark = pytest.mark.django_db

EVERY_ROLE = {"owner", "admin", "developer", "finance", "admin_key"}
KEY_MANAGERS = {"owner", "admin", "admin_key"}
FINANCE = {"owner", "admin", "finance", "admin_key"}
OWNERS = {"owner", "admin_key"}


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str  # formatted with the objects of `objects()`
    allowed: frozenset[str]
    status: int = 200
    body: dict | None = None

    def __str__(self) -> str:
        return self.name


ENDPOINTS = [
    Endpoint("workspace", "GET", "", frozenset(EVERY_ROLE)),
    Endpoint("workspace.update", "PATCH", "", frozenset(OWNERS), 200, {"rpm_limit": 100, "budget_amount": "5"}),
    Endpoint("keys.list", "GET", "keys/", frozenset(KEY_MANAGERS)),
    Endpoint("keys.create", "POST", "keys/", frozenset(KEY_MANAGERS), 201, {"name": "new"}),
    Endpoint("keys.create_admin", "POST", "keys/", frozenset(OWNERS), 201, {"name": "new", "scope": "admin"}),
    Endpoint("keys.retrieve", "GET", "keys/{key}/", frozenset(KEY_MANAGERS)),
    Endpoint("keys.update", "PATCH", "keys/{key}/", frozenset(KEY_MANAGERS), 200, {"rpm_limit": 10}),
    Endpoint("keys.revoke", "POST", "keys/{key}/revoke/", frozenset(KEY_MANAGERS)),
    Endpoint("keys.rotate", "POST", "keys/{key}/rotate/", frozenset(KEY_MANAGERS), 201, {}),
    Endpoint("keys.revoke_admin", "POST", "keys/{admin_key}/revoke/", frozenset(OWNERS)),
    Endpoint("members.list", "GET", "members/", frozenset(KEY_MANAGERS)),
    Endpoint(
        "members.create", "POST", "members/", frozenset(KEY_MANAGERS), 201, {"user": "newbie", "role": "developer"}
    ),
    Endpoint("members.create_owner", "POST", "members/", frozenset(OWNERS), 201, {"user": "newbie", "role": "owner"}),
    Endpoint("members.retrieve", "GET", "members/{member}/", frozenset(KEY_MANAGERS)),
    Endpoint("members.update", "PATCH", "members/{member}/", frozenset(KEY_MANAGERS), 200, {"role": "finance"}),
    Endpoint("members.promote", "PATCH", "members/{member}/", frozenset(OWNERS), 200, {"role": "owner"}),
    Endpoint("members.destroy", "DELETE", "members/{member}/", frozenset(KEY_MANAGERS), 204),
    Endpoint("members.demote_owner", "PATCH", "members/{owner}/", frozenset(OWNERS), 200, {"role": "admin"}),
    Endpoint("usage", "GET", "usage/?start=2026-11-01&end=2026-11-08", frozenset(EVERY_ROLE)),
    Endpoint("requests.list", "GET", "requests/?start=2026-11-01&end=2026-11-08", frozenset(EVERY_ROLE)),
    Endpoint("requests.retrieve", "GET", "requests/{request}/", frozenset(EVERY_ROLE)),
    Endpoint("invoices.list", "GET", "invoices/", frozenset(FINANCE)),
    Endpoint("invoices.retrieve", "GET", "invoices/{invoice}/", frozenset(FINANCE)),
    Endpoint("invoices.csv", "GET", "invoices/{invoice}/csv/", frozenset(FINANCE)),
    Endpoint("audit", "GET", "audit/", frozenset(OWNERS)),
]


def objects(team, catalog) -> dict[str, object]:
    """One object of each kind in the team's workspace, for the paths above."""
    get_user_model().objects.create_user("newbie", "newbie@example.com")
    # A second owner, so that demoting one is allowed for whoever has the right.
    second = get_user_model().objects.create_user("second", "second@example.com")
    Membership.objects.create(user=second, workspace=team.workspace, role="owner")
    event = usage_event(team.workspace, at=NOV + timedelta(days=2), key=team.keys["inference"], input_tokens=1000)
    usage_price(request_ids=[event.request_id])
    (invoice,) = invoice_roll_up(period=NOV, now=NOV + timedelta(days=5))
    return {
        "key": team.keys["inference"].pk,
        "admin_key": team.keys["admin"].pk,
        "member": Membership.objects.get(workspace=team.workspace, user=team.users["developer"]).pk,
        "owner": Membership.objects.get(workspace=team.workspace, user=team.users["owner"]).pk,
        "request": event.request_id,
        "invoice": invoice.pk,
    }


def expected_refusal(endpoint: Endpoint, who: str) -> int:
    if who == "anonymous":
        return 401
    if who in ("stranger", "other_admin_key"):
        return 404
    return 403  # a role without the right, or an inference key


def state(team) -> tuple:
    keys = list(ApiKey.objects.order_by("pk").values_list("pk", "name", "revoked_at", "rpm_limit"))
    members = list(Membership.objects.order_by("pk").values_list("pk", "role"))
    limits = list(Workspace.objects.order_by("pk").values_list("pk", "rpm_limit", "budget_amount"))
    return keys, members, limits, AuditLog.objects.count()


@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_each_endpoint_answers_each_caller_as_its_role_allows(team, catalog, endpoint, who):
    path = team.url(endpoint.path.format(**objects(team, catalog)))
    before = state(team)
    response = call_as(team, who, endpoint.method, path, endpoint.body)
    if who in endpoint.allowed:
        assert response.status_code == endpoint.status, response.content
        return
    assert response.status_code == expected_refusal(endpoint, who), response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (
        error["type"]
        == {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}[response.status_code]
    )
    assert state(team) == before, "a refused call changed something"


def test_a_stranger_cannot_tell_a_missing_workspace_from_one_they_are_not_in(team):
    missing = call_as(team, "stranger", "GET", team.url("keys/", slug="no-such-workspace"))
    theirs = call_as(team, "stranger", "GET", team.url("keys/"))
    assert missing.status_code == theirs.status_code == 404
    assert missing.json() == theirs.json()
