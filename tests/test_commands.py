"""Management commands: one JSON object on stdout, a one-line error on stderr with a non-zero exit,
and nothing half-created. A few run as real `manage.py` processes to prove the process contract."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings

from billing.catalog import DEFAULT_CATALOG_PATH
from gateway.models import ProviderKey
from tests.conftest import REPO_ROOT
from workspaces.models import ApiKey, Membership, Workspace
from workspaces.services import hash_api_key

CATALOG_MODELS = len(json.loads(DEFAULT_CATALOG_PATH.read_text())["models"])

# --- the process contract, through manage.py ---------------------------------------------------


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """Run `manage.py` in a child process against its own migrated SQLite file.

    The child cannot share pytest's test database (in-memory on SQLite, inside a transaction on
    PostgreSQL), so it gets a throwaway file; `rows` reads it back to prove what was written.
    """
    folder = tmp_path_factory.mktemp("cli")
    db_file = folder / "omixa.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{db_file}",
        "OMIXA_VAR_DIR": str(folder),
        "OMIXA_LOG_LEVEL": "WARNING",
    }
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "OMIXA_DEBUG"):
        env.pop(name, None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    def rows(sql: str) -> list[tuple]:
        with sqlite3.connect(db_file) as conn:
            return conn.execute(sql).fetchall()

    migrated = run("migrate", "--noinput", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr
    run.rows = rows
    return run


def one_json_object(stdout: str) -> dict:
    assert stdout.count("\n") <= 1, f"more than one line on stdout: {stdout!r}"
    return json.loads(stdout)


def test_cli_load_catalog_then_create_workspace_and_key(cli):
    loaded = cli("load_catalog")
    assert loaded.returncode == 0, loaded.stderr
    assert one_json_object(loaded.stdout)["models"] == CATALOG_MODELS

    created = cli("create_workspace", "--name", "CLI Works", "--owner-email", "cli@example.com")
    assert created.returncode == 0, created.stderr
    workspace = one_json_object(created.stdout)
    assert workspace["slug"] == "cli-works" and workspace["name"] == "CLI Works" and workspace["id"]

    issued = cli("create_api_key", "--workspace", "cli-works", "--name", "ci", "--allowed-models", "codex-mini")
    assert issued.returncode == 0, issued.stderr
    key = one_json_object(issued.stdout)
    assert key["key"].startswith("omx_live_") and key["prefix"] == key["key"][:13]
    assert key["scope"] == "inference" and key["workspace"] == "cli-works"
    assert cli.rows(f"SELECT key_hash FROM workspaces_apikey WHERE id = {int(key['id'])}") == [
        (hash_api_key(key["key"]),)
    ]


def test_cli_unknown_workspace_fails_cleanly(cli):
    before = cli.rows("SELECT count(*) FROM workspaces_apikey")
    result = cli("create_api_key", "--workspace", "no-such-workspace", "--name", "ci")
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == ["CommandError: unknown workspace 'no-such-workspace'"]
    assert cli.rows("SELECT count(*) FROM workspaces_apikey") == before


def test_cli_add_provider_key_bad_url_fails_cleanly_and_never_echoes_the_secret(cli):
    assert cli("load_catalog").returncode == 0
    result = cli(
        "add_provider_key",
        "--model",
        "codex-mini",
        "--provider",
        "azure-openai",
        "--base-url",
        "ftp://res.example",
        "--api-key",
        "sk-cli-secret-42",
    )
    assert result.returncode != 0 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "http(s) URL" in result.stderr
    assert cli.rows("SELECT count(*) FROM gateway_providerkey") == [(0,)]

    ok = cli(
        "add_provider_key",
        "--model",
        "codex-mini",
        "--provider",
        "azure-openai",
        "--base-url",
        "https://res.openai.azure.com/openai/v1/",
        "--api-key",
        "sk-cli-secret-42",
    )
    assert ok.returncode == 0, ok.stderr
    assert "sk-cli-secret-42" not in ok.stdout + ok.stderr
    assert one_json_object(ok.stdout)["base_url"] == "https://res.openai.azure.com"


# --- every command through call_command ---------------------------------------------------------


def run(name: str, *args: str) -> dict:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return one_json_object(out.getvalue())


@pytest.mark.django_db
def test_load_catalog_prints_counts(db):
    assert run("load_catalog")["models_created"] == CATALOG_MODELS
    assert run("load_catalog")["models_unchanged"] == CATALOG_MODELS


@pytest.mark.django_db
def test_create_workspace_with_owner(db):
    data = run("create_workspace", "--name", "Big Co", "--owner-email", "ceo@big.example")
    workspace = Workspace.objects.get(pk=data["id"])
    assert data["slug"] == workspace.slug == "big-co"
    assert data["owner_email"] == "ceo@big.example"
    assert Membership.objects.get(workspace=workspace).role == "owner"


@pytest.mark.django_db
def test_create_workspace_errors_create_nothing(db):
    with pytest.raises(CommandError, match="email"):
        run("create_workspace", "--name", "Bad Owner", "--owner-email", "nope")
    with pytest.raises(CommandError, match="empty"):
        run("create_workspace", "--name", "   ")
    assert not Workspace.objects.exists()
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_create_api_key_with_options(world, catalog):
    data = run(
        "create_api_key",
        "--workspace",
        world.workspace.slug,
        "--name",
        "ops",
        "--scope",
        "admin",
        "--expires-at",
        "2099-01-01T00:00:00Z",
        "--allowed-models",
        "codex-mini, gpt-4.1-mini",
    )
    key = ApiKey.objects.get(pk=data["id"])
    assert data["key"].startswith("omx_admin_") and key.key_hash == hash_api_key(data["key"])
    assert data["scope"] == "admin" and data["workspace"] == world.workspace.slug
    assert key.allowed_models == ["codex-mini", "gpt-4.1-mini"]
    assert data["expires_at"] == "2099-01-01T00:00:00+00:00"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workspace", "nope", "--name", "x"], "unknown workspace 'nope'"),
        (["--name", "default"], "already has an active key named 'default'"),
        (["--name", "x", "--scope", "root"], "unknown scope 'root'"),
        (["--name", "x", "--expires-at", "next tuesday"], "--expires-at must be an ISO"),
        (["--name", "x", "--expires-at", "2001-01-01"], "in the past"),
        (["--name", "x", "--allowed-models", "codex-mini,gpt-9"], r"unknown model\(s\) in --allowed-models: gpt-9"),
    ],
)
def test_create_api_key_errors_create_nothing(world, catalog, args, message):
    if "--workspace" not in args:
        args = ["--workspace", world.workspace.slug, *args]
    before = ApiKey.objects.count()
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert ApiKey.objects.count() == before


@pytest.mark.django_db
def test_revoke_api_key(world):
    data = run("revoke_api_key", "--key-id", str(world.key.pk))
    world.key.refresh_from_db()
    assert data["id"] == world.key.pk and data["revoked_at"] == world.key.revoked_at.isoformat()
    assert data["already_revoked"] is False
    again = run("revoke_api_key", "--key-id", str(world.key.pk))
    assert again["revoked_at"] == data["revoked_at"] and again["already_revoked"] is True
    with pytest.raises(CommandError, match="unknown API key id '999999'"):
        run("revoke_api_key", "--key-id", "999999")
    with pytest.raises(CommandError, match="unknown API key id 'abc'"):
        run("revoke_api_key", "--key-id", "abc")
    assert ApiKey.objects.get(pk=world.other_key.pk).revoked_at is None


PROVIDER_ARGS = ["--model", "codex-mini", "--provider", "azure-openai", "--base-url", "https://res.openai.azure.com"]


@pytest.mark.django_db
def test_add_provider_key_prints_the_route_not_the_secret(catalog):
    out = StringIO()
    call_command(
        "add_provider_key",
        *PROVIDER_ARGS,
        "--api-key",
        "sk-do-not-print",
        "--priority",
        "10",
        "--deployment",
        "codex-mini-prod",
        "--api-version",
        "preview",
        "--name",
        "primary",
        "--supports-priority",
        stdout=out,
    )
    assert "sk-do-not-print" not in out.getvalue()
    data = one_json_object(out.getvalue())
    assert data == {
        "id": data["id"],
        "name": "primary",
        "model": "codex-mini",
        "provider": "azure-openai",
        "endpoint_type": "azure_openai_v1_chat",
        "base_url": "https://res.openai.azure.com",
        "deployment": "codex-mini-prod",
        "api_version": "preview",
        "priority": 10,
        "enabled": True,
        "supports_priority": True,
        "store": False,
    }
    assert ProviderKey.objects.get(pk=data["id"]).get_secret() == "sk-do-not-print"
    responses = run(
        "add_provider_key", *PROVIDER_ARGS, "--api-key", "s", "--endpoint-type", "azure_openai_v1_responses", "--store"
    )
    assert responses["endpoint_type"] == "azure_openai_v1_responses" and responses["name"] == "azure-openai-2"
    assert responses["store"] is True and ProviderKey.objects.get(pk=responses["id"]).store is True


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gpt-9", "--provider", "openai", "--base-url", "https://api.openai.com"], "unknown model 'gpt-9'"),
        (
            ["--model", "codex-mini", "--provider", "azure", "--base-url", "https://x.example"],
            "unknown provider 'azure'",
        ),
        ([*PROVIDER_ARGS[:4], "--base-url", "res.openai.azure.com"], "not an http"),
        ([*PROVIDER_ARGS, "--endpoint-type", "grpc"], "unknown endpoint type 'grpc'"),
        ([*PROVIDER_ARGS, "--endpoint-type", "google_vertex"], "does not fit provider 'azure-openai'"),
        ([*PROVIDER_ARGS, "--name", "taken"], "already has a provider key named 'taken'"),
        ([*PROVIDER_ARGS, "--priority", "-1"], "priority must be 0 or more"),
    ],
)
def test_add_provider_key_errors_create_nothing(catalog, args, message):
    run("add_provider_key", *PROVIDER_ARGS, "--api-key", "s", "--name", "taken")
    with pytest.raises(CommandError, match=message):
        run("add_provider_key", *args, "--api-key", "sk-x")
    assert ProviderKey.objects.count() == 1


@pytest.mark.django_db
def test_rotate_secrets_counts_every_key(catalog):
    assert run("rotate_secrets") == {"rotated": 0}
    run("add_provider_key", *PROVIDER_ARGS, "--api-key", "sk-1")
    run("add_provider_key", *PROVIDER_ARGS, "--api-key", "sk-2")
    assert run("rotate_secrets") == {"rotated": 2}
    assert sorted(k.get_secret() for k in ProviderKey.objects.all()) == ["sk-1", "sk-2"]


# --- seed_demo ------------------------------------------------------------------------------------


def seed(base_url: str = "http://127.0.0.1:8000") -> tuple[dict, str]:
    out, err = StringIO(), StringIO()
    call_command("seed_demo", "--base-url", base_url, stdout=out, stderr=err)
    return one_json_object(out.getvalue()), err.getvalue()


@pytest.mark.django_db
def test_seed_demo_builds_the_offline_demo(catalog):
    data, banner = seed()
    workspace = Workspace.objects.get(slug="demo")
    assert workspace.name == "Demo workspace" and data["workspace"] == "demo"
    key = ApiKey.objects.get(workspace=workspace, name="demo", revoked_at__isnull=True)
    assert key.key_hash == hash_api_key(data["key"]) and data["prefix"] == key.prefix
    assert {r["model"]: r["endpoint_type"] for r in data["routes"]} == {
        "codex-mini": "azure_openai_v1_chat",
        "gpt-4.1-mini": "openai_chat",
    }
    for route in ProviderKey.objects.filter(name="simulator"):
        assert route.base_url == "http://127.0.0.1:8000/simulator"
        assert route.provider == route.model.provider and route.priority == 100
        assert route.get_secret() == "simulator-secret"
    assert not ProviderKey.objects.filter(model__slug="gemini-2.5-flash").exists()
    assert data["admin"] is None  # DEBUG is off: no superuser
    assert "http://127.0.0.1:8000/api/v1/chat/completions" in data["curl"]
    assert f"Bearer {data['key']}" in data["curl"] and '"model": "codex-mini"' in data["curl"]
    assert data["key"] in banner and "curl" in banner


@pytest.mark.django_db
def test_seed_demo_twice_mints_a_fresh_key_and_keeps_one_route_per_model(catalog):
    first, _ = seed()
    second, _ = seed("http://localhost:9000/")
    assert first["key"] != second["key"]
    keys = ApiKey.objects.filter(workspace__slug="demo", name="demo")
    assert keys.count() == 2 and keys.filter(revoked_at__isnull=True).get().pk == second["key_id"]
    assert Workspace.objects.filter(slug="demo").count() == 1
    routes = ProviderKey.objects.filter(name="simulator")
    assert routes.count() == 2
    assert {r.base_url for r in routes} == {"http://localhost:9000/simulator"}
    assert [r["id"] for r in first["routes"]] == [r["id"] for r in second["routes"]]


@pytest.mark.django_db
def test_seed_demo_creates_the_admin_once_in_debug(catalog):
    with override_settings(DEBUG=True):
        first, banner = seed()
        admin = get_user_model().objects.get(username="admin")
        assert admin.is_staff and admin.is_superuser
        assert first["admin"]["created"] is True and admin.check_password(first["admin"]["password"])
        assert first["admin"]["password"] in banner
        assert "/login/" in banner and "/docs/models/" in banner  # where the admin signs in, what to read
        password_hash = admin.password
        second, banner = seed()
    assert second["admin"] == {"username": "admin", "created": False, "password": None}
    assert "password unchanged" in banner
    assert get_user_model().objects.get(username="admin").password == password_hash


@pytest.mark.django_db
def test_seed_demo_refuses_a_bad_base_url(catalog):
    with pytest.raises(CommandError, match="--base-url"):
        seed("127.0.0.1:8000")
    assert not Workspace.objects.filter(slug="demo").exists()
