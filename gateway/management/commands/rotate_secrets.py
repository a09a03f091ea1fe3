"""`manage.py rotate_secrets` → {"rotated": n}: re-encrypt provider secrets under the first OMIXA_ENCRYPTION_KEY.

Rotation: set OMIXA_ENCRYPTION_KEY=NEW,OLD, run this, then drop OLD. Safe to run again.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from gateway.services import ProviderKeyError, provider_secrets_rotate


class Command(BaseCommand):
    help = "Re-encrypt every provider secret under the first OMIXA_ENCRYPTION_KEY (all or nothing)."

    def handle(self, *args, **options) -> None:
        try:
            rotated = provider_secrets_rotate()
        except ProviderKeyError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps({"rotated": rotated}))
