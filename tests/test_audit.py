"""The audit log: one row per change, in the change's own transaction, never a secret."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from audit.models import AuditLog
from workspaces.models import ApiKey, Membership
from workspaces.services import (
    LastOwnerError,
    WorkspaceError,
    api_key_issue,
    api_key_revoke,
    api_key_rotate,
    api_key_set_limits,
    member_add,
    member_change_role,
    member_remove,
)

pytestmark = pytest.mark.django_db


def rows(action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=action).order_by("id"))


def test_issuing_a_key_records_who_and_the_key_but_never_its_secret(world):
    key, secret = api_key_issue(workspace=world.workspace, name="ci", rpm_limit=60, acting_user=world.owner)
    (row,) = rows("api_key.create")[-1:]
    assert row.actor_user == world.owner and row.actor_kind == "user" and row.actor_label == "owner"
    assert row.workspace == world.workspace
    assert (row.target_type, row.target_id) == ("api_key", str(key.pk))
    assert row.old is None
    assert row.new["name"] == "ci" and row.new["rpm_limit"] == 60 and row.new["prefix"] == key.prefix
    stored = str(AuditLog.objects.values_list("old", "new"))
    assert secret not in stored and key.key_hash not in stored


def test_a_change_that_fails_leaves_no_audit_row_and_a_row_never_outlives_its_change(world):
    before = AuditLog.objects.count()
    with pytest.raises(WorkspaceError):
        api_key_issue(workspace=world.workspace, name="default", acting_user=world.owner)  # name taken
    assert AuditLog.objects.count() == before

    with pytest.raises(RuntimeError), transaction.atomic():
        api_key_revoke(api_key=world.key, acting_user=world.owner)
        raise RuntimeError("the caller's transaction fails after the change")
    world.key.refresh_from_db()
    assert world.key.revoked_at is None and AuditLog.objects.count() == before

    api_key_revoke(api_key=world.key, acting_user=world.owner)
    assert [r.new["revoked_at"] is not None for r in rows("api_key.revoke")] == [True]


def test_an_audit_write_that_fails_takes_the_change_with_it(world, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("the audit table is unavailable")

    monkeypatch.setattr(AuditLog.objects, "create", broken)
    with pytest.raises(RuntimeError):
        api_key_set_limits(api_key=world.key, rpm_limit=5, acting_user=world.owner)
    world.key.refresh_from_db()
    assert world.key.rpm_limit is None


@pytest.mark.django_db(transaction=True)
def test_record_refuses_to_run_outside_a_transaction(world):
    # Autocommit here (a transactional test): a row written on its own could outlive a failed change.
    with pytest.raises(audit.AuditError):
        audit.record(world.owner, "api_key.update", world.key, {}, {})
    assert not AuditLog.objects.filter(action="api_key.update").exists()


def test_secret_fields_and_keys_inside_values_are_never_stored(world):
    with transaction.atomic():
        row = audit.record(
            world.owner,
            "provider_key.update",
            world.key,
            {"secret": "sk-old", "api_key": "x", "base_url": "https://a"},
            {"secret_encrypted": "gAAA", "note": f"leaked {world.secret} here", "nested": {"password": "p"}},
        )
    row.refresh_from_db()
    assert row.old == {"base_url": "https://a"}
    assert row.new == {"note": "leaked omx_[REDACTED] here", "nested": {}}


def test_limits_changes_record_only_what_changed_with_money_as_strings(world):
    api_key_set_limits(
        api_key=world.key, budget_amount=Decimal("12.50"), budget_period="month", acting_user=world.owner
    )
    (row,) = rows("api_key.update")
    assert row.old == {"budget_amount": None, "budget_period": "none"}
    assert row.new == {"budget_amount": "12.500000", "budget_period": "month"}  # as stored
    # The same values again: nothing changed, nothing recorded.
    api_key_set_limits(api_key=world.key, budget_amount=Decimal("12.5"), acting_user=world.owner)
    assert len(rows("api_key.update")) == 1


def test_limits_are_checked_and_a_revoked_key_is_final(world):
    with pytest.raises(WorkspaceError, match="rpm_limit"):
        api_key_set_limits(api_key=world.key, rpm_limit=0)
    with pytest.raises(WorkspaceError, match="past"):
        api_key_set_limits(api_key=world.key, expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(WorkspaceError, match="cannot change"):
        api_key_set_limits(api_key=world.key, scope="admin")
    api_key_revoke(api_key=world.key)
    with pytest.raises(WorkspaceError, match="revoked"):
        api_key_set_limits(api_key=world.key, rpm_limit=3)


def test_rotation_without_grace_revokes_the_old_key_and_keeps_name_and_limits(world):
    api_key_set_limits(api_key=world.key, rpm_limit=7, allowed_models=["codex-mini"])
    old, new, secret = api_key_rotate(api_key=world.key, acting_user=world.owner)
    assert old.revoked_at is not None and new.revoked_at is None
    assert (new.name, new.rpm_limit, new.allowed_models) == ("default", 7, ["codex-mini"])
    assert secret.startswith("omx_live_") and new.prefix == secret[:13]
    (row,) = rows("api_key.rotate")
    assert row.old == {"revoked_at": None} and row.new["replaced_by"] == new.pk


def test_rotation_with_grace_lets_the_old_key_work_until_it_expires(world):
    old, new, _ = api_key_rotate(api_key=world.key, grace=timedelta(hours=1), acting_user=world.owner)
    assert old.revoked_at is None and old.is_active
    assert timedelta(minutes=59) < old.expires_at - timezone.now() <= timedelta(hours=1)
    assert old.name == f"default (rotated #{old.pk})" and new.name == "default"
    with pytest.raises(WorkspaceError, match="grace"):
        api_key_rotate(api_key=new, grace=timedelta(days=8))


def test_members_are_added_changed_and_removed_with_one_owner_always_left(world):
    users = get_user_model().objects
    users.create_user("carol", "Carol@Example.com")
    carol = member_add(workspace=world.workspace, user="carol@example.com", role="finance", acting_user=world.owner)
    assert carol.role == "finance"
    with pytest.raises(WorkspaceError, match="already a member"):
        member_add(workspace=world.workspace, user="carol", role="admin")
    with pytest.raises(WorkspaceError, match="no user"):
        member_add(workspace=world.workspace, user="nobody@example.com", role="admin")

    owner = Membership.objects.get(workspace=world.workspace, user=world.owner)
    with pytest.raises(LastOwnerError):
        member_change_role(membership=owner, role="admin")
    with pytest.raises(LastOwnerError):
        member_remove(membership=owner)
    member_change_role(membership=carol, role="owner", acting_user=world.owner)
    member_change_role(membership=owner, role="admin", acting_user=world.owner)
    with pytest.raises(LastOwnerError):
        member_remove(membership=carol)  # now the only owner
    member_remove(membership=owner, acting_user=world.owner)
    assert list(Membership.objects.filter(workspace=world.workspace, role="owner").values_list("pk", flat=True)) == [
        carol.pk
    ]


def test_member_changes_are_audited_with_old_and_new_roles(world):
    get_user_model().objects.create_user("dave", "dave@example.com")
    dave = member_add(workspace=world.workspace, user="dave", role="developer", acting_user=world.owner)
    member_change_role(membership=dave, role="admin", acting_user=world.owner)
    member_remove(membership=dave, acting_user=world.owner)
    actions = list(
        AuditLog.objects.filter(target_type="member", target_id=str(dave.pk))
        .order_by("id")
        .values_list("action", "old", "new", "target_label")
    )
    assert actions == [
        ("member.add", None, {"user": dave.user_id, "role": "developer"}, "dave"),
        ("member.role_change", {"role": "developer"}, {"role": "admin"}, "dave"),
        ("member.remove", {"user": dave.user_id, "role": "admin"}, None, "dave"),
    ]


def test_an_admin_key_is_recorded_as_the_actor(world):
    admin_key, _ = api_key_issue(workspace=world.workspace, name="ops", scope=ApiKey.Scope.ADMIN)
    api_key_revoke(api_key=world.key, acting_user=admin_key)
    (row,) = rows("api_key.revoke")
    assert row.actor_kind == "api_key" and row.actor_api_key == admin_key and row.actor_user is None
    assert row.actor_label == f"API key {admin_key.prefix}… (ops)"
