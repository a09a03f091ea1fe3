from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from gateway.models import ProviderKey
from workspaces.revision import bump_config_revision


@receiver([post_save, post_delete], sender=ProviderKey)
def _bump_on_change(sender, instance: ProviderKey, **kwargs) -> None:
    bump_config_revision()
    if kwargs.get("signal") is post_save and instance.enabled and not instance.disabled_reason:
        # An operator (re-)enabled the key: lift any shared out-of-rotation mark.
        from gateway.breaker import clear_shared_state

        transaction.on_commit(lambda: clear_shared_state(instance.pk))
