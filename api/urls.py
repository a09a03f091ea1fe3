"""The management API under /api/v1/ (workspace-scoped) and its OpenAPI schema and reference pages."""

from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api.converters import IdConverter
from api.views import invoices, keys, members, reports, workspaces

register_converter(IdConverter, "id")

app_name = "api"

workspace_urls = [
    path("", workspaces.WorkspaceDetail.as_view(), name="workspace"),
    path("keys/", keys.KeyList.as_view(), name="keys"),
    path("keys/<id:key_id>/", keys.KeyDetail.as_view(), name="key"),
    path("keys/<id:key_id>/revoke/", keys.KeyRevoke.as_view(), name="key-revoke"),
    path("keys/<id:key_id>/rotate/", keys.KeyRotate.as_view(), name="key-rotate"),
    path("members/", members.MemberList.as_view(), name="members"),
    path("members/<id:member_id>/", members.MemberDetail.as_view(), name="member"),
    path("usage/", reports.Usage.as_view(), name="usage"),
    path("requests/", reports.RequestList.as_view(), name="requests"),
    path("requests/<uuid:request_id>/", reports.RequestDetail.as_view(), name="request"),
    path("invoices/", invoices.InvoiceList.as_view(), name="invoices"),
    path("invoices/<id:invoice_id>/", invoices.InvoiceDetail.as_view(), name="invoice"),
    path("invoices/<id:invoice_id>/csv/", invoices.InvoiceCsv.as_view(), name="invoice-csv"),
    path("audit/", workspaces.AuditList.as_view(), name="audit"),
]

urlpatterns = [
    path("api/v1/workspaces/", workspaces.WorkspaceList.as_view(), name="workspaces"),
    path("api/v1/workspaces/<slug:slug>/", include(workspace_urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
