"""Members: list, add an existing user by username or email, change a role, remove.

Owners and admins manage members; only owners make, change or remove an owner. A workspace always
keeps one owner (409 otherwise).
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from api import serializers as s
from api.errors import from_workspace_error
from api.pagination import OldestFirst
from api.views.base import WorkspaceView
from workspaces.models import Membership
from workspaces.services import WorkspaceError, member_add, member_change_role, member_remove

TAG = ["Members"]


class MemberView(WorkspaceView):
    def get_queryset(self):
        return Membership.objects.filter(workspace=self.workspace_access().workspace).select_related("user")

    def get_member(self) -> Membership:
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["member_id"])

    def require_for_roles(self, *roles: str) -> None:
        if Membership.Role.OWNER in roles:
            self.workspace_access().require("members.manage_owners")


class MemberList(MemberView):
    capabilities = {"GET": "members.view", "POST": "members.manage"}
    pagination_class = OldestFirst
    serializer_class = s.MemberSerializer

    @extend_schema(
        tags=TAG,
        operation_id="members_list",
        summary="List the members",
        responses={200: s.MemberSerializer(many=True)},
    )
    def get(self, request, slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.MemberSerializer(page, many=True).data)

    @extend_schema(
        tags=TAG,
        operation_id="members_create",
        summary="Add a member",
        description="An existing user, by username or email. Only owners may add an owner.",
        request=s.MemberCreateSerializer,
        responses={201: s.MemberSerializer},
    )
    def post(self, request, slug: str) -> Response:
        body = s.MemberCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        self.require_for_roles(body.validated_data["role"])
        try:
            membership = member_add(
                workspace=self.workspace_access().workspace,
                user=body.validated_data["user"],
                role=body.validated_data["role"],
                acting_user=self.workspace_access().actor,
            )
        except WorkspaceError as exc:
            raise from_workspace_error(exc) from exc
        return Response(s.MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetail(MemberView):
    capabilities = {"GET": "members.view", "PATCH": "members.manage", "DELETE": "members.manage"}
    serializer_class = s.MemberSerializer

    @extend_schema(tags=TAG, operation_id="members_retrieve", summary="Read a member")
    def get(self, request, slug: str, member_id: int) -> Response:
        return Response(s.MemberSerializer(self.get_member()).data)

    @extend_schema(
        tags=TAG,
        operation_id="members_update",
        summary="Change a member's role",
        description="Only owners may make someone an owner or change an owner; the last owner stays one (409).",
        request=s.MemberUpdateSerializer,
        responses={200: s.MemberSerializer},
    )
    def patch(self, request, slug: str, member_id: int) -> Response:
        membership = self.get_member()
        body = s.MemberUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        self.require_for_roles(membership.role, body.validated_data["role"])
        try:
            membership = member_change_role(
                membership=membership, role=body.validated_data["role"], acting_user=self.workspace_access().actor
            )
        except WorkspaceError as exc:
            raise from_workspace_error(exc) from exc
        return Response(s.MemberSerializer(membership).data)

    @extend_schema(
        tags=TAG,
        operation_id="members_destroy",
        summary="Remove a member",
        description="Only owners may remove an owner; the last owner cannot be removed (409).",
        responses={204: None},
    )
    def delete(self, request, slug: str, member_id: int) -> Response:
        membership = self.get_member()
        self.require_for_roles(membership.role)
        try:
            member_remove(membership=membership, acting_user=self.workspace_access().actor)
        except WorkspaceError as exc:
            raise from_workspace_error(exc) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)
