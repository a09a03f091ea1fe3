"""The cast for management API tests: one workspace with a member of every role, a stranger who owns
another workspace, a management key of each workspace and an inference key; `call(who, ...)` sends a
request as any of them through the real URL, middleware and DRF stack (Django's test client).

Import what you use: `from tests.api_fixtures import team, call_as`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from billing.models import UsageEvent
from workspaces.models import ApiKey, Membership, Workspace
from workspaces.services import api_key_issue, workspace_create

ROLES = ("owner", "admin", "developer", "finance")
# Everyone the permission tests try: the four roles, a stranger, nobody, and three kinds of key.
PRINCIPALS = (*ROLES, "stranger", "anonymous", "inference_key", "admin_key", "other_admin_key")
NOV = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class Team:
    workspace: Workspace
    other: Workspace
    users: dict[str, object]
    secrets: dict[str, str]  # principal → bearer secret, for the key principals
    keys: dict[str, ApiKey]
    other_key: ApiKey  # an inference key of `other`: nobody in `workspace` may reach it
    extra: dict = field(default_factory=dict)

    def url(self, rest: str = "", slug: str | None = None) -> str:
        return f"/api/v1/workspaces/{slug or self.workspace.slug}/{rest}"


@pytest.fixture
def team(db) -> Team:
    users = get_user_model().objects
    people = {role: users.create_user(role, f"{role}@example.com") for role in ROLES}
    people["stranger"] = users.create_user("stranger", "stranger@example.com")
    workspace = workspace_create(name="Acme", owner_email="owner@example.com")
    for role in ROLES[1:]:
        Membership.objects.create(user=people[role], workspace=workspace, role=role)
    other = workspace_create(name="Elsewhere", owner_email="stranger@example.com")
    inference, inference_secret = api_key_issue(workspace=workspace, name="app")
    admin_key, admin_secret = api_key_issue(workspace=workspace, name="ops", scope=ApiKey.Scope.ADMIN)
    other_admin, other_admin_secret = api_key_issue(workspace=other, name="ops", scope=ApiKey.Scope.ADMIN)
    other_key, _ = api_key_issue(workspace=other, name="app")
    return Team(
        workspace=workspace,
        other=other,
        users=people,
        secrets={
            "inference_key": inference_secret,
            "admin_key": admin_secret,
            "other_admin_key": other_admin_secret,
        },
        keys={"inference": inference, "admin": admin_key, "other_admin": other_admin},
        other_key=other_key,
    )


def client_for(team: Team, who: str, **client_kwargs) -> Client:
    client = Client(**client_kwargs)
    if who in team.users:
        client.force_login(team.users[who])
    elif who in team.secrets:
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {team.secrets[who]}"
    else:
        assert who == "anonymous", who
    return client


def call_as(team: Team, who: str, method: str, path: str, body: dict | None = None):
    client = client_for(team, who)
    kwargs = {"content_type": "application/json", "data": json.dumps(body)} if body is not None else {}
    return getattr(client, method.lower())(path, **kwargs)


def usage_event(workspace: Workspace, *, at: datetime, key: ApiKey | None = None, **fields) -> UsageEvent:
    values = {
        "outcome": UsageEvent.Outcome.COMPLETED,
        "http_status": 200,
        "model_slug": "codex-mini",
        "route_id": 7,
        "route_name": "azure-openai-1",
        "provider": "azure-openai",
        "endpoint_type": "azure_openai_v1_chat",
        "latency_ms": 420,
        "first_byte_ms": 180,
        "attempts": [
            {"route_id": 3, "route": "openai-1", "outcome": "upstream_5xx", "status": 503, "ms": 12.5},
            {"route_id": 7, "route": "azure-openai-1", "outcome": "ok", "status": 200, "ms": 400.0},
        ],
    }
    values.update(fields)
    return UsageEvent.objects.create(request_id=uuid.uuid4(), created_at=at, workspace=workspace, api_key=key, **values)


def money(text: str) -> Decimal:
    assert isinstance(text, str), f"money must leave the API as a string, got {text!r}"
    return Decimal(text)
