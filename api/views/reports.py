"""Usage aggregated over a time range, and the record of each request."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from api import selectors
from api import serializers as s
from api.pagination import NewestFirst
from api.views.base import WorkspaceView
from billing.models import UsageEvent

TAG = ["Usage"]


def _range(query: dict) -> tuple:
    try:
        return selectors.time_range(query.get("start"), query.get("end"), now=timezone.now())
    except selectors.RangeError as exc:
        raise ValidationError({"start": [str(exc)]}) from exc


class Usage(WorkspaceView):
    capabilities = {"GET": "usage.view"}
    serializer_class = s.UsageReportSerializer

    @extend_schema(
        tags=TAG,
        operation_id="usage_retrieve",
        summary="Usage by day, model or key",
        description=(
            "Requests, tokens and cost over [start, end) (UTC; at most 366 days), grouped by UTC day "
            "(every day listed, empty ones too), model or key. `cost` is the exact sum of the ledger "
            "amounts priced so far; requests still waiting for a price are counted in `unpriced_requests`."
        ),
        parameters=[s.UsageQuerySerializer],
    )
    def get(self, request, slug: str) -> Response:
        query = s.UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = _range(query.validated_data)
        report = selectors.usage_report(
            workspace=self.workspace_access().workspace,
            group_by=query.validated_data["group_by"],
            start=start,
            end=end,
            model=query.validated_data.get("model", ""),
            key_id=query.validated_data.get("key"),
        )
        return Response(s.UsageReportSerializer(report).data)


class RequestView(WorkspaceView):
    capabilities = {"GET": "usage.view"}
    serializer_class = s.RequestRecordSerializer

    def get_queryset(self):
        return UsageEvent.objects.filter(workspace=self.workspace_access().workspace).select_related(
            "api_key", "ledger_entry", "workspace"
        )


class RequestList(RequestView):
    pagination_class = NewestFirst

    @extend_schema(
        tags=TAG,
        operation_id="requests_list",
        summary="List requests",
        responses={200: s.RequestRecordSerializer(many=True)},
        description="The workspace's requests over [start, end) (default: the last 30 days), newest first.",
        parameters=[s.RequestQuerySerializer],
    )
    def get(self, request, slug: str) -> Response:
        query = s.RequestQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = _range(query.validated_data)
        events = self.get_queryset().filter(created_at__gte=start, created_at__lt=end)
        if query.validated_data.get("model"):
            events = events.filter(model_slug=query.validated_data["model"])
        if query.validated_data.get("key") is not None:
            events = events.filter(api_key_id=query.validated_data["key"])
        if query.validated_data.get("outcome"):
            events = events.filter(outcome=query.validated_data["outcome"])
        page = self.paginate_queryset(events)
        return self.get_paginated_response(s.RequestRecordSerializer(page, many=True).data)


class RequestDetail(RequestView):
    @extend_schema(
        tags=TAG,
        operation_id="requests_retrieve",
        summary="One request's record",
        description="By the `x-request-id` the gateway answered with: tokens, cost, route, attempts, status, latency.",
    )
    def get(self, request, slug: str, request_id) -> Response:
        return Response(s.RequestRecordSerializer(get_object_or_404(self.get_queryset(), request_id=request_id)).data)
