"""The pages: thin views that check the member's role, call a selector or service, and render.

Every workspace page lives under /w/<slug>/ and goes through `workspace_page`: anonymous visitors
are sent to sign in, a stranger to the workspace (or to one of its objects) gets 404, a member whose
role lacks the capability gets 403 (the capability table is workspaces/access.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from billing.models import Invoice
from billing.pricing import format_cost
from console import charts, selectors
from console.exports import invoice_csv, invoice_filename, invoice_label
from console.forms import ApiKeyCreateForm, UsageFilterForm
from workspaces import access
from workspaces.models import ApiKey, Membership
from workspaces.services import WorkspaceError, api_key_issue, api_key_revoke

NAV = [
    ("dashboard", "Dashboard", "console:dashboard", "usage.view"),
    ("keys", "API keys", "console:keys", "keys.view"),
    ("usage", "Usage", "console:usage", "usage.view"),
    ("invoices", "Invoices", "console:invoices", "invoices.view"),
]


def _page(request: HttpRequest, template: str, member: Membership | None, active: str = "", **context: Any):
    status = context.pop("status", 200)
    if member is not None:
        context.update(
            workspace=member.workspace,
            membership=member,
            memberships=access.memberships(request.user),
            nav=[
                {
                    "key": key,
                    "label": label,
                    "url": reverse(name, args=[member.workspace.slug]),
                    "active": key == active,
                }
                for key, label, name, capability in NAV
                if access.can(member.role, capability)
            ],
        )
    return render(request, template, context, status=status)


def workspace_page(capability: str) -> Callable:
    """Resolve /w/<slug>/ to the user's membership with `capability`; 404 to strangers, 403 to the rest."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            try:
                member = access.membership(request.user, slug)
            except Http404:
                return _page(request, "console/404.html", None, status=404)
            try:
                if not access.can(member.role, capability):
                    raise PermissionDenied(capability)
                return view(request, member, *args, **kwargs)
            except PermissionDenied:
                return _page(request, "console/403.html", member, status=403)
            except Http404:
                return _page(request, "console/404.html", member, status=404)

        return wrapper

    return decorate


# --- choosing a workspace -------------------------------------------------------------------------


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """One workspace: go there. Several (or none): choose."""
    found = access.memberships(request.user)
    if len(found) == 1:
        return redirect("console:dashboard", found[0].workspace.slug)
    return _page(request, "console/choose.html", None, memberships=found)


@login_required
@require_GET
def switch(request: HttpRequest) -> HttpResponse:
    """The switcher's target (a plain GET form): the chosen workspace's dashboard, 404 if not a member."""
    slug = request.GET.get("workspace", "")
    try:
        member = access.membership(request.user, slug)
    except Http404:
        return _page(request, "console/404.html", None, status=404)
    return redirect("console:dashboard", member.workspace.slug)


# --- dashboard ------------------------------------------------------------------------------------


@require_GET
@workspace_page("usage.view")
def dashboard(request: HttpRequest, member: Membership) -> HttpResponse:
    summary = selectors.dashboard(workspace=member.workspace, now=timezone.now())
    chart = charts.stacked_bars(summary.days, {"": summary.spend_by_day}, fmt=format_cost)
    return _page(
        request,
        "console/dashboard.html",
        member,
        "dashboard",
        summary=summary,
        chart=chart,
        chart_rows=[(day, summary.spend_by_day.get(day), summary.requests_by_day.get(day, 0)) for day in summary.days],
    )


# --- API keys -------------------------------------------------------------------------------------


@require_GET
@workspace_page("keys.view")
def keys(request: HttpRequest, member: Membership) -> HttpResponse:
    return _page(
        request,
        "console/keys.html",
        member,
        "keys",
        keys=selectors.api_keys_of(member.workspace),
        can_manage=access.can(member.role, "keys.manage"),
        can_manage_admin=access.can(member.role, "keys.manage_admin"),
        now=timezone.now(),
    )


@never_cache  # the answer to the POST holds the secret: no cache may keep it
@require_http_methods(["GET", "POST"])
@workspace_page("keys.manage")
def key_create(request: HttpRequest, member: Membership) -> HttpResponse:
    form = ApiKeyCreateForm(request.POST or None, may_issue_admin_keys=access.can(member.role, "keys.manage_admin"))
    if request.method == "POST" and form.is_valid():
        try:
            key, secret = api_key_issue(
                workspace=member.workspace,
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"],
                expires_at=form.expires_at,
                allowed_models=form.cleaned_data["allowed_models"],
                acting_user=request.user,
            )
        except WorkspaceError as exc:
            form.add_error("name" if "name" in str(exc) else None, str(exc))
        else:
            # The secret exists only in this response: it is not stored, not in the session, not logged.
            return _page(request, "console/key_created.html", member, "keys", key=key, secret=secret, status=201)
    status = 400 if request.method == "POST" else 200
    return _page(request, "console/key_form.html", member, "keys", form=form, status=status)


@require_http_methods(["GET", "POST"])
@workspace_page("keys.manage")
def key_revoke(request: HttpRequest, member: Membership, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=key_id, workspace=member.workspace)
    if key.scope == ApiKey.Scope.ADMIN and not access.can(member.role, "keys.manage_admin"):
        raise PermissionDenied("keys.manage_admin")
    if request.method == "POST":
        already = key.revoked_at is not None
        api_key_revoke(api_key=key, acting_user=request.user)
        text = "was already revoked" if already else "is revoked: requests with it are refused from now on"
        messages.success(request, f"Key “{key.name}” ({key.prefix}…) {text}.")
        return redirect("console:keys", member.workspace.slug)
    return _page(request, "console/key_revoke.html", member, "keys", key=key)


# --- usage ----------------------------------------------------------------------------------------


def _usage_series(report: selectors.UsageReport, metric: str) -> dict[str, dict[date, Any]]:
    pick = {
        "cost": lambda cell: cell.cost,
        "requests": lambda cell: cell.requests,
        "tokens": lambda cell: cell.tokens,
    }[metric]
    series: dict[str, dict[date, Any]] = {slug: {} for slug in report.models}
    for (day, slug), cell in report.cells.items():
        series[slug][day] = pick(cell)
    return series


@require_GET
@workspace_page("usage.view")
def usage(request: HttpRequest, member: Membership) -> HttpResponse:
    form = UsageFilterForm(request.GET, workspace=member.workspace)
    if not form.is_valid():
        return _page(request, "console/usage.html", member, "usage", form=form, status=400)
    data = form.cleaned_data
    # Shown with the defaults filled in (this month so far), not the blanks that were submitted.
    form = UsageFilterForm(initial=data, workspace=member.workspace)
    report = selectors.usage_report(
        workspace=member.workspace, first=data["start"], last=data["end"], model_slug=data["model"], api_key=data["key"]
    )
    metric = data["metric"]
    fmt = format_cost if metric == "cost" else (lambda n: f"{n:,}")
    chart = charts.stacked_bars(report.days, _usage_series(report, metric), fmt=fmt)
    return _page(
        request,
        "console/usage.html",
        member,
        "usage",
        form=form,
        report=report,
        chart=chart,
        filters=data,
        metric=metric,
    )


# --- invoices -------------------------------------------------------------------------------------


@require_GET
@workspace_page("invoices.view")
def invoices(request: HttpRequest, member: Membership) -> HttpResponse:
    return _page(request, "console/invoices.html", member, "invoices", invoices=selectors.invoices_of(member.workspace))


@require_GET
@workspace_page("invoices.view")
def invoice_detail(request: HttpRequest, member: Membership, invoice_id: int) -> HttpResponse:
    invoice = get_object_or_404(Invoice, pk=invoice_id, workspace=member.workspace)
    lines = selectors.invoice_lines(invoice)
    return _page(
        request,
        "console/invoice_detail.html",
        member,
        "invoices",
        invoice=invoice,
        label=invoice_label(invoice),
        lines=lines,
        has_late=any(line.is_late for line in lines),
    )


@require_GET
@workspace_page("invoices.view")
def invoice_csv_download(request: HttpRequest, member: Membership, invoice_id: int) -> HttpResponse:
    invoice = get_object_or_404(Invoice.objects.select_related("workspace"), pk=invoice_id, workspace=member.workspace)
    response = HttpResponse(invoice_csv(invoice), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{invoice_filename(invoice)}"'
    return response
