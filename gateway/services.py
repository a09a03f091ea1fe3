"""Writes for provider keys (routes): add, re-enable, change secret, rotate encryption."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction

from audit import services as audit
from billing.models import Model
from gateway.crypto import SecretDecryptionError, rotate_token
from gateway.models import DEFAULT_ENDPOINT_TYPE, EndpointType, Provider, ProviderKey
from workspaces.revision import bump_config_revision

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)

# Which endpoint types each provider can serve; the simulator speaks the OpenAI and Azure dialects.
PROVIDER_ENDPOINT_TYPES: dict[str, tuple[str, ...]] = {
    Provider.AZURE_OPENAI: (EndpointType.AZURE_OPENAI_V1_CHAT, EndpointType.AZURE_OPENAI_V1_RESPONSES),
    Provider.OPENAI: (EndpointType.OPENAI_CHAT, EndpointType.OPENAI_RESPONSES),
    Provider.GOOGLE_VERTEX: (EndpointType.GOOGLE_VERTEX,),
    Provider.ANTHROPIC: (EndpointType.ANTHROPIC_MESSAGES,),
    Provider.SIMULATED: (
        EndpointType.OPENAI_CHAT,
        EndpointType.AZURE_OPENAI_V1_CHAT,
        EndpointType.OPENAI_RESPONSES,
        EndpointType.AZURE_OPENAI_V1_RESPONSES,
    ),
}
# Adapters append `/openai/v1/...` or `/v1/...` themselves (DESIGN: base URL is the provider's root).
_API_ROOT_SUFFIX = re.compile(r"(?:/openai/v1|/v1)$", re.IGNORECASE)
_url_validator = URLValidator(schemes=["http", "https"])


class ProviderKeyError(Exception):
    """A provider key request that cannot be carried out; the message is for the operator."""


# What the audit log keeps of a route: everything but the (encrypted) secret and the bookkeeping times.
AUDIT_EXCLUDED = frozenset({"id", "secret_encrypted", "created_at", "updated_at"})


def provider_key_snapshot(provider_key: ProviderKey) -> dict[str, Any]:
    fields = [f.name for f in ProviderKey._meta.concrete_fields if f.name not in AUDIT_EXCLUDED]
    return audit.snapshot(provider_key, fields)


def provider_key_record_change(
    *,
    provider_key: ProviderKey,
    before: dict[str, Any],
    acting_user: Any = None,
    secret_changed: bool = False,
) -> None:
    """Audit a saved change (call inside its transaction): enable / disable, reorder (priority, the
    failover order) or update, with the old and new values of what changed and never the secret."""
    old, new = audit.changed(before, provider_key_snapshot(provider_key))
    if secret_changed:
        old["secret_changed"], new["secret_changed"] = False, True
    if not new:
        return
    if "enabled" in new:
        action = "provider_key.enable" if new["enabled"] else "provider_key.disable"
    elif set(new) == {"priority"}:
        action = "provider_key.reorder"
    else:
        action = "provider_key.update"
    audit.record(acting_user, action, provider_key, old, new)


def normalize_base_url(base_url: str) -> str:
    """Validate an http(s) root URL and strip a trailing `/`, `/v1` or `/openai/v1`."""
    url = (base_url or "").strip()
    try:
        _url_validator(url)
    except ValidationError as exc:
        raise ProviderKeyError(f"not an http(s) URL: {base_url!r}") from exc
    parts = urlsplit(url)
    if parts.username or parts.password:
        # The URL is stored in clear; a credential inside it would defeat the encrypted secret.
        raise ProviderKeyError("the base URL must not contain credentials: pass the secret with --api-key")
    if parts.query or parts.fragment:
        raise ProviderKeyError(f"the base URL must be the provider's root, without ?query or #fragment: {base_url!r}")
    path = parts.path.rstrip("/")
    path = _API_ROOT_SUFFIX.sub("", path).rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


def resolve_endpoint_type(*, provider: str, endpoint_type: str | None) -> str:
    """The endpoint type to use, checked against the provider (defaults per DEFAULT_ENDPOINT_TYPE)."""
    if provider not in Provider.values:
        raise ProviderKeyError(f"unknown provider {provider!r}: use one of {', '.join(Provider.values)}")
    if not endpoint_type:
        return str(DEFAULT_ENDPOINT_TYPE[Provider(provider)])
    if endpoint_type not in EndpointType.values:
        raise ProviderKeyError(f"unknown endpoint type {endpoint_type!r}: use one of {', '.join(EndpointType.values)}")
    allowed = PROVIDER_ENDPOINT_TYPES[provider]
    if endpoint_type not in allowed:
        raise ProviderKeyError(
            f"endpoint type {endpoint_type!r} does not fit provider {provider!r}: use one of {', '.join(allowed)}"
        )
    return endpoint_type


def default_provider_key_name(*, model: Model, provider: str) -> str:
    taken = set(ProviderKey.objects.filter(model=model).values_list("name", flat=True))
    n = ProviderKey.objects.filter(model=model, provider=provider).count() + 1
    while f"{provider}-{n}" in taken:
        n += 1
    return f"{provider}-{n}"


def _check_timeouts(timeouts: dict[str, float | None]) -> None:
    for label, value in timeouts.items():
        if value is not None and value <= 0:
            raise ProviderKeyError(f"{label} must be a positive number of seconds")


def provider_key_add(
    *,
    model_slug: str,
    provider: str,
    base_url: str,
    api_key: str,
    priority: int = 100,
    deployment: str = "",
    api_version: str = "",
    endpoint_type: str | None = None,
    name: str | None = None,
    supports_priority: bool = False,
    store: bool = False,
    enabled: bool = True,
    connect_timeout: float | None = None,
    first_byte_timeout: float | None = None,
    idle_timeout: float | None = None,
    acting_user: AbstractBaseUser | None = None,
) -> ProviderKey:
    """Add a route for a catalog model. The secret is encrypted before it reaches the database."""
    model = Model.objects.filter(slug=model_slug).first()
    if model is None:
        raise ProviderKeyError(f"unknown model {model_slug!r}: run load_catalog or check the slug")
    endpoint_type = resolve_endpoint_type(provider=provider, endpoint_type=endpoint_type)
    base_url = normalize_base_url(base_url)
    if not api_key or not api_key.strip():
        raise ProviderKeyError("the provider API key must not be empty")
    if priority is None or priority < 0:
        raise ProviderKeyError("priority must be 0 or more (lower is tried first)")
    timeouts = {
        "connect_timeout": connect_timeout,
        "first_byte_timeout": first_byte_timeout,
        "idle_timeout": idle_timeout,
    }
    _check_timeouts(timeouts)
    name = (name or "").strip()

    try:
        with transaction.atomic():
            if not name:
                name = default_provider_key_name(model=model, provider=provider)
            elif ProviderKey.objects.filter(model=model, name=name).exists():
                raise ProviderKeyError(f"model {model.slug!r} already has a provider key named {name!r}")
            key = ProviderKey(
                model=model,
                name=name,
                provider=provider,
                endpoint_type=endpoint_type,
                base_url=base_url,
                deployment=(deployment or "").strip() or model.slug,
                api_version=(api_version or "").strip(),
                priority=priority,
                enabled=enabled,
                supports_priority=supports_priority,
                store=store,
                **timeouts,
            )
            key.set_secret(api_key.strip())
            key.save()
            audit.record(acting_user, "provider_key.add", key, None, provider_key_snapshot(key))
    except IntegrityError as exc:
        # Two operators adding the same name at once: the unique constraint decides.
        raise ProviderKeyError(f"model {model.slug!r} already has a provider key named {name!r}") from exc
    return key


def provider_key_update(
    *, provider_key: ProviderKey, acting_user: AbstractBaseUser | None = None, **changes: Any
) -> ProviderKey:
    """Change a route's plain fields; `base_url` is normalized, `api_key` re-encrypted when given."""
    secret = changes.pop("api_key", None)
    if "base_url" in changes:
        changes["base_url"] = normalize_base_url(changes["base_url"])
    if "provider" in changes or "endpoint_type" in changes:
        changes["endpoint_type"] = resolve_endpoint_type(
            provider=changes.get("provider", provider_key.provider),
            endpoint_type=changes.get("endpoint_type", provider_key.endpoint_type),
        )
    _check_timeouts({k: v for k, v in changes.items() if k.endswith("_timeout")})
    allowed = {f.name for f in ProviderKey._meta.concrete_fields} - {"id", "model", "secret_encrypted", "created_at"}
    unknown = set(changes) - allowed
    if unknown:
        raise ProviderKeyError(f"cannot change {', '.join(sorted(unknown))}")
    with transaction.atomic():
        stored = ProviderKey.objects.select_for_update().filter(pk=provider_key.pk).first()
        before = provider_key_snapshot(stored or provider_key)
        for field_name, value in changes.items():
            setattr(provider_key, field_name, value)
        if secret:
            provider_key.set_secret(secret.strip())
        provider_key.save()
        provider_key_record_change(
            provider_key=provider_key, before=before, acting_user=acting_user, secret_changed=bool(secret)
        )
    return provider_key


def provider_key_enable(*, provider_key: ProviderKey, acting_user: AbstractBaseUser | None = None) -> ProviderKey:
    """Put a key back in rotation after the gateway (or an operator) took it out."""
    return provider_key_update(
        provider_key=provider_key, acting_user=acting_user, enabled=True, disabled_reason="", disabled_at=None
    )


def provider_key_out_of_rotation(*, provider_key_id: int, reason: str) -> bool:
    """The gateway saw this key refused (401/403) or its quota exhausted: out of rotation until an
    operator re-enables it, audited as the system, and every worker told. False if already out."""
    from django.utils import timezone

    with transaction.atomic():
        key = ProviderKey.objects.select_for_update().filter(id=provider_key_id, disabled_reason="").first()
        if key is None:
            return False
        before = provider_key_snapshot(key)
        # A queryset update sends no signal; the revision below makes every worker reload without it.
        ProviderKey.objects.filter(id=key.id).update(disabled_reason=reason[:300], disabled_at=timezone.now())
        key.refresh_from_db()
        old, new = audit.changed(before, provider_key_snapshot(key))
        audit.record(None, "provider_key.out_of_rotation", key, old, new)
        bump_config_revision()
    return True


def provider_secrets_rotate() -> int:
    """Re-encrypt every provider secret under the first OMIXA_ENCRYPTION_KEY; returns how many.

    Safe to run twice (the plaintext never changes). All or nothing: a secret that no configured key
    decrypts stops the rotation before anything is written, naming the key.
    """
    with transaction.atomic():
        rows = list(ProviderKey.objects.select_for_update().order_by("pk").values_list("pk", "secret_encrypted"))
        rotated = []
        for pk, token in rows:
            try:
                rotated.append((pk, rotate_token(token)))
            except SecretDecryptionError as exc:
                raise ProviderKeyError(f"provider key {pk}: {exc}; add the old key to OMIXA_ENCRYPTION_KEY") from exc
        for pk, token in rotated:
            # A queryset update (no per-row signal); the revision moves once below.
            ProviderKey.objects.filter(pk=pk).update(secret_encrypted=token)
        if rotated:
            bump_config_revision()
    return len(rotated)
