import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404

from workspaces import access
from workspaces.models import Membership, Workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_workspaces():
    user = get_user_model().objects.create_user("dev", password="x")
    mine = Workspace.objects.create(name="Mine", slug="mine")
    theirs = Workspace.objects.create(name="Theirs", slug="theirs")
    Membership.objects.create(user=user, workspace=mine, role=Membership.Role.DEVELOPER)
    return user, mine, theirs


def test_a_stranger_gets_404_whatever_the_form_of_the_workspace(two_workspaces):
    user, _, theirs = two_workspaces
    for ref in (theirs, theirs.slug, theirs.id):
        with pytest.raises(Http404):
            access.membership(user, ref)


def test_a_member_without_the_capability_gets_403_and_with_it_the_membership(two_workspaces):
    user, mine, _ = two_workspaces
    assert access.require(user, "mine", "usage.view").workspace == mine
    with pytest.raises(PermissionDenied):
        access.require(user, "mine", "keys.manage")


def test_anonymous_users_belong_nowhere(two_workspaces):
    from django.contrib.auth.models import AnonymousUser

    assert access.memberships(AnonymousUser()) == []
    with pytest.raises(Http404):
        access.membership(AnonymousUser(), "mine")


def test_every_role_reads_usage_and_only_owners_read_the_audit_log():
    for role in Membership.Role.values:
        assert access.can(role, "usage.view")
    assert [r for r in Membership.Role.values if access.can(r, "audit.view")] == ["owner"]
