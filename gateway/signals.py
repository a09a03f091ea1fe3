from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from gateway.models import ProviderKey
from workspaces.revision import bump_config_revision


@receiver([post_save, post_delete], sender=ProviderKey)
def _bump_on_change(sender, **kwargs) -> None:
    bump_config_revision()
