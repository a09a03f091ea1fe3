"""Invoices: list (filter by status or month), detail with lines, CSV."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from api import serializers as s
from api.pagination import LatestPeriodFirst
from api.views.base import WorkspaceView
from billing.models import Invoice

# One CSV for both surfaces: the API serves the very file the invoice page offers.
from console.exports import HEADER as CSV_HEADER
from console.exports import invoice_csv, invoice_filename

TAG = ["Invoices"]


class InvoiceView(WorkspaceView):
    capabilities = {"GET": "invoices.view"}

    def get_queryset(self):
        return Invoice.objects.filter(workspace=self.workspace_access().workspace).select_related("workspace")

    def get_invoice(self) -> Invoice:
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["invoice_id"])


class InvoiceList(InvoiceView):
    pagination_class = LatestPeriodFirst
    serializer_class = s.InvoiceSerializer

    @extend_schema(
        tags=TAG,
        operation_id="invoices_list",
        summary="List invoices",
        responses={200: s.InvoiceSerializer(many=True)},
        parameters=[s.InvoiceQuerySerializer],
    )
    def get(self, request, slug: str) -> Response:
        query = s.InvoiceQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        invoices = self.get_queryset()
        if query.validated_data.get("status"):
            invoices = invoices.filter(status=query.validated_data["status"])
        if query.validated_data.get("period"):
            invoices = invoices.filter(period_start=query.validated_data["period"])
        page = self.paginate_queryset(invoices)
        return self.get_paginated_response(s.InvoiceSerializer(page, many=True).data)


class InvoiceDetail(InvoiceView):
    serializer_class = s.InvoiceDetailSerializer

    @extend_schema(tags=TAG, operation_id="invoices_retrieve", summary="An invoice with its lines")
    def get(self, request, slug: str, invoice_id: int) -> Response:
        invoice = self.get_invoice()
        return Response(s.InvoiceDetailSerializer(invoice).data)


class InvoiceCsv(InvoiceView):
    serializer_class = s.InvoiceDetailSerializer

    @extend_schema(
        tags=TAG,
        operation_id="invoices_csv",
        summary="An invoice as CSV",
        description="Columns: " + ", ".join(CSV_HEADER) + ". One row per line, then a Total row.",
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The CSV file.")},
    )
    def get(self, request, slug: str, invoice_id: int) -> HttpResponse:
        invoice = self.get_invoice()
        response = HttpResponse(invoice_csv(invoice), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{invoice_filename(invoice)}"'
        return response
