"""Which workspace a management API call acts on, and with which role.

Session users act with their membership's role (workspaces.access: 404 for a workspace they are not
in, 403 for a role without the capability). A management key acts for its own workspace only, with
KEY_ROLE; any other workspace is a 404, exactly as for a stranger, so nothing leaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.http import Http404
from rest_framework.exceptions import PermissionDenied

from workspaces import access
from workspaces.models import ApiKey, Membership, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

# A management key is issued by an owner (keys.manage_admin) and acts with an owner's rights.
KEY_ROLE = Membership.Role.OWNER


@dataclass(frozen=True)
class WorkspaceAccess:
    workspace: Workspace
    role: str
    actor: AbstractBaseUser | ApiKey  # recorded in the audit log as who made a change

    def can(self, capability: str) -> bool:
        return access.can(self.role, capability)

    def require(self, capability: str) -> None:
        if not self.can(capability):
            raise PermissionDenied(f"Your role ({self.role}) may not do this in this workspace.")


def workspace_access(request, slug: str, capability: str | None) -> WorkspaceAccess:
    """The caller's access to workspace `slug` if it has `capability` there (404 / 403 otherwise);
    with no capability, any member passes."""
    key = request.auth if isinstance(request.auth, ApiKey) else None
    if key is not None:
        if key.workspace.slug != slug:
            raise Http404("No such workspace.")
        found = WorkspaceAccess(key.workspace, KEY_ROLE, key)
    else:
        membership = access.membership(request.user, slug)
        found = WorkspaceAccess(membership.workspace, membership.role, request.user)
    if capability is not None:
        found.require(capability)
    return found


def reachable_workspaces(request) -> list[WorkspaceAccess]:
    """Every workspace the caller may act on (a management key: its own)."""
    key = request.auth if isinstance(request.auth, ApiKey) else None
    if key is not None:
        return [WorkspaceAccess(key.workspace, KEY_ROLE, key)]
    return [WorkspaceAccess(m.workspace, m.role, request.user) for m in access.memberships(request.user)]
