"""`manage.py revoke_api_key --key-id ID` → {"id", "revoked_at", ...}. Revoking twice keeps the first time."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from workspaces.models import ApiKey
from workspaces.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key; gateways stop accepting it within seconds."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--key-id", required=True, help="The key's id (create_api_key prints it).")

    def handle(self, *args, **options) -> None:
        raw = str(options["key_id"]).strip()
        key = (
            ApiKey.objects.select_related("workspace").filter(pk=int(raw)).first()
            if raw.isdigit() and len(raw) < 19
            else None
        )
        if key is None:
            raise CommandError(f"unknown API key id {raw!r}")
        already = key.revoked_at is not None
        key = api_key_revoke(api_key=key)
        self.stdout.write(
            json.dumps(
                {
                    "id": key.pk,
                    "revoked_at": key.revoked_at.isoformat(),
                    "prefix": key.prefix,
                    "name": key.name,
                    "workspace": key.workspace.slug,
                    "already_revoked": already,
                }
            )
        )
