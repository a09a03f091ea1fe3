"""Who may do what in a workspace. One table of capabilities per role, shared by the management API
and the pages, and one lookup that answers 404 (never 403) for a workspace the user is not in, so
that nothing about other tenants leaks; 403 is only for a member whose role lacks the right.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from workspaces.models import Membership, Workspace

Role = Membership.Role

CAPABILITIES: dict[str, frozenset[str]] = {
    "keys.view": frozenset({Role.OWNER, Role.ADMIN}),
    "keys.manage": frozenset({Role.OWNER, Role.ADMIN}),
    # Management keys (omx_admin_…) act with an owner's rights: only owners issue or change them.
    "keys.manage_admin": frozenset({Role.OWNER}),
    "members.view": frozenset({Role.OWNER, Role.ADMIN}),
    "members.manage": frozenset({Role.OWNER, Role.ADMIN}),
    # Making someone an owner, or changing or removing an owner, is for owners only.
    "members.manage_owners": frozenset({Role.OWNER}),
    # The workspace's own rate limits and spend budget (shared by all its keys).
    "workspace.manage": frozenset({Role.OWNER}),
    "usage.view": frozenset({Role.OWNER, Role.ADMIN, Role.DEVELOPER, Role.FINANCE}),
    "invoices.view": frozenset({Role.OWNER, Role.ADMIN, Role.FINANCE}),
    "audit.view": frozenset({Role.OWNER}),
    "docs.view": frozenset({Role.OWNER, Role.ADMIN, Role.DEVELOPER, Role.FINANCE}),
}


def can(role: str, capability: str) -> bool:
    """Whether `role` has `capability` (an unknown capability is a bug: KeyError)."""
    return role in CAPABILITIES[capability]


def memberships(user) -> list[Membership]:
    """The user's memberships, with their workspaces, ordered by workspace slug."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(Membership.objects.filter(user=user).select_related("workspace").order_by("workspace__slug"))


def membership(user, workspace: Workspace | str | int) -> Membership:
    """The user's membership in `workspace` (an object, slug or id), or Http404 when there is none."""
    if not getattr(user, "is_authenticated", False):
        raise Http404("No such workspace.")
    query = Membership.objects.select_related("workspace").filter(user=user)
    if isinstance(workspace, Workspace):
        query = query.filter(workspace=workspace)
    elif isinstance(workspace, int):
        query = query.filter(workspace_id=workspace)
    else:
        query = query.filter(workspace__slug=workspace)
    found = query.first()
    if found is None:
        raise Http404("No such workspace.")
    return found


def require(user, workspace: Workspace | str | int, capability: str) -> Membership:
    """The membership if the user may use `capability` there. A stranger to the workspace gets
    Http404 (nothing about other tenants leaks); a member whose role lacks it gets PermissionDenied."""
    found = membership(user, workspace)
    if not can(found.role, capability):
        raise PermissionDenied(f"Your role ({found.role}) may not do this in this workspace.")
    return found
