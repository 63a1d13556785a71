"""The desk's day in a real headless Chromium: a citizen submits through the Telegram webhook (fake
Bot API on loopback); the officer signs in, changes the one-time password, asks for a supplement,
sees the resubmission arrive in the inbox by itself, accepts it and prints form 01. The outbox
holds a notice for each step, and an officer of another agency gets 404."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from core.dossier import Action
from core.staff import Role
from storage.db import session_scope
from storage.models import Dossier, OutboxMessage
from storage.staff import create_staff
from tests import images
from tests.browser import chromium_page
from tests.dossiers import act, citizen_dossier
from tests.fakes.telegram import TELEGRAM_SECRET, FakeTelegram, Updates
from tests.servers import browser_client, live_server
from webhook.app import create_app
from webhook.runtime import Runtime
from webhook.settings import Settings

SECRET = TELEGRAM_SECRET
NEW_PASSWORD = "Một-cửa-2026!"


@pytest.fixture
def served(telegram_settings: Settings) -> Iterator[tuple[str, Runtime]]:
    configured = telegram_settings.model_copy(update={"dispatch_interval_seconds": 0.2})
    app = create_app(configured)
    with live_server(app) as base:
        yield base, app.state.runtime
    app.state.runtime.engine.dispose()


class Citizen:
    """Mai on Telegram: updates posted to our webhook as Telegram would."""

    def __init__(self, base: str, fake: FakeTelegram) -> None:
        self.base, self.fake, self.chat = base, fake, Updates(chat_id=424242)
        self.photos = 0

    def send(self, update: dict[str, Any]) -> None:
        with httpx.Client(timeout=30) as client:
            response = self.fake.deliver(client, f"{self.base}/webhook/telegram/citizen", update)
        assert response.status_code == 200

    def photo(self) -> None:
        self.photos += 1
        file_id = f"photo-{self.photos}"
        self.fake.add_file(file_id, images.good_jpeg(self.photos))
        self.send(self.chat.photo(file_id))


def test_a_desk_officers_day_in_chromium(
    served: tuple[str, Runtime], telegram: tuple[FakeTelegram, str]
) -> None:
    base, runtime = served
    fake, _ = telegram
    catalog = runtime.catalog
    procedure = catalog.procedure_by_slug("ho-kinh-doanh")
    agency, other = [a.code for a in catalog.receiving_agencies(procedure)[:2]]
    with session_scope(runtime.engine) as session:
        _, one_time = create_staff(
            session,
            username="lan.ttphcc",
            full_name="Trần Thị Lan",
            agency_code=agency,
            role=Role.DESK_OFFICER,
        )
        _, stranger_password = create_staff(
            session,
            username="binh.phuong2",
            full_name="Bình",
            agency_code=other,
            role=Role.DESK_OFFICER,
        )

    mai = Citizen(base, fake)
    for update in (
        mai.chat.text("/start"),
        mai.chat.text("ho kinh doanh"),
        mai.chat.button("req:start"),
        mai.chat.button(f"agency:{agency}"),
        mai.chat.text("Nguyễn Thị Mai"),
        mai.chat.contact("+84912345678"),
    ):
        mai.send(update)
    mai.photo()
    mai.send(mai.chat.button("doc:done"))
    mai.photo()
    mai.send(mai.chat.button("doc:done"))
    mai.send(mai.chat.button("doc:skip"))
    mai.send(mai.chat.button("review:submit"))
    with Session(runtime.engine) as session:
        code = session.execute(select(Dossier.code)).scalar_one()  # type: ignore[call-overload]

    with chromium_page() as page:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{base}/admin")
        page.fill("#username", "lan.ttphcc")
        page.fill("#password", one_time)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/admin/password")
        page.fill("#current", one_time)
        page.fill("#new", NEW_PASSWORD)
        page.fill("#repeat", NEW_PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{base}/admin?done=password")

        page.click(f"text={code}")
        page.wait_for_selector("#code")
        assert page.locator(".thumbs img").count() == 2  # the two photos, shown to the desk
        first = procedure.components[0]
        page.click("summary:has-text('Yêu cầu bổ sung')")
        page.check(f"input[name=missing_{first.code}]")
        page.fill(f"input[name=reason_{first.code}]", "Ảnh bị mờ, chụp lại cả trang")
        page.click("form[data-action=request_supplement] button[type=submit]")
        page.wait_for_selector(".done")
        assert "Cần bổ sung" in page.inner_text("#status")

        # The notice reached Mai's chat with a button straight into the supplement step.
        deadline = time.time() + 10
        while time.time() < deadline and not any(
            "Ảnh bị mờ" in str(c.params.get("text")) for c in fake.delivered
        ):
            time.sleep(0.1)
        pushed = [c for c in fake.delivered if "Ảnh bị mờ" in str(c.params.get("text"))]
        assert (
            pushed
            and pushed[0].params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
            == "menu:supplement"
        )

        page.goto(f"{base}/admin?queue=new")
        assert code not in page.inner_text("#inbox")
        mai.send(mai.chat.button("menu:supplement"))
        mai.photo()
        mai.send(mai.chat.button("doc:done"))
        mai.send(mai.chat.button("sup:send"))
        page.wait_for_selector(f"#inbox >> text={code}", timeout=20_000)  # refreshed by itself

        page.click(f"#inbox >> text={code}")
        page.wait_for_selector("#code")
        assert page.locator(".thumbs img").count() == 3
        page.click("form[data-action=accept] button[type=submit]")
        page.wait_for_selector(".done")
        assert "Đã tiếp nhận" in page.inner_text("#status")
        with page.expect_popup() as popup:
            page.click("a:has-text('Mẫu số 01')")
        form = popup.value
        form.wait_for_selector("#form-code")
        assert form.inner_text("#form-code") == code
        assert "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ" in form.inner_text("h1")
        assert form.evaluate("document.getElementById('form-qr').naturalWidth") > 0

    with Session(runtime.engine) as session:
        notices = list(session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())  # type: ignore[arg-type]
    # The citizen is pushed each desk step; the desk was alerted when the supplement arrived.
    assert [(n.channel, n.recipient, n.template) for n in notices] == [
        ("telegram", "424242", "notice.supplement_requested"),
        ("panel", notices[1].recipient, "alert.resubmitted"),
        ("telegram", "424242", "notice.accepted"),
    ]

    stranger = browser_client(base, follow_redirects=False)
    login = stranger.get("/admin/login")
    token = login.text.split('name="csrf" value="')[1].split('"')[0]
    assert (
        stranger.post(
            "/admin/login",
            data={"csrf": token, "username": "binh.phuong2", "password": stranger_password},
        ).status_code
        == 303
    )
    # First sign-in: the password must change before anything else is shown.
    assert stranger.get(f"/admin/dossiers/{code}").headers["location"] == "/admin/password"
    form = stranger.get("/admin/password").text
    token = form.split('name="csrf" value="')[1].split('"')[0]
    stranger.post(
        "/admin/password",
        data={
            "csrf": token,
            "current": stranger_password,
            "new": NEW_PASSWORD,
            "repeat": NEW_PASSWORD,
        },
    )
    assert stranger.get("/admin").status_code == 200
    assert stranger.get(f"/admin/dossiers/{code}").status_code == 404


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_extension_into_another_year_asks_first(served: tuple[str, Runtime]) -> None:
    base, runtime = served
    monday = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    dossier_id, code = citizen_dossier(runtime.engine, runtime.catalog, runtime.calendar, at=monday)
    act(runtime.engine, runtime.catalog, runtime.calendar, dossier_id, Action.ACCEPT, monday)
    with session_scope(runtime.engine) as session:
        agency = session.get(Dossier, dossier_id).agency_code  # type: ignore[union-attr]
        _, one_time = create_staff(session, username="lan.ttphcc", full_name="Trần Thị Lan",
                                   agency_code=agency, role=Role.DESK_OFFICER)  # fmt: skip
    with chromium_page() as page:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{base}/admin")
        page.fill("#username", "lan.ttphcc")
        page.fill("#password", one_time)
        page.click("button[type=submit]")
        page.fill("#current", one_time)
        page.fill("#new", NEW_PASSWORD)
        page.fill("#repeat", NEW_PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{base}/admin?done=password")
        page.goto(f"{base}/admin/dossiers/{code}")
        page.click("details:has(form[data-action=extend]) summary")
        form = "form[data-action=extend]"
        page.fill(f"{form} input[name=new_date]", "2027-12-10")
        page.fill(f"{form} textarea[name=reason]", "Chờ xác minh")
        asked: list[str] = []

        def answer(dialog: Any, accept: bool) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        page.once("dialog", lambda dialog: answer(dialog, False))
        page.click(f"{form} button[type=submit]")
        assert asked and "2027" in asked[0]
        assert page.url == f"{base}/admin/dossiers/{code}"  # nothing was sent
        page.once("dialog", lambda dialog: answer(dialog, True))
        page.click(f"{form} button[type=submit]")
        page.wait_for_url(f"{base}/admin/dossiers/{code}?done=extend")
    with Session(runtime.engine) as session:
        dossier = session.get(Dossier, dossier_id)
        assert dossier is not None and str(dossier.appointment_date) == "2027-12-10"
