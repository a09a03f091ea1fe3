"""Members through the management API: add an existing user by username or email, change roles,
remove; one owner always stays; only owners touch owners; other workspaces' members are 404."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditLog
from tests.api_fixtures import call_as, team  # noqa: F401
from workspaces.models import Membership

pytestmark = pytest.mark.django_db


def membership(team, who: str) -> Membership:
    return Membership.objects.get(workspace=team.workspace, user=team.users[who])


def test_members_are_listed_with_user_and_role(team):
    answer = call_as(team, "admin", "GET", team.url("members/"))
    assert answer.status_code == 200
    rows = answer.json()["results"]
    assert [(r["user"]["username"], r["role"]) for r in rows] == [
        ("owner", "owner"),
        ("admin", "admin"),
        ("developer", "developer"),
        ("finance", "finance"),
    ]
    assert set(rows[0]["user"]) == {"id", "username", "email"}


def test_add_by_email_or_username_and_refuse_unknown_or_duplicate(team):
    get_user_model().objects.create_user("carol", "Carol@Example.com")
    added = call_as(team, "admin", "POST", team.url("members/"), {"user": "carol@example.com", "role": "finance"})
    assert added.status_code == 201 and added.json()["user"]["username"] == "carol"
    again = call_as(team, "admin", "POST", team.url("members/"), {"user": "carol", "role": "developer"})
    assert again.status_code == 400 and "already a member" in again.json()["error"]["message"]
    unknown = call_as(team, "admin", "POST", team.url("members/"), {"user": "nobody@example.com", "role": "developer"})
    assert unknown.status_code == 400 and "no user" in unknown.json()["error"]["message"]
    bad_role = call_as(team, "admin", "POST", team.url("members/"), {"user": "carol", "role": "boss"})
    assert bad_role.status_code == 400 and bad_role.json()["error"]["param"] == "role"
    (row,) = AuditLog.objects.filter(action="member.add", actor_user=team.users["admin"])
    assert row.new["role"] == "finance" and row.target_label == "carol"


def test_the_last_owner_can_be_neither_demoted_nor_removed(team):
    owner = membership(team, "owner")
    demote = call_as(team, "owner", "PATCH", team.url(f"members/{owner.pk}/"), {"role": "admin"})
    assert demote.status_code == 409 and demote.json()["error"]["code"] == "last_owner"
    remove = call_as(team, "owner", "DELETE", team.url(f"members/{owner.pk}/"))
    assert remove.status_code == 409
    owner.refresh_from_db()
    assert owner.role == "owner"
    # With a second owner, the first may step down.
    promote = call_as(team, "owner", "PATCH", team.url(f"members/{membership(team, 'admin').pk}/"), {"role": "owner"})
    assert promote.status_code == 200
    assert call_as(team, "owner", "DELETE", team.url(f"members/{owner.pk}/")).status_code == 204
    assert not Membership.objects.filter(pk=owner.pk).exists()
    # The former owner is now a stranger to the workspace: 404.
    assert call_as(team, "owner", "GET", team.url("members/")).status_code == 404


def test_admins_manage_members_but_never_owners(team):
    owner = membership(team, "owner")
    developer = membership(team, "developer")
    assert call_as(team, "admin", "PATCH", team.url(f"members/{developer.pk}/"), {"role": "finance"}).status_code == 200
    assert call_as(team, "admin", "PATCH", team.url(f"members/{developer.pk}/"), {"role": "owner"}).status_code == 403
    assert call_as(team, "admin", "PATCH", team.url(f"members/{owner.pk}/"), {"role": "developer"}).status_code == 403
    assert call_as(team, "admin", "DELETE", team.url(f"members/{owner.pk}/")).status_code == 403
    owner.refresh_from_db()
    developer.refresh_from_db()
    assert (owner.role, developer.role) == ("owner", "finance")


def test_role_changes_are_audited_with_the_api_actor(team):
    developer = membership(team, "developer")
    call_as(team, "admin_key", "PATCH", team.url(f"members/{developer.pk}/"), {"role": "admin"})
    call_as(team, "admin_key", "DELETE", team.url(f"members/{developer.pk}/"))
    entries = call_as(team, "owner", "GET", team.url(f"audit/?target_type=member&target_id={developer.pk}")).json()
    assert [(e["action"], e["actor"]["kind"], e["old"], e["new"]) for e in entries["results"]] == [
        ("member.remove", "api_key", {"user": team.users["developer"].pk, "role": "admin"}, None),
        ("member.role_change", "api_key", {"role": "developer"}, {"role": "admin"}),
    ]


def test_another_workspaces_members_are_404(team):
    theirs = Membership.objects.get(workspace=team.other)
    for method, body in [("GET", None), ("PATCH", {"role": "developer"}), ("DELETE", None)]:
        assert call_as(team, "owner", method, team.url(f"members/{theirs.pk}/"), body).status_code == 404
    theirs.refresh_from_db()
    assert theirs.role == "owner"
