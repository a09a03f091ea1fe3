"""Writes for workspaces and their API keys.

An API key's secret leaves this module exactly once (the return value of `api_key_issue`); only its
SHA-256 is stored, so a database dump cannot be replayed against the gateway.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from workspaces.models import ApiKey, Membership, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)

SECRET_PREFIXES = {ApiKey.Scope.INFERENCE: "omx_live_", ApiKey.Scope.ADMIN: "omx_admin_"}
SECRET_RANDOM_CHARS = 40
PREFIX_LENGTH = 13  # "omx_live_ab12": enough to recognise a key in a list, useless to an attacker
_MODEL_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


class WorkspaceError(Exception):
    """A workspace or API key request that cannot be carried out; the message is for the user."""


class DuplicateApiKeyName(WorkspaceError):
    pass


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _generate_secret(scope: str) -> str:
    # token_urlsafe(30) is exactly 40 characters of [A-Za-z0-9_-] (30 bytes of base64, no padding).
    return SECRET_PREFIXES[scope] + secrets.token_urlsafe(SECRET_RANDOM_CHARS * 3 // 4)


def _audit(action: str, *, acting_user: AbstractBaseUser | None, **details: Any) -> None:
    # There is no audit table yet; a structured log line keeps "who did it" until there is one.
    actor = getattr(acting_user, "pk", None)
    logger.info("audit %s actor=%s %s", action, actor, " ".join(f"{k}={v}" for k, v in details.items()))


def _owner_for_email(email: str) -> AbstractBaseUser:
    user_model = get_user_model()
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise WorkspaceError(f"not a valid email address: {email!r}") from exc
    existing = user_model._default_manager.filter(email__iexact=email).order_by("pk").first()
    if existing is not None:
        return existing
    username = email.lower()
    if user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).exists():
        raise WorkspaceError(f"a user named {username!r} exists with another email address")
    user = user_model._default_manager.create_user(**{user_model.USERNAME_FIELD: username, "email": email})
    return user


def workspace_create(
    *,
    name: str,
    owner_email: str | None = None,
    slug: str | None = None,
    acting_user: AbstractBaseUser | None = None,
) -> Workspace:
    """Create a workspace (slug from the name, made unique) and, given an email, its owner.

    An explicit `slug` must be free; a derived one gets `-2`, `-3`… appended until it is.
    """
    name = (name or "").strip()
    if not name:
        raise WorkspaceError("the workspace name must not be empty")
    if len(name) > Workspace._meta.get_field("name").max_length:
        raise WorkspaceError("the workspace name is too long (120 characters at most)")
    max_slug = Workspace._meta.get_field("slug").max_length
    if slug is not None:
        slug = slugify(slug)
        if not slug:
            raise WorkspaceError("the slug must contain letters or digits")
        candidates = iter([slug[:max_slug]])
    else:
        base = slugify(name)[: max_slug - 6].strip("-")
        if not base:
            raise WorkspaceError(f"cannot derive a slug from {name!r}: use letters or digits in the name")
        candidates = iter([base, *(f"{base}-{n}" for n in range(2, 10_000))])

    with transaction.atomic():
        owner = _owner_for_email(owner_email) if owner_email else None
        for candidate in candidates:
            if Workspace.objects.filter(slug=candidate).exists():
                continue
            try:
                # A savepoint: a concurrent create of the same slug must not poison the outer transaction.
                with transaction.atomic():
                    workspace = Workspace.objects.create(name=name, slug=candidate)
            except IntegrityError:
                continue
            break
        else:
            raise WorkspaceError(f"the slug {slug!r} is already taken" if slug else "no free slug for this name")
        if owner is not None:
            Membership.objects.create(user=owner, workspace=workspace, role=Membership.Role.OWNER)
        _audit("workspace.create", acting_user=acting_user, workspace=workspace.slug)
    return workspace


def _clean_allowed_models(allowed_models: list[str] | tuple[str, ...] | None) -> list[str]:
    cleaned: list[str] = []
    for slug in allowed_models or []:
        slug = str(slug).strip()
        if not slug:
            continue
        if not _MODEL_SLUG.match(slug):
            raise WorkspaceError(f"not a model slug: {slug!r}")
        if slug not in cleaned:
            cleaned.append(slug)
    return cleaned


def api_key_issue(
    *,
    workspace: Workspace,
    name: str,
    scope: str = ApiKey.Scope.INFERENCE,
    expires_at: datetime | None = None,
    allowed_models: list[str] | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    budget_amount: Decimal | None = None,
    budget_period: str = ApiKey.BudgetPeriod.NONE,
    acting_user: AbstractBaseUser | None = None,
) -> tuple[ApiKey, str]:
    """Issue a key. Returns (key, secret): the secret is never stored and cannot be shown again."""
    name = (name or "").strip()
    if not name:
        raise WorkspaceError("the key name must not be empty")
    if len(name) > ApiKey._meta.get_field("name").max_length:
        raise WorkspaceError("the key name is too long (120 characters at most)")
    if scope not in ApiKey.Scope.values:
        raise WorkspaceError(f"unknown scope {scope!r}: use one of {', '.join(ApiKey.Scope.values)}")
    if budget_period not in ApiKey.BudgetPeriod.values:
        raise WorkspaceError(f"unknown budget period {budget_period!r}")
    if expires_at is not None:
        if timezone.is_naive(expires_at):
            raise WorkspaceError("expires_at must carry a time zone")
        if expires_at <= timezone.now():
            raise WorkspaceError("expires_at is in the past: the key would never work")
    for label, limit in (("rpm_limit", rpm_limit), ("tpm_limit", tpm_limit)):
        if limit is not None and limit <= 0:
            raise WorkspaceError(f"{label} must be a positive number")
    if budget_amount is not None and budget_amount < 0:
        raise WorkspaceError("budget_amount must not be negative")

    secret = _generate_secret(scope)
    try:
        with transaction.atomic():
            key = ApiKey.objects.create(
                workspace=workspace,
                name=name,
                scope=scope,
                prefix=secret[:PREFIX_LENGTH],
                key_hash=hash_api_key(secret),
                expires_at=expires_at,
                allowed_models=_clean_allowed_models(allowed_models),
                rpm_limit=rpm_limit,
                tpm_limit=tpm_limit,
                budget_amount=budget_amount,
                budget_period=budget_period,
            )
            _audit("api_key.issue", acting_user=acting_user, workspace=workspace.slug, key=key.pk, prefix=key.prefix)
    except IntegrityError as exc:
        # The partial unique index (one active key per name) is the only constraint a caller can hit.
        if ApiKey.objects.filter(workspace=workspace, name=name, revoked_at__isnull=True).exists():
            raise DuplicateApiKeyName(
                f"workspace {workspace.slug!r} already has an active key named {name!r}: revoke it or pick another name"
            ) from exc
        raise
    return key, secret


def api_key_revoke(
    *, api_key: ApiKey, at: datetime | None = None, acting_user: AbstractBaseUser | None = None
) -> ApiKey:
    """Revoke a key. Safe to repeat: an already revoked key keeps its first revocation time."""
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if key.revoked_at is None:
            key.revoked_at = at or timezone.now()
            # save() (not a queryset update) so the config revision moves and gateways drop the key.
            key.save(update_fields=["revoked_at", "updated_at"])
            _audit("api_key.revoke", acting_user=acting_user, workspace=key.workspace_id, key=key.pk)
    api_key.revoked_at = key.revoked_at
    api_key.updated_at = key.updated_at
    return key
