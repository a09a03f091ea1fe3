"""`manage.py create_api_key --workspace SLUG --name NAME [...]` → one JSON object with the secret (shown once)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from workspaces.models import ApiKey, Workspace
from workspaces.services import WorkspaceError, api_key_issue


def _parse_expiry(raw: str) -> datetime:
    try:
        moment = parse_datetime(raw)
        if moment is None:
            day = parse_date(raw)
            moment = datetime.combine(day, time.min) if day else None
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"--expires-at must be an ISO date or time (e.g. 2026-12-31T00:00:00Z), got {raw!r}")
    # A time without a zone is read as UTC, the zone every stored time uses.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Issue an API key for a workspace. The secret is printed once and cannot be shown again."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--workspace", required=True, help="The workspace's slug.")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--scope", default=ApiKey.Scope.INFERENCE, help="inference (omx_live_…) or admin (omx_admin_…)"
        )
        parser.add_argument("--expires-at", help="ISO 8601 date or time; UTC when no zone is given.")
        parser.add_argument("--allowed-models", help="Comma-separated model slugs (default: every model).")

    def handle(self, *args, **options) -> None:
        workspace = Workspace.objects.filter(slug=options["workspace"]).first()
        if workspace is None:
            raise CommandError(f"unknown workspace {options['workspace']!r}")
        expires_at = _parse_expiry(options["expires_at"]) if options.get("expires_at") else None
        allowed = [s.strip() for s in (options.get("allowed_models") or "").split(",") if s.strip()]
        if allowed:
            # Looked up by app label: workspaces does not import billing, the catalog is optional to it.
            catalog = apps.get_model("billing", "Model")
            known = set(catalog.objects.filter(slug__in=allowed).values_list("slug", flat=True))
            unknown = [slug for slug in allowed if slug not in known]
            if unknown:
                raise CommandError(f"unknown model(s) in --allowed-models: {', '.join(unknown)}")
        try:
            key, secret = api_key_issue(
                workspace=workspace,
                name=options["name"],
                scope=options["scope"],
                expires_at=expires_at,
                allowed_models=allowed,
            )
        except WorkspaceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            json.dumps(
                {
                    "id": key.pk,
                    "key": secret,
                    "prefix": key.prefix,
                    "name": key.name,
                    "scope": key.scope,
                    "workspace": workspace.slug,
                    "expires_at": key.expires_at.isoformat() if key.expires_at else None,
                    "allowed_models": key.allowed_models,
                    "created_at": key.created_at.isoformat(),
                }
            )
        )
