"""The public lookup in a real browser: type a code the way people do, read the status."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage.db import session_scope
from storage.dossiers import submit_dossier
from tests.browser import chromium_page, live_server
from webhook.app import create_app
from webhook.settings import Settings


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_lookup_form_in_chromium(settings: Settings) -> None:
    app = create_app(settings)
    runtime = app.state.runtime
    procedure = runtime.catalog.procedure_by_slug("khai-tu")
    with session_scope(runtime.engine) as session:
        dossier, _ = submit_dossier(
            session,
            catalog=runtime.catalog,
            calendar=runtime.calendar,
            procedure_code=procedure.code,
            agency_code=runtime.catalog.receiving_agencies(procedure)[0].code,
            citizen_id=None,
            channel="web",
            at=datetime(2026, 12, 7, 2, 0, tzinfo=UTC),
        )
    with live_server(app) as base, chromium_page() as page:
        page.goto(f"{base}/lookup")
        page.fill("#code", "  " + dossier.code.lower().replace("-0001", "-1"))
        page.click("button[type=submit]")
        page.wait_for_selector("#status")
        assert page.inner_text("#code") == dossier.code
        assert page.inner_text("#status") == "Đã nộp, chờ cán bộ kiểm tra"
        assert "Đăng ký khai tử" in page.inner_text("#procedure")
        page.click("text=English")
        page.wait_for_selector("text=Submitted, waiting for the desk to check it")

        page.goto(f"{base}/lookup")
        page.fill("#code", "khong phai ma")
        page.click("button[type=submit]")
        assert "chưa đúng dạng" in page.inner_text("[role=alert]")
    runtime.engine.dispose()
