"""The pages for people, through Django's test client: who may open what (per role, 404 to strangers,
sign-in for anonymous visitors), tenant isolation, the key secret shown once, revocation only by a
POST with CSRF, the dashboard's and usage page's figures, and the invoice CSV byte for byte."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import Invoice, InvoiceLine
from billing.services import credit_issue, invoice_roll_up, invoice_void, month_before, month_start, usage_price
from tests.test_billing_pricing import make_event
from workspaces.models import ApiKey, Membership, Workspace
from workspaces.services import api_key_issue, hash_api_key, workspace_create

pytestmark = pytest.mark.django_db

ROLES = ["owner", "admin", "developer", "finance"]


@dataclass
class Cast:
    users: dict[str, object]  # role → user of `workspace`; "stranger" belongs only to `other`
    workspace: Workspace
    other: Workspace
    key: ApiKey
    other_key: ApiKey
    invoice: Invoice
    other_invoice: Invoice

    def client(self, who: str, **kwargs) -> Client:
        client = Client(**kwargs)
        client.force_login(self.users[who])
        return client


def _invoice(workspace: Workspace, *, start: datetime, number: str | None = None, **fields) -> Invoice:
    status = Invoice.Status.FINALIZED if number else Invoice.Status.DRAFT
    fields.setdefault("status", status)
    return Invoice.objects.create(
        workspace=workspace, period_start=start, period_end=start + timedelta(days=31), number=number, **fields
    )


@pytest.fixture
def cast(catalog) -> Cast:
    users = get_user_model().objects
    workspace = workspace_create(name="Acme")
    other = workspace_create(name="Elsewhere")
    people = {}
    for role in ROLES:
        people[role] = users.create_user(f"{role}-user", f"{role}@example.com")
        Membership.objects.create(user=people[role], workspace=workspace, role=role)
    people["stranger"] = users.create_user("stranger", "stranger@example.com")
    Membership.objects.create(user=people["stranger"], workspace=other, role=Membership.Role.OWNER)
    key, _ = api_key_issue(workspace=workspace, name="ci")
    other_key, _ = api_key_issue(workspace=other, name="theirs")
    jan = datetime(2026, 1, 1, tzinfo=UTC)
    invoice = _invoice(workspace, start=jan, number="OMX-202601-000001", total=Decimal("4.05"), finalized_at=jan)
    other_invoice = _invoice(other, start=jan, number="OMX-202601-000002", total=Decimal("9.99"), finalized_at=jan)
    return Cast(people, workspace, other, key, other_key, invoice, other_invoice)


def _pages(cast: Cast) -> dict[str, str]:
    slug = cast.workspace.slug
    return {
        "dashboard": reverse("console:dashboard", args=[slug]),
        "keys": reverse("console:keys", args=[slug]),
        "key_create": reverse("console:key_create", args=[slug]),
        "key_revoke": reverse("console:key_revoke", args=[slug, cast.key.pk]),
        "usage": reverse("console:usage", args=[slug]),
        "invoices": reverse("console:invoices", args=[slug]),
        "invoice": reverse("console:invoice", args=[slug, cast.invoice.pk]),
        "invoice_csv": reverse("console:invoice_csv", args=[slug, cast.invoice.pk]),
    }


ALLOWED = {
    "dashboard": set(ROLES),
    "keys": {"owner", "admin"},
    "key_create": {"owner", "admin"},
    "key_revoke": {"owner", "admin"},
    "usage": set(ROLES),
    "invoices": {"owner", "admin", "finance"},
    "invoice": {"owner", "admin", "finance"},
    "invoice_csv": {"owner", "admin", "finance"},
}


# --- permissions --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [*ROLES, "stranger"])
def test_every_page_answers_each_role_by_the_capability_table(cast, role):
    client = cast.client(role)
    for name, url in _pages(cast).items():
        response = client.get(url)
        if role == "stranger":
            expected = 404
        else:
            expected = 200 if role in ALLOWED[name] else 403
        assert response.status_code == expected, (role, name, response.status_code)
        if expected == 403:
            assert b"Not allowed" in response.content and role.encode() in response.content
        if expected == 404:
            # Nothing about the workspace leaks to a stranger: not its name, not its keys.
            assert b"Acme" not in response.content and cast.key.prefix.encode() not in response.content


def test_anonymous_visitors_are_sent_to_sign_in_from_every_page(cast):
    client = Client()
    for url in [*_pages(cast).values(), reverse("console:home"), reverse("console:switch")]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url


def test_navigation_shows_only_the_pages_the_role_may_open(cast):
    nav = {
        role: set(re.findall(rb'href="/w/acme/(\w*)/?"', cast.client(role).get(_pages(cast)["dashboard"]).content))
        for role in ROLES
    }
    assert nav["owner"] == nav["admin"] == {b"", b"keys", b"usage", b"invoices"}
    assert nav["developer"] == {b"", b"usage"}
    assert nav["finance"] == {b"", b"usage", b"invoices"}


def test_a_developer_cannot_create_or_revoke_keys_by_posting_either(cast):
    client = cast.client("developer")
    pages = _pages(cast)
    assert client.post(pages["key_create"], {"name": "sneaky", "scope": "inference"}).status_code == 403
    assert client.post(pages["key_revoke"]).status_code == 403
    cast.key.refresh_from_db()
    assert cast.key.revoked_at is None
    assert not ApiKey.objects.filter(name="sneaky").exists()


# --- tenant isolation ---------------------------------------------------------------------------


def test_another_workspaces_objects_are_404_through_my_workspace(cast):
    client = cast.client("owner")
    slug = cast.workspace.slug
    for url in (
        reverse("console:key_revoke", args=[slug, cast.other_key.pk]),
        reverse("console:invoice", args=[slug, cast.other_invoice.pk]),
        reverse("console:invoice_csv", args=[slug, cast.other_invoice.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"Elsewhere" not in response.content and b"9.99" not in response.content
    assert client.post(reverse("console:key_revoke", args=[slug, cast.other_key.pk])).status_code == 404
    cast.other_key.refresh_from_db()
    assert cast.other_key.revoked_at is None


def test_another_workspace_itself_is_404_and_the_switcher_refuses_it(cast):
    client = cast.client("owner")
    assert client.get(reverse("console:dashboard", args=[cast.other.slug])).status_code == 404
    assert client.get(reverse("console:invoices", args=[cast.other.slug])).status_code == 404
    assert client.get(reverse("console:switch"), {"workspace": cast.other.slug}).status_code == 404
    assert client.get(reverse("console:dashboard", args=["no-such-workspace"])).status_code == 404


def test_a_usage_filter_on_another_workspaces_key_is_refused_not_answered(cast):
    make_event(cast.other, api_key=cast.other_key, at=timezone.now(), input_tokens=1000)
    response = cast.client("owner").get(_pages(cast)["usage"], {"key": cast.other_key.pk})
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    assert cast.other_key.prefix.encode() not in response.content


# --- signing in and choosing a workspace ----------------------------------------------------------


def test_sign_in_with_a_password_then_out(cast):
    user = cast.users["owner"]
    user.set_password("correct horse battery")
    user.save()
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200 and b'name="csrfmiddlewaretoken"' in page.content
    wrong = client.post("/login/", {"username": "owner-user", "password": "nope"})
    assert wrong.status_code == 200 and b'role="alert"' in wrong.content and b"correct username" in wrong.content
    right = client.post("/login/", {"username": "owner-user", "password": "correct horse battery"})
    assert right.status_code == 302 and right["Location"] == "/"
    assert client.get("/")["Location"] == "/w/acme/"
    assert client.post("/logout/").status_code == 302
    assert client.get("/w/acme/").status_code == 302


def test_one_workspace_redirects_there_several_get_a_chooser_and_a_switcher(cast):
    assert cast.client("finance").get("/")["Location"] == "/w/acme/"
    Membership.objects.create(user=cast.users["finance"], workspace=cast.other, role=Membership.Role.DEVELOPER)
    client = cast.client("finance")
    chooser = client.get("/")
    assert chooser.status_code == 200
    assert b'href="/w/acme/"' in chooser.content and b'href="/w/elsewhere/"' in chooser.content
    dashboard = client.get("/w/acme/")
    assert b'id="workspace-switcher"' in dashboard.content and b'value="elsewhere"' in dashboard.content
    assert client.get(reverse("console:switch"), {"workspace": "elsewhere"})["Location"] == "/w/elsewhere/"
    # In the other workspace the same person is a developer: no invoices there.
    assert client.get("/w/elsewhere/invoices/").status_code == 403


def test_a_user_without_workspaces_sees_an_empty_chooser(db):
    user = get_user_model().objects.create_user("lonely")
    client = Client()
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200 and b"not a member of any workspace" in response.content


# --- keys ---------------------------------------------------------------------------------------


def test_a_new_keys_secret_is_shown_once_and_never_again(cast):
    client = cast.client("admin")
    url = _pages(cast)["key_create"]
    response = client.post(url, {"name": "deploy bot", "scope": "inference"})
    assert response.status_code == 201
    secret = re.search(rb'value="(omx_live_[A-Za-z0-9_-]{40})"', response.content).group(1).decode()
    key = ApiKey.objects.get(workspace=cast.workspace, name="deploy bot")
    assert key.key_hash == hash_api_key(secret) and secret.startswith(key.prefix)
    assert "no-store" in response["Cache-Control"]
    # Not retrievable: not in any later page, not in the session, not in the database.
    listing = client.get(_pages(cast)["keys"])
    assert key.prefix.encode() in listing.content
    for page in (listing, client.get(url), client.get(_pages(cast)["dashboard"])):
        assert secret.encode() not in page.content
    for session in Session.objects.all():
        assert secret not in str(session.get_decoded())
    assert not ApiKey.objects.filter(prefix=secret).exists()


def test_a_key_with_expiry_allowed_models_and_management_scope(cast):
    tomorrow = (timezone.now() + timedelta(days=1)).date()
    response = cast.client("owner").post(
        _pages(cast)["key_create"],
        {"name": "ops", "scope": "admin", "expires_on": tomorrow.isoformat(), "allowed_models": ["codex-mini"]},
    )
    assert response.status_code == 201 and b"omx_admin_" in response.content
    key = ApiKey.objects.get(name="ops")
    assert key.scope == "admin" and key.allowed_models == ["codex-mini"]
    assert key.expires_at == datetime.combine(tomorrow + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "scope": "inference"}, b"This field is required."),
        ({"name": "ci", "scope": "inference"}, b"already has an active key named"),
        ({"name": "x", "scope": "root"}, b"Select a valid choice"),
        ({"name": "x", "scope": "inference", "expires_on": "2001-01-01"}, b"This day is already over"),
        ({"name": "x", "scope": "inference", "allowed_models": ["no-such-model"]}, b"Select a valid choice"),
    ],
)
def test_a_bad_key_form_is_answered_with_a_clear_error_and_no_key(cast, data, message):
    before = ApiKey.objects.count()
    response = cast.client("owner").post(_pages(cast)["key_create"], data)
    assert response.status_code == 400
    assert message in response.content and b'role="alert"' in response.content
    assert not re.search(rb"omx_(live|admin)_[A-Za-z0-9_-]{40}", response.content)
    assert ApiKey.objects.count() == before


def test_revoking_asks_first_and_takes_a_post_with_a_csrf_token(cast):
    client = cast.client("owner", enforce_csrf_checks=True)
    url = _pages(cast)["key_revoke"]
    confirm = client.get(url)
    assert confirm.status_code == 200 and b"Revoke this key" in confirm.content
    cast.key.refresh_from_db()
    assert cast.key.revoked_at is None  # looking at the confirmation changes nothing
    assert client.post(url).status_code == 403  # no CSRF token
    cast.key.refresh_from_db()
    assert cast.key.revoked_at is None
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', confirm.content).group(1).decode()
    done = client.post(url, {"csrfmiddlewaretoken": token})
    assert done.status_code == 302 and done["Location"] == _pages(cast)["keys"]
    cast.key.refresh_from_db()
    assert cast.key.revoked_at is not None
    listing = client.get(done["Location"])
    assert b"is revoked" in listing.content and b"Revoked" in listing.content
    assert cast.client("owner").put(url).status_code == 405  # only GET (ask) and POST (do)


# --- dashboard and usage ------------------------------------------------------------------------


def _priced(workspace, *, at, key=None, model="codex-mini", **tokens):
    event = make_event(workspace, model_slug=model, at=at, api_key=key, **tokens)
    usage_price(request_ids=[event.request_id])
    return event


def test_the_dashboard_shows_this_periods_spend_against_the_last_and_a_daily_chart(cast):
    now = timezone.now()
    this_month = month_start(now)
    last_month = month_before(this_month)
    _priced(cast.workspace, at=this_month, input_tokens=1_000_000)  # $1.50
    _priced(cast.workspace, at=now - timedelta(seconds=1), output_tokens=1_000)  # $0.006
    _priced(cast.workspace, at=last_month + timedelta(hours=1), output_tokens=1_000_000)  # $6.00
    _priced(cast.other, at=now - timedelta(seconds=1), output_tokens=10_000_000)  # not ours
    body = cast.client("developer").get(_pages(cast)["dashboard"]).content.decode()
    assert 'data-testid="spend">USD 1.51<' in body and "exact 1.506" in body
    assert 'data-testid="last-spend">USD 6.00<' in body
    assert 'data-testid="requests">2<' in body
    bars = re.findall(r"<rect class=\"bar\"[^>]*><title>([^<]+)</title>", body)
    assert f"{this_month:%Y-%m-%d}: 1.5" in bars and len(bars) == (1 if now.date() == this_month.date() else 2)


def test_usage_totals_are_exact_and_filtered_by_model_and_key(cast):
    now = timezone.now()
    second, _ = api_key_issue(workspace=cast.workspace, name="second")
    _priced(cast.workspace, at=now, key=cast.key, input_tokens=3, cached_input_tokens=5, output_tokens=7)
    _priced(cast.workspace, at=now, key=second, model="gpt-4.1-mini", input_tokens=1_000)
    client = cast.client("developer")
    body = client.get(_pages(cast)["usage"]).content.decode()
    # codex-mini: 3 x 1.50 + 5 x 0.375 + 7 x 6.00 per 1M = 0.000048375, to the last digit.
    assert 'data-testid="cost-codex-mini">0.000048375' in body
    assert body.count('<rect class="bar"') == 2  # one day, two models stacked
    only_second = client.get(_pages(cast)["usage"], {"key": second.pk}).content.decode()
    assert "cost-codex-mini" not in only_second and "cost-gpt-4.1-mini" in only_second
    only_codex = client.get(_pages(cast)["usage"], {"model": "codex-mini", "metric": "requests"}).content.decode()
    assert "cost-gpt-4.1-mini" not in only_codex and 'data-testid="cost-total">0.000048375' in only_codex


def test_usage_range_outside_the_events_is_empty_and_a_reversed_range_is_an_error(cast):
    _priced(cast.workspace, at=timezone.now(), input_tokens=10)
    client = cast.client("finance")
    empty = client.get(_pages(cast)["usage"], {"start": "2020-01-01", "end": "2020-01-31"})
    assert empty.status_code == 200 and b"No requests in this range." in empty.content
    reversed_range = client.get(_pages(cast)["usage"], {"start": "2020-02-01", "end": "2020-01-31"})
    assert reversed_range.status_code == 400 and b"must not be after" in reversed_range.content
    bad_date = client.get(_pages(cast)["usage"], {"start": "yesterday"})
    assert bad_date.status_code == 400 and b"Enter a valid date." in bad_date.content


# --- invoices -----------------------------------------------------------------------------------


@pytest.fixture
def lines(cast):
    invoice = cast.invoice
    for fields in (
        {"model_slug": "codex-mini", "description": "codex-mini", "input_tokens": 600_000, "amount": "4.05"},
        {
            "model_slug": "codex-mini",
            "description": "codex-mini (late usage from an earlier period)",
            "is_late": True,
            "output_tokens": 1_000,
            "amount": "0.01",
        },
        {"model_slug": "", "description": "Adjustments", "amount": "-0.01"},
    ):
        InvoiceLine.objects.create(invoice=invoice, **fields)
    return invoice


def test_the_invoice_list_shows_period_status_total_and_currency(cast, lines):
    body = cast.client("finance").get(_pages(cast)["invoices"]).content.decode()
    assert "January 2026" in body and "OMX-202601-000001" in body and "Finalized" in body
    assert "4.05" in body and "USD" in body and "9.99" not in body


def test_invoice_detail_marks_late_lines_and_credits_and_prints_cleanly(cast, lines):
    body = cast.client("finance").get(_pages(cast)["invoice"]).content.decode()
    assert re.search(r'<tr class="late">\s*<th scope="row">codex-mini \(late usage', body)
    assert "Late usage</span>" in body and "Credit</span>" in body
    assert 'data-testid="total"><strong>4.05<' in body
    assert 'data-testid="status">Finalized<' in body
    assert 'class="actions no-print"' in body  # the print stylesheet hides buttons and navigation


def test_a_void_invoice_says_so(cast):
    voided = invoice_void(invoice=cast.invoice, reason="issued twice", by=cast.users["owner"])
    body = cast.client("owner").get(_pages(cast)["invoice"]).content.decode()
    assert f"<strong>Void</strong> since {voided.voided_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC: issued twice" in body
    assert 'data-testid="status">Void<' in body


def test_a_credit_is_its_own_line_on_the_current_draft_and_lowers_the_spend(cast):
    _priced(cast.workspace, at=timezone.now(), output_tokens=1_000_000)  # $6.00
    credit_issue(workspace=cast.workspace, amount="2.50", reason="goodwill", by=cast.users["owner"])
    invoice_roll_up()
    draft = Invoice.objects.get(workspace=cast.workspace, status=Invoice.Status.DRAFT)
    client = cast.client("finance")
    body = client.get(reverse("console:invoice", args=[cast.workspace.slug, draft.pk])).content.decode()
    assert re.search(r'<tr class="adjustment">\s*<th scope="row">Adjustment: goodwill', body)
    assert "Credit</span>" in body and "-2.50" in body and 'data-testid="total"><strong>3.50<' in body
    assert 'data-testid="spend">USD 3.50<' in client.get(_pages(cast)["dashboard"]).content.decode()


def test_invoice_csv_is_one_row_per_line_and_a_total_exactly(cast, lines):
    response = cast.client("finance").get(_pages(cast)["invoice_csv"])
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="invoice-OMX-202601-000001.csv"'
    assert response.content.decode() == (
        "invoice,period,status,description,model,late,input_tokens,cached_input_tokens,cache_write_tokens,"
        "output_tokens,amount,currency\r\n"
        "OMX-202601-000001,2026-01,finalized,codex-mini,codex-mini,no,600000,0,0,0,4.05,USD\r\n"
        "OMX-202601-000001,2026-01,finalized,codex-mini (late usage from an earlier period),codex-mini,yes,"
        "0,0,0,1000,0.01,USD\r\n"
        "OMX-202601-000001,2026-01,finalized,Adjustments,,no,0,0,0,0,-0.01,USD\r\n"
        "OMX-202601-000001,2026-01,finalized,Total,,,600000,0,0,1000,4.05,USD\r\n"
    )


def test_a_draft_invoice_csv_is_named_after_its_workspace_and_period(cast):
    draft = _invoice(cast.workspace, start=datetime(2026, 2, 1, tzinfo=UTC), total=Decimal("0"))
    response = cast.client("admin").get(reverse("console:invoice_csv", args=[cast.workspace.slug, draft.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="invoice-draft-acme-2026-02.csv"'
    assert response.content.decode().splitlines()[-1] == "draft-acme-2026-02,2026-02,draft,Total,,,0,0,0,0,0.00,USD"


def test_only_owners_issue_or_revoke_management_keys(cast):
    admin = cast.client("admin")
    form = admin.get(_pages(cast)["key_create"]).content.decode()
    assert 'value="inference"' in form and 'value="admin"' not in form
    refused = admin.post(_pages(cast)["key_create"], {"name": "ops", "scope": "admin"})
    assert refused.status_code == 400 and b"Select a valid choice" in refused.content
    assert not ApiKey.objects.filter(name="ops").exists()
    management, _ = api_key_issue(workspace=cast.workspace, name="ops", scope=ApiKey.Scope.ADMIN)
    url = reverse("console:key_revoke", args=[cast.workspace.slug, management.pk])
    assert admin.get(url).status_code == 403 and admin.post(url).status_code == 403
    assert "owners only" in admin.get(_pages(cast)["keys"]).content.decode()
    management.refresh_from_db()
    assert management.revoked_at is None
    assert cast.client("owner").post(url).status_code == 302
    management.refresh_from_db()
    assert management.revoked_at is not None


def test_lists_cost_the_same_few_queries_however_many_rows(cast, django_assert_max_num_queries):
    for n in range(20):
        api_key_issue(workspace=cast.workspace, name=f"bulk {n}")
        _invoice(cast.workspace, start=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=32 * n), total=Decimal(n))
    client = cast.client("owner")
    for name in ("keys", "invoices", "dashboard", "usage"):
        with django_assert_max_num_queries(10):
            assert client.get(_pages(cast)[name]).status_code == 200
