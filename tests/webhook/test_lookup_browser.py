"""The public lookup in a real browser: type a code the way people do, read the status."""

from __future__ import annotations

import pytest

from tests.browser import chromium_page
from tests.servers import live_server
from tests.webhook.conftest import submitted_code
from webhook.app import create_app
from webhook.settings import Settings


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_lookup_form_in_chromium(settings: Settings) -> None:
    app = create_app(settings)
    runtime = app.state.runtime
    code = submitted_code(runtime, "khai-tu")
    with live_server(app) as base, chromium_page() as page:
        page.goto(f"{base}/lookup")
        page.fill("#code", "  " + code.lower().replace("-0001", "-1"))
        page.click("button[type=submit]")
        page.wait_for_selector("#status")
        assert page.inner_text("#code") == code
        assert page.inner_text("#status") == "Đã nộp, chờ cán bộ kiểm tra"
        assert "Đăng ký khai tử" in page.inner_text("#procedure")
        page.click("text=English")
        page.wait_for_selector("text=Submitted, waiting for the desk to check it")

        page.goto(f"{base}/lookup")
        page.fill("#code", "khong phai ma")
        page.click("button[type=submit]")
        assert "chưa đúng dạng" in page.inner_text("[role=alert]")
    runtime.engine.dispose()
