"""The pages in real headless Chromium against the whole app served by uvicorn: an owner signs in,
creates a key, sees its secret once, calls the gateway with it, revokes it and sees it refused; a
finance user opens an invoice built by the roll-up service and downloads its CSV. Each page is
saved as a screenshot under test-artifacts/screenshots/."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import openai
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from playwright.sync_api import expect

from billing.catalog import catalog_load
from billing.models import Invoice
from billing.services import invoice_roll_up, usage_price
from console.exports import invoice_csv
from tests.browser_fixtures import browser, page, screenshot  # noqa: F401
from tests.gateway_fixtures import gateway, mock_route  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.test_billing_pricing import make_event
from workspaces.models import ApiKey, Membership
from workspaces.services import workspace_create

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a long test passphrase"
JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)


def _person(username: str, workspace, role: str):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)
    Membership.objects.create(user=user, workspace=workspace, role=role)
    return user


def in_thread(fn):
    """Run an ORM call beside Playwright: its sync API keeps an event loop running in this thread,
    where Django refuses database calls."""

    def call():
        try:
            return fn()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def _sign_in(page, base: str, username: str, *, shot: str | None = None) -> None:
    page.goto(base + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    if shot:
        screenshot(page, shot)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


@pytest.fixture
def owner_world(gateway, mock_upstream):
    """Before the browser starts (no ORM under Playwright's loop): the catalog, a route, an owner."""
    catalog_load()
    workspace = workspace_create(name="Acme")
    _person("olivia", workspace, Membership.Role.OWNER)
    mock_route(gateway, mock_upstream)
    return workspace


def test_owner_creates_a_key_sees_it_once_uses_it_revokes_it_and_it_is_refused(gateway, owner_world, page):
    base = gateway.url

    _sign_in(page, base, "olivia", shot="console-login")
    assert page.url == base + "/w/acme/"
    expect(page.get_by_role("heading", name="Acme")).to_be_visible()
    screenshot(page, "console-dashboard-empty")

    page.get_by_role("link", name="API keys").click()
    page.get_by_role("link", name="Create a key").click()
    page.get_by_label("Name").fill("browser key")
    page.get_by_label("codex-mini", exact=False).first.check()
    screenshot(page, "console-key-form")
    page.get_by_role("button", name="Create key").click()

    secret = page.locator("#secret").input_value()
    assert re.fullmatch(r"omx_live_[A-Za-z0-9_-]{40}", secret)
    expect(page.get_by_text("shown only this once")).to_be_visible()
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied.")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    screenshot(page, "console-key-created")

    # Not retrievable again: the keys list and a fresh form know only the prefix.
    page.get_by_role("link", name="Done: back to the keys").click()
    row = page.locator("tr", has_text="browser key")
    expect(row.get_by_text("Active")).to_be_visible()
    assert secret[:13] in row.inner_text()
    assert secret not in page.content()
    screenshot(page, "console-keys")

    client = openai.OpenAI(base_url=gateway.api, api_key=secret, max_retries=0, timeout=20)
    answer = client.chat.completions.with_raw_response.create(
        model="codex-mini", messages=[{"role": "user", "content": "Say hi."}]
    )
    assert answer.status_code == 200
    assert answer.parse().choices[0].message.content
    gateway.flush_usage()

    page.get_by_role("link", name="Usage").click()
    table = page.locator("table.totals")
    assert table.locator("tbody tr", has_text="codex-mini").locator("td").first.inner_text() == "1"
    assert page.locator("svg rect.bar").count() == 1
    screenshot(page, "console-usage")
    page.get_by_role("link", name="Dashboard").click()
    assert page.get_by_test_id("requests").inner_text() == "1"
    screenshot(page, "console-dashboard")

    page.get_by_role("link", name="API keys").click()
    page.locator("tr", has_text="browser key").get_by_role("link", name="Revoke").click()
    expect(page.get_by_role("heading", name="Revoke key “browser key”?")).to_be_visible()
    assert in_thread(lambda: ApiKey.objects.get(name="browser key").revoked_at) is None  # asking changes nothing
    screenshot(page, "console-key-revoke-confirm")
    page.get_by_role("button", name="Revoke this key").click()
    expect(page.get_by_text("is revoked")).to_be_visible()
    expect(page.locator("tr", has_text="browser key").get_by_text("Revoked")).to_be_visible()
    screenshot(page, "console-keys-after-revoke")

    # The gateway's snapshot polls for changes about once a second: no forced reload here.
    deadline = time.monotonic() + 10
    while True:
        try:
            client.chat.completions.create(model="codex-mini", messages=[{"role": "user", "content": "Again?"}])
        except openai.AuthenticationError as exc:
            assert exc.status_code == 401
            break
        assert time.monotonic() < deadline, "the revoked key still worked after 10 s"
        time.sleep(0.2)


@pytest.fixture
def invoices_world(gateway):
    """January finalized by the roll-up service, then late January usage on February's draft."""
    catalog_load()
    workspace = workspace_create(name="Acme")
    fatima = _person("fatima", workspace, Membership.Role.FINANCE)
    beta = workspace_create(name="Beta")
    Membership.objects.create(user=fatima, workspace=beta, role=Membership.Role.DEVELOPER)
    for at, tokens in ((JAN + timedelta(days=3), 1_000_000), (JAN + timedelta(days=20), 400_000)):
        event = make_event(workspace, at=at, input_tokens=tokens, output_tokens=tokens // 10)
        usage_price(request_ids=[event.request_id])
    invoice_roll_up(period=JAN, finalize=True, now=FEB + timedelta(days=4))
    late = make_event(workspace, at=JAN + timedelta(days=30), input_tokens=2_000_000)
    usage_price(request_ids=[late.request_id])
    invoice_roll_up(period=FEB, now=FEB + timedelta(days=5))
    january = Invoice.objects.get(workspace=workspace, period_start=JAN)
    february = Invoice.objects.get(workspace=workspace, period_start=FEB)
    assert january.status == Invoice.Status.FINALIZED and february.lines.get().is_late
    return january, invoice_csv(january), january.lines.count()


def test_finance_opens_an_invoice_with_a_late_line_and_downloads_its_csv(gateway, invoices_world, page):
    january, expected_csv, line_count = invoices_world
    base = gateway.url
    _sign_in(page, base, "fatima")
    # In two workspaces: a chooser first, then a switcher in the header.
    assert page.url == base + "/"
    screenshot(page, "console-choose-workspace")
    page.get_by_role("link", name="Acme").click()
    assert page.get_by_role("link", name="API keys").count() == 0  # finance has no keys page
    page.goto(base + "/w/acme/keys/")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    screenshot(page, "console-403")
    page.get_by_label("Workspace").select_option("beta")  # switches on change (a small script)
    page.wait_for_url(base + "/w/beta/")
    assert page.get_by_role("link", name="Invoices").count() == 0  # a developer there
    page.get_by_label("Workspace").select_option("acme")
    page.wait_for_url(base + "/w/acme/")
    page.get_by_role("link", name="Invoices").click()
    assert page.locator("tbody tr").count() == 2
    screenshot(page, "console-invoices")

    page.get_by_role("link", name="February 2026").click()
    late_row = page.locator("tr.late")
    expect(late_row.get_by_text("Late usage")).to_be_visible()
    assert page.get_by_test_id("status").inner_text() == "Draft"
    screenshot(page, "console-invoice-draft-late")

    page.go_back()
    page.get_by_role("link", name="January 2026").click()
    assert page.get_by_test_id("status").inner_text() == "Finalized"
    assert page.get_by_test_id("total").inner_text() == f"{january.total:,}"
    screenshot(page, "console-invoice")
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.get_by_role("link", name="Download CSV")).to_be_hidden()
    screenshot(page, "console-invoice-print")
    page.emulate_media(media="screen")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename == f"invoice-{january.number}.csv"
    content = download.path().read_bytes().decode()
    assert content == expected_csv
    rows = content.splitlines()
    assert len(rows) == 1 + line_count + 1
    assert rows[-1].endswith(f",Total,,,1400000,0,0,140000,{january.total},USD")
