"""API keys: list, create (the secret in that answer only), read, change limits, revoke, rotate."""

from __future__ import annotations

from datetime import timedelta

from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from api import serializers as s
from api.errors import from_workspace_error
from api.pagination import OldestFirst
from api.views.base import WorkspaceView
from workspaces.models import ApiKey
from workspaces.services import (
    WorkspaceError,
    api_key_issue,
    api_key_revoke,
    api_key_rotate,
    api_key_set_limits,
)

TAG = ["API keys"]


def _secret_response(data: dict) -> Response:
    response = Response(data, status=status.HTTP_201_CREATED)
    # The body holds a secret: no browser or proxy may keep a copy.
    add_never_cache_headers(response)
    return response


class KeyView(WorkspaceView):
    def get_queryset(self):
        return ApiKey.objects.filter(workspace=self.workspace_access().workspace)

    def get_key(self) -> ApiKey:
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["key_id"])

    def require_for_scope(self, scope: str) -> None:
        """Management keys act with an owner's rights: only owners issue or change them."""
        if scope == ApiKey.Scope.ADMIN:
            self.workspace_access().require("keys.manage_admin")


class KeyList(KeyView):
    capabilities = {"GET": "keys.view", "POST": "keys.manage"}
    pagination_class = OldestFirst
    serializer_class = s.ApiKeySerializer

    @extend_schema(
        tags=TAG,
        operation_id="keys_list",
        summary="List the workspace's keys",
        responses={200: s.ApiKeySerializer(many=True)},
        parameters=[s.KeyQuerySerializer],
    )
    def get(self, request, slug: str) -> Response:
        query = s.KeyQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        keys = self.get_queryset()
        now = timezone.now()
        wanted = query.validated_data.get("status")
        if wanted == "active":
            keys = keys.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)
        elif wanted == "revoked":
            keys = keys.filter(revoked_at__isnull=False)
        elif wanted == "expired":
            keys = keys.filter(revoked_at__isnull=True, expires_at__lte=now)
        if query.validated_data.get("scope"):
            keys = keys.filter(scope=query.validated_data["scope"])
        page = self.paginate_queryset(keys)
        return self.get_paginated_response(s.ApiKeySerializer(page, many=True).data)

    @extend_schema(
        tags=TAG,
        operation_id="keys_create",
        summary="Create a key",
        description="The answer carries the secret (`key`) this once; Omixa keeps only its hash.",
        request=s.ApiKeyCreateSerializer,
        responses={201: s.ApiKeyCreatedSerializer},
    )
    def post(self, request, slug: str) -> Response:
        body = s.ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        self.require_for_scope(data["scope"])
        try:
            key, secret = api_key_issue(
                workspace=self.workspace_access().workspace,
                name=data.pop("name"),
                scope=data.pop("scope"),
                budget_period=data.pop("budget_period", None) or ApiKey.BudgetPeriod.NONE,
                acting_user=self.workspace_access().actor,
                **data,
            )
        except WorkspaceError as exc:
            raise from_workspace_error(exc) from exc
        return _secret_response({**s.ApiKeySerializer(key).data, "key": secret})


class KeyDetail(KeyView):
    capabilities = {"GET": "keys.view", "PATCH": "keys.manage"}
    serializer_class = s.ApiKeySerializer

    @extend_schema(tags=TAG, operation_id="keys_retrieve", summary="Read a key")
    def get(self, request, slug: str, key_id: int) -> Response:
        return Response(s.ApiKeySerializer(self.get_key()).data)

    @extend_schema(
        tags=TAG,
        operation_id="keys_update",
        summary="Change a key's limits",
        description="Only the fields sent change; `null` clears a limit. A revoked key cannot change.",
        request=s.ApiKeyLimitsSerializer,
        responses={200: s.ApiKeySerializer},
    )
    def patch(self, request, slug: str, key_id: int) -> Response:
        key = self.get_key()
        self.require_for_scope(key.scope)
        body = s.ApiKeyLimitsSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        try:
            key = api_key_set_limits(api_key=key, acting_user=self.workspace_access().actor, **body.validated_data)
        except WorkspaceError as exc:
            raise from_workspace_error(exc) from exc
        return Response(s.ApiKeySerializer(key).data)


class KeyRevoke(KeyView):
    capabilities = {"POST": "keys.manage"}
    serializer_class = s.ApiKeySerializer

    @extend_schema(
        tags=TAG,
        operation_id="keys_revoke",
        summary="Revoke a key",
        description="Gateways refuse it within seconds. Revoking again changes nothing.",
        request=None,
        responses={200: s.ApiKeySerializer},
    )
    def post(self, request, slug: str, key_id: int) -> Response:
        key = self.get_key()
        self.require_for_scope(key.scope)
        key = api_key_revoke(api_key=key, acting_user=self.workspace_access().actor)
        return Response(s.ApiKeySerializer(key).data)


class KeyRotate(KeyView):
    capabilities = {"POST": "keys.manage"}
    serializer_class = s.ApiKeyRotatedSerializer

    @extend_schema(
        tags=TAG,
        operation_id="keys_rotate",
        summary="Rotate a key",
        description=(
            "Issues a new key with the same name, scope and limits; its secret is in this answer only. "
            "The old key is revoked now, or with `grace_seconds` keeps working until it expires then "
            "(renamed `<name> (rotated #id)`)."
        ),
        request=s.ApiKeyRotateSerializer,
        responses={201: s.ApiKeyRotatedSerializer},
    )
    def post(self, request, slug: str, key_id: int) -> Response:
        key = self.get_key()
        self.require_for_scope(key.scope)
        body = s.ApiKeyRotateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            old, new, secret = api_key_rotate(
                api_key=key,
                grace=timedelta(seconds=body.validated_data["grace_seconds"]),
                acting_user=self.workspace_access().actor,
            )
        except WorkspaceError as exc:
            raise from_workspace_error(exc) from exc
        return _secret_response(
            {"key": {**s.ApiKeySerializer(new).data, "key": secret}, "old_key": s.ApiKeySerializer(old).data}
        )
