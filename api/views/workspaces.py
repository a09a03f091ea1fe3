"""The workspaces a caller can reach, and the audit log of one."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from api import serializers as s
from api.access import WorkspaceAccess, reachable_workspaces
from api.errors import from_workspace_error
from api.pagination import NewestFirst
from api.views.base import WorkspaceView
from audit.models import AuditLog
from workspaces.services import WorkspaceError, workspace_set_limits


def _workspace(found) -> dict:
    ws = found.workspace
    limits = s.WorkspaceLimitsSerializer(ws).data
    return {"slug": ws.slug, "name": ws.name, "currency": ws.currency, "role": found.role, **limits}


class WorkspaceList(GenericAPIView):
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    serializer_class = s.WorkspaceSerializer

    @extend_schema(
        tags=["Workspaces"],
        operation_id="workspaces_list",
        summary="The workspaces you can reach",
        description="Yours with your role in each; a management key: its own workspace (as owner).",
        responses={200: s.WorkspaceSerializer(many=True)},
    )
    def get(self, request) -> Response:
        return Response([_workspace(found) for found in reachable_workspaces(request)])


class WorkspaceDetail(WorkspaceView):
    capabilities = {"GET": None, "PATCH": "workspace.manage"}
    serializer_class = s.WorkspaceSerializer

    @extend_schema(tags=["Workspaces"], operation_id="workspaces_retrieve", summary="A workspace and your role in it")
    def get(self, request, slug: str) -> Response:
        return Response(_workspace(self.workspace_access()))

    @extend_schema(
        tags=["Workspaces"],
        operation_id="workspaces_update",
        summary="Change the workspace's limits (owners)",
        description="Rate limits and spend budget shared by all the workspace's keys; `null` clears one.",
        request=s.WorkspaceLimitsSerializer,
        responses={200: s.WorkspaceSerializer},
    )
    def patch(self, request, slug: str) -> Response:
        body = s.WorkspaceLimitsSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        found = self.workspace_access()
        try:
            workspace = workspace_set_limits(workspace=found.workspace, acting_user=found.actor, **body.validated_data)
        except WorkspaceError as exc:
            raise from_workspace_error(exc) from exc
        return Response(_workspace(WorkspaceAccess(workspace, found.role, found.actor)))


class AuditList(WorkspaceView):
    capabilities = {"GET": "audit.view"}
    pagination_class = NewestFirst
    serializer_class = s.AuditEntrySerializer

    @extend_schema(
        tags=["Audit log"],
        operation_id="audit_list",
        summary="The workspace's audit log (owners)",
        responses={200: s.AuditEntrySerializer(many=True)},
        description=(
            "Every change to the workspace's keys, members and limits, and its invoices voided and credits "
            "issued: who, when, old and new values."
        ),
        parameters=[s.AuditQuerySerializer],
    )
    def get(self, request, slug: str) -> Response:
        query = s.AuditQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        entries = AuditLog.objects.filter(workspace=self.workspace_access().workspace)
        for name in ("action", "target_type", "target_id"):
            if query.validated_data.get(name):
                entries = entries.filter(**{name: query.validated_data[name]})
        if query.validated_data.get("start"):
            entries = entries.filter(created_at__gte=query.validated_data["start"])
        if query.validated_data.get("end"):
            entries = entries.filter(created_at__lt=query.validated_data["end"])
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(s.AuditEntrySerializer(page, many=True).data)
