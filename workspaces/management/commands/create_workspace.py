"""`manage.py create_workspace --name NAME [--owner-email EMAIL] [--slug SLUG]` → one JSON object."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from workspaces.services import WorkspaceError, workspace_create


class Command(BaseCommand):
    help = "Create a workspace (and its owner user, given an email)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", help="The owner; a user is created for a new email address.")
        parser.add_argument("--slug", help="Default: derived from the name and made unique.")

    def handle(self, *args, **options) -> None:
        try:
            workspace = workspace_create(
                name=options["name"], owner_email=options.get("owner_email"), slug=options.get("slug")
            )
        except WorkspaceError as exc:
            raise CommandError(str(exc)) from exc
        owner = workspace.memberships.filter(role="owner").select_related("user").first()
        self.stdout.write(
            json.dumps(
                {
                    "id": workspace.pk,
                    "slug": workspace.slug,
                    "name": workspace.name,
                    "currency": workspace.currency,
                    "owner_email": owner.user.email if owner else None,
                    "created_at": workspace.created_at.isoformat(),
                }
            )
        )
