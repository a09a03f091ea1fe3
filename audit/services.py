"""Writing the audit log: `record(actor, action, target, old, new, workspace=None)`.

Call it inside the transaction of the change it describes, so that the change and its row commit or
roll back together; outside one it refuses. Values are stored as JSON (decimals as strings, times as
ISO 8601). Nothing secret is stored: fields named like a secret are dropped, and a whole Omixa key
inside any value is redacted (a key's short display prefix is kept), whatever the caller passed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction

from audit.models import AuditLog
from workspaces.models import ApiKey, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    Actor = AbstractBaseUser | ApiKey | None

# Never stored, whatever a caller passes: secrets, and hashes that are nobody's business.
SECRET_FIELDS = frozenset({"secret", "secret_encrypted", "key_hash", "api_key", "password", "token"})

# The public name of each audited kind of object (the API's `target_type`).
TARGET_TYPES = {
    "workspaces.apikey": "api_key",
    "workspaces.membership": "member",
    "workspaces.workspace": "workspace",
    "gateway.providerkey": "provider_key",
    "billing.pricecard": "price_card",
    "billing.invoice": "invoice",
    "billing.ledgerentry": "ledger_entry",
}


# A whole secret (prefix + 40 random characters), not the 13-character prefix shown in lists.
_OMIXA_SECRET = re.compile(r"omx_(?:live|admin)_[A-Za-z0-9_-]{20,}")


class AuditError(Exception):
    """The audit log was used wrongly (a bug in the caller, never the user's fault)."""


def _plain(value: Any) -> Any:
    """JSON-ready: decimals, times and UUIDs as strings (as they will read back from the database)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _scrub(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _scrub(v) for k, v in value.items() if str(k).lower() not in SECRET_FIELDS}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return _OMIXA_SECRET.sub("omx_[REDACTED]", value)
    return value


def snapshot(obj: models.Model, fields: Iterable[str]) -> dict[str, Any]:
    """The named fields of `obj` as plain JSON values (foreign keys by id)."""
    values: dict[str, Any] = {}
    for name in fields:
        field = obj._meta.get_field(name)
        value = getattr(obj, field.attname)
        if isinstance(field, models.DecimalField) and isinstance(value, Decimal):
            # As the database stores it, so that 12.5 and 12.50 are one value, not a change.
            value = value.quantize(Decimal(1).scaleb(-field.decimal_places))
        values[name] = value
    return _plain(values)


def changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the fields whose values differ, on both sides."""
    old, new = _plain(dict(old)), _plain(dict(new))
    keys = [k for k in new if old.get(k) != new.get(k)] + [k for k in old if k not in new]
    return {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}


def _actor_fields(actor: Actor) -> dict[str, Any]:
    if isinstance(actor, ApiKey):
        return {
            "actor_kind": AuditLog.ActorKind.API_KEY,
            "actor_api_key": actor,
            "actor_label": f"API key {actor.prefix}… ({actor.name})"[:200],
        }
    if actor is not None and getattr(actor, "is_authenticated", False):
        return {"actor_kind": AuditLog.ActorKind.USER, "actor_user": actor, "actor_label": actor.get_username()[:200]}
    return {"actor_kind": AuditLog.ActorKind.SYSTEM, "actor_label": "system"}


def _target_label(target: models.Model) -> str:
    user = getattr(target, "user", None) if target._meta.label_lower == "workspaces.membership" else None
    return (user.get_username() if user is not None else str(target))[:200]


def record(
    actor: Actor,
    action: str,
    target: models.Model,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
    workspace: Workspace | None = None,
) -> AuditLog:
    """Write one audit row for a change to `target` made by `actor` (a user, an admin API key, or
    None for the system). `workspace` defaults to the target's own; None means operator-global."""
    if not transaction.get_connection().in_atomic_block:
        raise AuditError(f"audit.record({action!r}) must run inside the change's transaction.atomic()")
    if workspace is not None:
        workspace_id = workspace.pk
    elif isinstance(target, Workspace):
        workspace_id = target.pk
    else:
        workspace_id = getattr(target, "workspace_id", None)
    return AuditLog.objects.create(
        workspace_id=workspace_id,
        action=action,
        target_type=TARGET_TYPES.get(target._meta.label_lower, target._meta.model_name),
        target_id=str(target.pk or ""),
        target_label=_target_label(target),
        old=_scrub(_plain(dict(old))) if old is not None else None,
        new=_scrub(_plain(dict(new))) if new is not None else None,
        **_actor_fields(actor),
    )
