"""The browser fixtures work: Chromium opens a page Omixa serves and a screenshot is saved."""

import pytest

from tests.browser_fixtures import browser, page, screenshot  # noqa: F401
from tests.gateway_fixtures import gateway  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_chromium_renders_the_admin_sign_in_page_with_its_stylesheet(gateway, page):
    response = page.goto(gateway.url + "/admin/login/")
    assert response.status == 200
    assert page.locator("input[name=username]").count() == 1
    # WhiteNoise serves the admin's CSS from the app itself (no CDN, no collectstatic).
    css = page.evaluate("() => getComputedStyle(document.body).fontFamily")
    assert css and css != "Times New Roman"
    assert screenshot(page, "admin-login").stat().st_size > 1000
