"""API keys through the management API: the secret once, limits with money as strings, revoke,
rotate, filters and pagination, and no way into another workspace's keys."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditLog
from tests.api_fixtures import call_as, client_for, money, team  # noqa: F401
from workspaces.models import ApiKey
from workspaces.services import api_key_issue, api_key_revoke, hash_api_key

pytestmark = pytest.mark.django_db


def test_the_secret_is_in_the_create_answer_only(team):
    created = call_as(team, "owner", "POST", team.url("keys/"), {"name": "ci", "rpm_limit": 60})
    assert created.status_code == 201
    assert "no-store" in created["Cache-Control"]
    body = created.json()
    secret = body["key"]
    assert secret.startswith("omx_live_") and body["prefix"] == secret[:13]
    row = ApiKey.objects.get(pk=body["id"])
    assert row.key_hash == hash_api_key(secret)  # the database holds only the hash
    for path in (team.url("keys/"), team.url(f"keys/{row.pk}/"), team.url("audit/")):
        answer = call_as(team, "owner", "GET", path)
        assert answer.status_code == 200 and secret not in answer.content.decode()
        assert row.key_hash not in answer.content.decode()
    assert "key" not in call_as(team, "owner", "GET", team.url(f"keys/{row.pk}/")).json()


def test_an_admin_key_creates_a_management_key_that_then_works(team):
    created = call_as(team, "admin_key", "POST", team.url("keys/"), {"name": "robot", "scope": "admin"})
    assert created.status_code == 201
    secret = created.json()["key"]
    assert secret.startswith("omx_admin_")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get(team.url("keys/")).status_code == 200


def test_limits_change_with_money_as_strings_and_null_clears(team):
    key = team.keys["inference"]
    changed = call_as(
        team,
        "admin",
        "PATCH",
        team.url(f"keys/{key.pk}/"),
        {"budget_amount": "25.5", "budget_period": "month", "tpm_limit": 90000, "allowed_models": ["codex-mini"]},
    )
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert body["budget_amount"] == "25.500000" and money(body["budget_amount"]) == money("25.5")
    assert (body["budget_period"], body["tpm_limit"], body["allowed_models"]) == ("month", 90000, ["codex-mini"])
    cleared = call_as(team, "admin", "PATCH", team.url(f"keys/{key.pk}/"), {"budget_amount": None})
    assert cleared.json()["budget_amount"] is None and cleared.json()["tpm_limit"] == 90000
    (first, second) = AuditLog.objects.filter(action="api_key.update").order_by("id")
    assert first.actor_user == team.users["admin"] and first.new["budget_amount"] == "25.500000"
    assert (second.old, second.new) == ({"budget_amount": "25.500000"}, {"budget_amount": None})


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"rpm_limit": 0}, "rpm_limit"),
        ({"budget_amount": "-1"}, "budget_amount"),
        ({"budget_amount": 1.5}, None),  # a float is accepted by DRF's DecimalField: checked below
        ({"budget_period": "week"}, "budget_period"),
        ({"allowed_models": ["no spaces"]}, "allowed_models[0]"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, None),
        ({"expires_at": "not a time"}, "expires_at"),
    ],
)
def test_bad_limits_are_400_naming_the_field(team, body, param):
    key = team.keys["inference"]
    answer = call_as(team, "owner", "PATCH", team.url(f"keys/{key.pk}/"), body)
    if body == {"budget_amount": 1.5}:
        assert answer.status_code == 200 and answer.json()["budget_amount"] == "1.500000"
        return
    assert answer.status_code == 400, answer.content
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    if param is None:
        assert "past" in error["message"]


def test_a_taken_name_is_a_409_and_a_revoked_key_cannot_change(team):
    taken = call_as(team, "owner", "POST", team.url("keys/"), {"name": "app"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "duplicate_name"
    key = team.keys["inference"]
    assert call_as(team, "owner", "POST", team.url(f"keys/{key.pk}/revoke/")).status_code == 200
    changed = call_as(team, "owner", "PATCH", team.url(f"keys/{key.pk}/"), {"rpm_limit": 5})
    assert changed.status_code == 400 and "revoked" in changed.json()["error"]["message"]


def test_revoking_is_idempotent_and_audited_once(team):
    key = team.keys["inference"]
    first = call_as(team, "admin_key", "POST", team.url(f"keys/{key.pk}/revoke/"))
    again = call_as(team, "admin_key", "POST", team.url(f"keys/{key.pk}/revoke/"))
    assert first.status_code == again.status_code == 200
    assert first.json()["status"] == "revoked" and first.json()["revoked_at"] == again.json()["revoked_at"]
    (row,) = AuditLog.objects.filter(action="api_key.revoke")
    assert row.actor_kind == "api_key" and row.actor_api_key == team.keys["admin"]


def test_rotation_gives_a_new_secret_once_and_revokes_or_expires_the_old_key(team):
    key = team.keys["inference"]
    now_answer = call_as(team, "owner", "POST", team.url(f"keys/{key.pk}/rotate/"), {})
    assert now_answer.status_code == 201 and "no-store" in now_answer["Cache-Control"]
    body = now_answer.json()
    assert body["old_key"]["status"] == "revoked" and body["key"]["name"] == "app"
    new_id, secret = body["key"]["id"], body["key"]["key"]
    assert ApiKey.objects.get(pk=new_id).key_hash == hash_api_key(secret)
    assert secret not in call_as(team, "owner", "GET", team.url(f"keys/{new_id}/")).content.decode()

    graced = call_as(team, "owner", "POST", team.url(f"keys/{new_id}/rotate/"), {"grace_seconds": 3600})
    old = graced.json()["old_key"]
    assert old["status"] == "active" and old["name"] == f"app (rotated #{new_id})"
    assert old["expires_at"] is not None
    too_long = call_as(team, "owner", "POST", team.url(f"keys/{new_id}/rotate/"), {"grace_seconds": 10**9})
    assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "grace_seconds"


def test_filters_and_cursor_pagination(team):
    for n in range(5):
        api_key_issue(workspace=team.workspace, name=f"bulk-{n}")
    api_key_revoke(api_key=team.keys["inference"])
    revoked = call_as(team, "owner", "GET", team.url("keys/?status=revoked")).json()["results"]
    assert [k["name"] for k in revoked] == ["app"]
    admin_only = call_as(team, "owner", "GET", team.url("keys/?scope=admin")).json()["results"]
    assert [k["name"] for k in admin_only] == ["ops"]
    assert call_as(team, "owner", "GET", team.url("keys/?status=sleepy")).status_code == 400

    names, url = [], team.url("keys/?page_size=3")
    while url:
        page = call_as(team, "owner", "GET", url).json()
        assert len(page["results"]) <= 3
        names += [k["name"] for k in page["results"]]
        url = page["next"]
    assert names == ["app", "ops", "bulk-0", "bulk-1", "bulk-2", "bulk-3", "bulk-4"]  # oldest first, each once


def test_a_forged_cursor_is_a_404_not_a_server_error(team):
    forged = base64.b64encode(b"p=not-a-time").decode()
    answer = call_as(team, "owner", "GET", team.url(f"keys/?cursor={forged}"))
    assert answer.status_code == 404 and answer.json()["error"]["message"] == "Invalid cursor"


def test_another_workspaces_key_is_404_through_every_key_operation(team):
    other = team.other_key
    for method, rest, body in [
        ("GET", f"keys/{other.pk}/", None),
        ("PATCH", f"keys/{other.pk}/", {"rpm_limit": 1}),
        ("POST", f"keys/{other.pk}/revoke/", None),
        ("POST", f"keys/{other.pk}/rotate/", {}),
    ]:
        answer = call_as(team, "owner", method, team.url(rest), body)
        assert answer.status_code == 404, (method, rest)
    other.refresh_from_db()
    assert other.revoked_at is None and other.rpm_limit is None
    listing = call_as(team, "owner", "GET", team.url("keys/")).content.decode()
    assert other.prefix not in listing


def test_management_keys_that_are_revoked_expired_or_unknown_get_401(team):
    admin = team.keys["admin"]
    assert call_as(team, "admin_key", "GET", team.url("")).status_code == 200
    admin.refresh_from_db()
    assert admin.last_used_at is not None
    unknown = Client(HTTP_AUTHORIZATION="Bearer omx_admin_" + "x" * 40).get(team.url(""))
    assert unknown.status_code == 401 and unknown["WWW-Authenticate"] == 'Bearer realm="omixa"'
    ApiKey.objects.filter(pk=admin.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = call_as(team, "admin_key", "GET", team.url(""))
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    api_key_revoke(api_key=admin)
    revoked = call_as(team, "admin_key", "GET", team.url(""))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]


def test_session_writes_need_the_csrf_token(team):
    client = client_for(team, "owner", enforce_csrf_checks=True)
    refused = client.post(team.url("keys/"), json.dumps({"name": "x"}), content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    assert not ApiKey.objects.filter(name="x").exists()
    # A management key is not a cookie: no CSRF token needed.
    keyed = client_for(team, "admin_key", enforce_csrf_checks=True)
    assert keyed.post(team.url("keys/"), json.dumps({"name": "x"}), content_type="application/json").status_code == 201


def test_the_workspace_list_shows_each_callers_own_workspaces_and_role(team):
    (only,) = call_as(team, "finance", "GET", "/api/v1/workspaces/").json()
    assert (only["slug"], only["name"], only["currency"], only["role"]) == ("acme", "Acme", "USD", "finance")
    assert (only["rpm_limit"], only["budget_amount"], only["limits_fail_mode"]) == (None, None, "open")
    assert [w["slug"] for w in call_as(team, "stranger", "GET", "/api/v1/workspaces/").json()] == ["elsewhere"]
    assert [w["role"] for w in call_as(team, "admin_key", "GET", "/api/v1/workspaces/").json()] == ["owner"]
    assert call_as(team, "anonymous", "GET", "/api/v1/workspaces/").status_code == 401
    assert call_as(team, "inference_key", "GET", "/api/v1/workspaces/").status_code == 403


def test_owners_set_the_workspaces_own_limits_and_everyone_reads_them(team):
    changed = call_as(
        team,
        "owner",
        "PATCH",
        team.url(""),
        {"rpm_limit": 600, "budget_amount": "100", "budget_period": "month", "limits_fail_mode": "closed"},
    )
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert (body["rpm_limit"], body["budget_amount"], body["budget_period"], body["limits_fail_mode"]) == (
        600,
        "100.000000",
        "month",
        "closed",
    )
    assert call_as(team, "developer", "GET", team.url("")).json()["budget_amount"] == "100.000000"
    bad = call_as(team, "owner", "PATCH", team.url(""), {"limits_fail_mode": "ajar"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limits_fail_mode"
    (row,) = AuditLog.objects.filter(action="workspace.update")
    assert row.workspace == team.workspace and row.actor_user == team.users["owner"]
    assert row.new == {
        "rpm_limit": 600,
        "budget_amount": "100.000000",
        "budget_period": "month",
        "limits_fail_mode": "closed",
    }
