from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from workspaces.models import ApiKey, Workspace
from workspaces.revision import bump_config_revision


@receiver([post_save, post_delete], sender=ApiKey)
@receiver([post_save, post_delete], sender=Workspace)
def _bump_on_change(sender, **kwargs) -> None:
    bump_config_revision()
