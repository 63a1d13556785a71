"""The public lookup in a real browser: type a code the way people do, read the status."""

from __future__ import annotations

import pytest

from tests.browser import (
    PHONES,
    axe_violations,
    chromium_page,
    emoji_in_buttons,
    outside_the_screen,
)
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


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("phone", PHONES)
def test_the_lookup_pages_fit_a_phone_and_pass_axe(settings: Settings, phone: str) -> None:
    app = create_app(settings)
    runtime = app.state.runtime
    code = submitted_code(runtime, "khai-tu")
    with live_server(app) as base, chromium_page(**PHONES[phone]) as page:
        for path in ("/lookup", f"/lookup/{code}", f"/lookup/{code}?lang=en", "/lookup/X-1"):
            page.goto(base + path)
            assert page.get_attribute("html", "lang") == ("en" if "en" in path else "vi")
            assert outside_the_screen(page) == [], path
            assert emoji_in_buttons(page) == [], path
            assert axe_violations(page) == [], path
        page.goto(f"{base}/lookup/{code}")
        current = page.locator("#timeline [aria-current=step]")
        assert current.get_attribute("data-status") == "submitted"
        assert "07/12/2026" in current.inner_text()
        upcoming = page.locator("#timeline .upcoming .what").all_inner_texts()
        assert upcoming == ["Đã tiếp nhận", "Đang giải quyết", "Đã có kết quả", "Đã trả kết quả"]
    runtime.engine.dispose()
