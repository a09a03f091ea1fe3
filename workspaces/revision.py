"""The config revision counter that tells gateway workers to reload their cached snapshot."""

from __future__ import annotations

from django.db.models import F

from workspaces.models import ConfigRevision


def bump_config_revision() -> None:
    updated = ConfigRevision.objects.filter(pk=1).update(value=F("value") + 1)
    if not updated:
        ConfigRevision.objects.get_or_create(pk=1, defaults={"value": 1})


def current_config_revision() -> int:
    row = ConfigRevision.objects.filter(pk=1).values_list("value", flat=True).first()
    return int(row or 0)
