"""Who is calling the management API: a signed-in user (Django session) or a management key.

A management key (`omx_admin_…`, scope `admin`) is looked up by the SHA-256 of the bearer token, like
the gateway does for inference keys; the secret itself is never stored. It acts for its own workspace
only, with an owner's rights there (access.KEY_ROLE). An inference key (`omx_live_…`) is valid but not
for this API: 403. A missing, unknown, revoked or expired bearer token: 401.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from workspaces.models import ApiKey
from workspaces.services import hash_api_key

# last_used_at is written at most this often per key: a busy script must not write on every call.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, eq=False)
class KeyPrincipal:
    """`request.user` when a management key authenticated the request (there is no user behind it)."""

    api_key: ApiKey
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def get_username(self) -> str:
        return f"API key {self.api_key.prefix}…"

    def __str__(self) -> str:
        return self.get_username()


class AdminKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer omx_admin_…`; other Authorization schemes are left to the next class."""

    keyword = "Bearer"

    def authenticate(self, request) -> tuple[KeyPrincipal, ApiKey] | None:
        header = get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = token.strip()
        if not token or " " in token:
            raise exceptions.AuthenticationFailed("Send the key as 'Authorization: Bearer omx_admin_...'.")
        key = ApiKey.objects.select_related("workspace").filter(key_hash=hash_api_key(token)).first()
        if key is None:
            raise exceptions.AuthenticationFailed("Incorrect API key provided.")
        now = timezone.now()
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key has been revoked.")
        if key.expires_at is not None and key.expires_at <= now:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        if key.scope != ApiKey.Scope.ADMIN:
            raise exceptions.PermissionDenied(
                "This is an inference key (omx_live_…); the management API takes a management key (omx_admin_…)."
            )
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            # A queryset update: no signal, so the gateways' config revision does not move for this.
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return KeyPrincipal(key), key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to a request with no credentials at all.
        return 'Bearer realm="omixa"'


class AdminKeyScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.AdminKeyAuthentication"
    name = "managementKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A management key of the workspace (`omx_admin_…`). Inference keys get 403.",
        }
