"""`manage.py seed_demo --base-url URL`: the offline demo `make run` serves.

Idempotent except for the key: every run revokes the previous "demo" key and prints a fresh one
(its secret is never stored, so it cannot be printed again). Routes named "simulator" point every
OpenAI-dialect catalog model at the local simulated provider under `{base-url}/simulator`.
"""

from __future__ import annotations

import json
import secrets
import shlex

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from billing.models import Model
from gateway.models import EndpointType, Provider, ProviderKey
from gateway.services import ProviderKeyError, normalize_base_url, provider_key_add, provider_key_update
from workspaces.models import ApiKey, Membership, Workspace
from workspaces.services import api_key_issue, api_key_revoke, workspace_create

DEMO_SLUG = "demo"
DEMO_NAME = "Demo workspace"
DEMO_KEY_NAME = "demo"
ROUTE_NAME = "simulator"
ROUTE_SECRET = "simulator-secret"  # the simulator accepts anything; this only exercises encryption
ADMIN_USERNAME = "admin"
SIMULATED_ENDPOINT_TYPES = (EndpointType.AZURE_OPENAI_V1_CHAT, EndpointType.OPENAI_CHAT)
EXAMPLE_MODEL = "codex-mini"


def example_payload() -> dict:
    """The catalog's example request for codex-mini (the reference page's), non-stream so that
    curl prints one JSON answer."""
    spec = Model.objects.filter(slug=EXAMPLE_MODEL).values_list("spec", flat=True).first() or {}
    example = spec.get("example") or {
        "model": EXAMPLE_MODEL,
        "messages": [{"role": "user", "content": "Explain this model in three practical bullet points."}],
    }
    return {**example, "stream": False}


def example_curl(*, base_url: str, secret: str) -> str:
    return " ".join(
        [
            "curl -sS",
            shlex.quote(f"{base_url}/api/v1/chat/completions"),
            "-H",
            shlex.quote(f"Authorization: Bearer {secret}"),
            "-H",
            shlex.quote("Content-Type: application/json"),
            "-d",
            shlex.quote(json.dumps(example_payload())),
        ]
    )


class Command(BaseCommand):
    help = "Seed the offline demo: workspace 'demo', a fresh inference key, simulator routes (and an admin in DEBUG)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="Where this Omixa will be served.")

    def handle(self, *args, **options) -> None:
        try:
            base_url = normalize_base_url(options["base_url"])
        except ProviderKeyError as exc:
            raise CommandError(f"--base-url: {exc}") from exc
        with transaction.atomic():
            workspace = self._workspace()
            admin = self._admin(workspace) if settings.DEBUG else None
            key, secret = self._fresh_key(workspace)
            routes = self._routes(f"{base_url}/simulator")

        curl = example_curl(base_url=base_url, secret=secret)
        self.stdout.write(
            json.dumps(
                {
                    "workspace": workspace.slug,
                    "key": secret,
                    "key_id": key.pk,
                    "prefix": key.prefix,
                    "routes": routes,
                    "admin": admin,
                    "curl": curl,
                }
            )
        )
        self._banner(secret=secret, admin=admin, routes=routes, curl=curl, base_url=base_url)

    def _workspace(self) -> Workspace:
        workspace = Workspace.objects.filter(slug=DEMO_SLUG).first()
        return workspace or workspace_create(name=DEMO_NAME, slug=DEMO_SLUG)

    def _admin(self, workspace: Workspace) -> dict:
        user_model = get_user_model()
        user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: ADMIN_USERNAME}).first()
        password = None
        if user is None:
            # Generated, never a well-known default: a DEBUG server can still be reachable by others.
            password = secrets.token_urlsafe(12)
            user = user_model._default_manager.create_superuser(ADMIN_USERNAME, "admin@localhost", password)
        Membership.objects.get_or_create(user=user, workspace=workspace, defaults={"role": Membership.Role.OWNER})
        return {"username": ADMIN_USERNAME, "created": password is not None, "password": password}

    def _fresh_key(self, workspace: Workspace) -> tuple[ApiKey, str]:
        for old in ApiKey.objects.filter(workspace=workspace, name=DEMO_KEY_NAME, revoked_at__isnull=True):
            api_key_revoke(api_key=old)
        return api_key_issue(workspace=workspace, name=DEMO_KEY_NAME)

    def _routes(self, simulator_url: str) -> list[dict]:
        routes = []
        models = Model.objects.filter(is_active=True, endpoint_type__in=SIMULATED_ENDPOINT_TYPES).order_by("slug")
        for model in models:
            if model.provider not in Provider.values:
                self.stderr.write(f"skipping {model.slug}: unknown provider {model.provider!r}")
                continue
            route = ProviderKey.objects.filter(model=model, name=ROUTE_NAME).first()
            if route is None:
                route = provider_key_add(
                    model_slug=model.slug,
                    provider=model.provider,
                    endpoint_type=model.endpoint_type,
                    base_url=simulator_url,
                    api_key=ROUTE_SECRET,
                    priority=100,
                    name=ROUTE_NAME,
                )
            elif route.base_url != simulator_url:
                provider_key_update(provider_key=route, base_url=simulator_url)
            routes.append(
                {
                    "id": route.pk,
                    "model": model.slug,
                    "name": route.name,
                    "provider": route.provider,
                    "endpoint_type": route.endpoint_type,
                    "base_url": route.base_url,
                    "priority": route.priority,
                }
            )
        return routes

    def _banner(self, *, secret: str, admin: dict | None, routes: list[dict], curl: str, base_url: str) -> None:
        lines = [
            "",
            "  Omixa demo is ready.",
            f"  Workspace: {DEMO_SLUG}   API key (shown once, a new one each run): {secret}",
            f"  Routes: {', '.join(r['model'] for r in routes) or 'none (run load_catalog first)'} → local simulator",
        ]
        if admin and admin["password"]:
            lines.append(f"  Admin: {base_url}/admin/  user {admin['username']}  password {admin['password']}")
        elif admin:
            lines.append(f"  Admin: {base_url}/admin/  user {admin['username']} (password unchanged)")
        if admin:
            lines.append(f"  Console: {base_url}/login/  (the same user owns workspace '{DEMO_SLUG}')")
        lines.append(f"  Model docs: {base_url}/docs/models/   API reference: {base_url}/api/docs/")
        lines += ["", "  Try it:", f"  {curl}", ""]
        # A plain style: Django paints stderr red on a terminal, and this banner is good news.
        self.stderr.write("\n".join(lines), style_func=str)
