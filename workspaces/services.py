"""Writes for workspaces and their API keys.

An API key's secret leaves this module exactly once (the return value of `api_key_issue`); only its
SHA-256 is stored, so a database dump cannot be replayed against the gateway.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from audit import services as audit
from workspaces.models import ApiKey, Membership, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    # Who made a change: a signed-in user, a management API key (omx_admin_…), or None for the system.
    Actor = AbstractBaseUser | ApiKey | None

logger = logging.getLogger(__name__)

SECRET_PREFIXES = {ApiKey.Scope.INFERENCE: "omx_live_", ApiKey.Scope.ADMIN: "omx_admin_"}
SECRET_RANDOM_CHARS = 40
PREFIX_LENGTH = 13  # "omx_live_ab12": enough to recognise a key in a list, useless to an attacker
_MODEL_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


class WorkspaceError(Exception):
    """A workspace or API key request that cannot be carried out; the message is for the user."""


class DuplicateApiKeyName(WorkspaceError):
    pass


class LastOwnerError(WorkspaceError):
    """The change would leave a workspace without an owner."""


# What the audit log keeps of a key and of a membership (never the hash, which is not needed).
API_KEY_AUDIT_FIELDS = (
    "name",
    "scope",
    "prefix",
    "expires_at",
    "revoked_at",
    "allowed_models",
    "rpm_limit",
    "tpm_limit",
    "budget_amount",
    "budget_period",
)
API_KEY_LIMIT_FIELDS = ("rpm_limit", "tpm_limit", "budget_amount", "budget_period", "allowed_models", "expires_at")
WORKSPACE_LIMIT_FIELDS = ("rpm_limit", "tpm_limit", "budget_amount", "budget_period", "limits_fail_mode")
MEMBER_AUDIT_FIELDS = ("user", "role")
ROTATION_MAX_GRACE = timedelta(days=7)


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _generate_secret(scope: str) -> str:
    # token_urlsafe(30) is exactly 40 characters of [A-Za-z0-9_-] (30 bytes of base64, no padding).
    return SECRET_PREFIXES[scope] + secrets.token_urlsafe(SECRET_RANDOM_CHARS * 3 // 4)


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
        audit.record(acting_user, "workspace.create", workspace, None, {"name": workspace.name, "slug": workspace.slug})
        if owner is not None:
            owner_membership = Membership.objects.create(user=owner, workspace=workspace, role=Membership.Role.OWNER)
            audit.record(
                acting_user, "member.add", owner_membership, None, audit.snapshot(owner_membership, MEMBER_AUDIT_FIELDS)
            )
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
    acting_user: Actor = None,
) -> tuple[ApiKey, str]:
    """Issue a key. Returns (key, secret): the secret is never stored and cannot be shown again."""
    name = (name or "").strip()
    if not name:
        raise WorkspaceError("the key name must not be empty")
    if len(name) > ApiKey._meta.get_field("name").max_length:
        raise WorkspaceError("the key name is too long (120 characters at most)")
    if scope not in ApiKey.Scope.values:
        raise WorkspaceError(f"unknown scope {scope!r}: use one of {', '.join(ApiKey.Scope.values)}")
    _check_key_limits(
        expires_at=expires_at,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
        budget_amount=budget_amount,
        budget_period=budget_period,
    )

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
            audit.record(acting_user, "api_key.create", key, None, audit.snapshot(key, API_KEY_AUDIT_FIELDS))
    except IntegrityError as exc:
        # The partial unique index (one active key per name) is the only constraint a caller can hit.
        if ApiKey.objects.filter(workspace=workspace, name=name, revoked_at__isnull=True).exists():
            raise DuplicateApiKeyName(
                f"workspace {workspace.slug!r} already has an active key named {name!r}: revoke it or pick another name"
            ) from exc
        raise
    return key, secret


def _check_key_limits(
    *,
    expires_at: datetime | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    budget_amount: Decimal | None = None,
    budget_period: str = ApiKey.BudgetPeriod.NONE,
) -> None:
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


def api_key_revoke(*, api_key: ApiKey, at: datetime | None = None, acting_user: Actor = None) -> ApiKey:
    """Revoke a key. Safe to repeat: an already revoked key keeps its first revocation time."""
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if key.revoked_at is None:
            key.revoked_at = at or timezone.now()
            # save() (not a queryset update) so the config revision moves and gateways drop the key.
            key.save(update_fields=["revoked_at", "updated_at"])
            audit.record(acting_user, "api_key.revoke", key, {"revoked_at": None}, {"revoked_at": key.revoked_at})
    api_key.revoked_at = key.revoked_at
    api_key.updated_at = key.updated_at
    return key


def api_key_set_limits(*, api_key: ApiKey, acting_user: Actor = None, **changes: Any) -> ApiKey:
    """Change a key's limits (any of API_KEY_LIMIT_FIELDS; None clears one). A revoked key is final."""
    unknown = set(changes) - set(API_KEY_LIMIT_FIELDS)
    if unknown:
        raise WorkspaceError(f"cannot change {', '.join(sorted(unknown))} of a key")
    if "allowed_models" in changes:
        changes["allowed_models"] = _clean_allowed_models(changes["allowed_models"])
    if changes.get("budget_period") is None:
        changes.pop("budget_period", None)
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if key.revoked_at is not None:
            raise WorkspaceError("this key is revoked: issue a new one")
        merged = {name: changes.get(name, getattr(key, name)) for name in API_KEY_LIMIT_FIELDS}
        # An unchanged expiry may be in the past already (the key expired): only a new one must be ahead.
        _check_key_limits(
            expires_at=changes.get("expires_at"),
            rpm_limit=merged["rpm_limit"],
            tpm_limit=merged["tpm_limit"],
            budget_amount=merged["budget_amount"],
            budget_period=merged["budget_period"],
        )
        _save_changes(key, changes, API_KEY_LIMIT_FIELDS, action="api_key.update", acting_user=acting_user)
    return key


def _save_changes(row, changes: dict[str, Any], fields: tuple[str, ...], *, action: str, acting_user: Actor) -> None:
    """Apply `changes` to `row`; if that changed anything, save and audit it (in the caller's transaction)."""
    old = audit.snapshot(row, fields)
    for name, value in changes.items():
        setattr(row, name, value)
    new = audit.snapshot(row, fields)
    if old != new:
        # save() (not a queryset update) so the config revision moves and the gateways see the change.
        row.save(update_fields=[*changes, "updated_at"])
        audit.record(acting_user, action, row, *audit.changed(old, new))


def api_key_rotate(
    *, api_key: ApiKey, grace: timedelta = timedelta(0), acting_user: Actor = None
) -> tuple[ApiKey, ApiKey, str]:
    """Replace a key by a new one with the same name, scope and limits. Returns (old, new, secret).

    Without a grace the old key is revoked at once. With one (at most ROTATION_MAX_GRACE) it keeps
    working until it expires at now + grace, so that clients can switch; it is renamed
    "<name> (rotated #id)" because only one active key per name may exist.
    """
    if grace < timedelta(0) or grace > ROTATION_MAX_GRACE:
        raise WorkspaceError(f"the grace must be between 0 and {int(ROTATION_MAX_GRACE.total_seconds())} seconds")
    now = timezone.now()
    with transaction.atomic():
        old = ApiKey.objects.select_for_update().select_related("workspace").get(pk=api_key.pk)
        if old.revoked_at is not None:
            raise WorkspaceError("this key is revoked: issue a new one")
        name, expires_at = old.name, old.expires_at
        before = audit.snapshot(old, ("name", "expires_at", "revoked_at"))
        if grace:
            suffix = f" (rotated #{old.pk})"
            old.name = old.name[: ApiKey._meta.get_field("name").max_length - len(suffix)] + suffix
            old.expires_at = min(old.expires_at, now + grace) if old.expires_at else now + grace
        else:
            old.revoked_at = now
        old.save(update_fields=["name", "expires_at", "revoked_at", "updated_at"])
        new, secret = api_key_issue(
            workspace=old.workspace,
            name=name,
            scope=old.scope,
            expires_at=expires_at if expires_at and expires_at > now else None,
            allowed_models=old.allowed_models,
            rpm_limit=old.rpm_limit,
            tpm_limit=old.tpm_limit,
            budget_amount=old.budget_amount,
            budget_period=old.budget_period,
            acting_user=acting_user,
        )
        was, now_is = audit.changed(before, audit.snapshot(old, before))
        audit.record(acting_user, "api_key.rotate", old, was, {**now_is, "replaced_by": new.pk})
    return old, new, secret


def _find_user(user: str) -> AbstractBaseUser:
    """A user by username (exact) or email (any case); only existing users can be added."""
    user_model = get_user_model()
    manager = user_model._default_manager
    ref = (user or "").strip()
    if not ref:
        raise WorkspaceError("name a user by username or email")
    found = manager.filter(**{user_model.USERNAME_FIELD: ref}).first()
    if found is None and "@" in ref:
        matches = list(manager.filter(email__iexact=ref).order_by("pk")[:2])
        if len(matches) > 1:
            raise WorkspaceError(f"several users have the email {ref!r}: name the user by username")
        found = matches[0] if matches else None
    if found is None or not found.is_active:
        raise WorkspaceError(f"no user {ref!r}: an operator creates users first")
    return found


def _lock_owners(workspace: Workspace) -> list[int]:
    # Locked, so that two concurrent demotions cannot both see "another owner is left".
    return list(
        Membership.objects.select_for_update()
        .filter(workspace=workspace, role=Membership.Role.OWNER)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def member_add(*, workspace: Workspace, user: str, role: str, acting_user: Actor = None) -> Membership:
    """Add an existing user (by username or email) to `workspace` with `role`."""
    if role not in Membership.Role.values:
        raise WorkspaceError(f"unknown role {role!r}: use one of {', '.join(Membership.Role.values)}")
    found = _find_user(user)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(user=found, workspace=workspace, role=role)
            audit.record(acting_user, "member.add", membership, None, audit.snapshot(membership, MEMBER_AUDIT_FIELDS))
    except IntegrityError as exc:
        raise WorkspaceError(f"{found.get_username()!r} is already a member of this workspace") from exc
    return membership


def member_change_role(*, membership: Membership, role: str, acting_user: Actor = None) -> Membership:
    """Change a member's role; the last owner cannot be demoted."""
    if role not in Membership.Role.values:
        raise WorkspaceError(f"unknown role {role!r}: use one of {', '.join(Membership.Role.values)}")
    with transaction.atomic():
        owners = _lock_owners(membership.workspace)
        row = Membership.objects.select_for_update(of=("self",)).select_related("user").get(pk=membership.pk)
        if row.role == role:
            return row
        if row.pk in owners and len(owners) == 1:
            raise LastOwnerError("a workspace keeps at least one owner: make someone else owner first")
        old_role, row.role = row.role, role
        row.save(update_fields=["role"])
        audit.record(acting_user, "member.role_change", row, {"role": old_role}, {"role": role})
    return row


def member_remove(*, membership: Membership, acting_user: Actor = None) -> None:
    """Remove a member; the last owner cannot be removed."""
    with transaction.atomic():
        owners = _lock_owners(membership.workspace)
        row = Membership.objects.select_for_update(of=("self",)).select_related("user").get(pk=membership.pk)
        if row.pk in owners and len(owners) == 1:
            raise LastOwnerError("a workspace keeps at least one owner: make someone else owner first")
        audit.record(acting_user, "member.remove", row, audit.snapshot(row, MEMBER_AUDIT_FIELDS), None)
        row.delete()


def workspace_set_limits(*, workspace: Workspace, acting_user: Actor = None, **changes: Any) -> Workspace:
    """Change the limits shared by all of a workspace's keys (any of WORKSPACE_LIMIT_FIELDS; None clears)."""
    unknown = set(changes) - set(WORKSPACE_LIMIT_FIELDS)
    if unknown:
        raise WorkspaceError(f"cannot change {', '.join(sorted(unknown))} of a workspace")
    for name in ("budget_period", "limits_fail_mode"):
        if name in changes and changes[name] is None:
            changes.pop(name)
    if changes.get("limits_fail_mode", Workspace.FailMode.OPEN) not in Workspace.FailMode.values:
        raise WorkspaceError(f"unknown limits_fail_mode {changes['limits_fail_mode']!r}: use open or closed")
    with transaction.atomic():
        row = Workspace.objects.select_for_update().get(pk=workspace.pk)
        merged = {name: changes.get(name, getattr(row, name)) for name in WORKSPACE_LIMIT_FIELDS}
        _check_key_limits(
            rpm_limit=merged["rpm_limit"],
            tpm_limit=merged["tpm_limit"],
            budget_amount=merged["budget_amount"],
            budget_period=merged["budget_period"],
        )
        _save_changes(row, changes, WORKSPACE_LIMIT_FIELDS, action="workspace.update", acting_user=acting_user)
    return row
