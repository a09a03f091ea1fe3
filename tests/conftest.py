"""Shared fixtures. `world` is the healthchecks-style cast: an owner, a member, and an outsider.

Other test modules may use `world` and `catalog` freely; they only read the real database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from workspaces.models import ApiKey, Membership, Workspace
from workspaces.services import api_key_issue, workspace_create

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """The design docs folder: `shared/` beside the repository (CI clones main next to a copy of it)."""
    for candidate in (REPO_ROOT.parent / "shared", REPO_ROOT / "shared"):
        if (candidate / "reference").is_dir():
            return candidate
    return None


@dataclass
class World:
    owner: object
    member: object
    outsider: object
    workspace: Workspace
    other_workspace: Workspace
    key: ApiKey  # an inference key of `workspace`
    secret: str  # its clear secret (only the hash is in the database)
    other_key: ApiKey  # an inference key of `other_workspace`, which `owner` and `member` must never see
    other_secret: str


@pytest.fixture
def world(db) -> World:
    users = get_user_model().objects
    # No passwords: hashing one costs ~0.3 s; tests log in with `client.force_login(world.owner)`.
    owner = users.create_user("owner", "owner@example.com")
    member = users.create_user("member", "member@example.com")
    outsider = users.create_user("outsider", "outsider@example.com")
    workspace = workspace_create(name="Acme", owner_email="owner@example.com")
    Membership.objects.create(user=member, workspace=workspace, role=Membership.Role.DEVELOPER)
    other = workspace_create(name="Elsewhere", owner_email="outsider@example.com")
    key, secret = api_key_issue(workspace=workspace, name="default")
    other_key, other_secret = api_key_issue(workspace=other, name="default")
    return World(owner, member, outsider, workspace, other, key, secret, other_key, other_secret)


@pytest.fixture
def catalog(db) -> dict:
    """The built-in catalog (codex-mini, gpt-4.1-mini, gemini-2.5-flash) and its price cards."""
    from billing.catalog import catalog_load

    return catalog_load()
