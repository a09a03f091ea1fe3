"""`manage.py load_catalog [--path FILE]`: the built-in models and price cards, idempotently."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from billing.catalog import CatalogError, catalog_load


class Command(BaseCommand):
    help = "Load the model catalog and price cards (safe to run again; never rewrites a price card)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--path", help="A catalog JSON file (default: billing/catalog/models.json).")

    def handle(self, *args, **options) -> None:
        try:
            counts = catalog_load(path=options.get("path"))
        except CatalogError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(counts))
