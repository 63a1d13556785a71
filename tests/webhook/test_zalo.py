"""The citizen on Zalo end to end: signed events into POST /webhook/zalo, the same dialogue as on
Telegram, replies out to a fake Zalo OpenAPI on 127.0.0.1, attachments from a fake media host."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlmodel import Session

from core.dossier import Action
from core.messages import render
from storage.db import session_scope
from storage.inbound import accept_event
from storage.models import Dossier, InboundEvent, OutboxMessage, ThreadMessage
from storage.zalo import save_tokens
from tests import images
from tests.dossiers import act
from tests.fakes.zalo import (
    ZALO_OA_ID,
    FakeZalo,
    FakeZaloMedia,
    ZaloEvents,
    zalo_settings,
)
from tests.servers import live_server, wait_until
from webhook.app import create_app
from webhook.runtime import Runtime
from webhook.settings import Settings

HOOK = "/webhook/zalo"


@dataclass
class Zalo:
    fake: FakeZalo
    media: FakeZaloMedia
    media_base: str
    client: TestClient
    events: ZaloEvents

    @property
    def runtime(self) -> Runtime:
        return self.client.app.state.runtime  # type: ignore[attr-defined,no-any-return]

    def post(self, event: dict[str, Any]) -> httpx.Response:
        return self.events.post(self.client, HOOK, event)  # type: ignore[arg-type]

    def say(self, event: dict[str, Any], expect: int = 1) -> list[dict[str, Any]]:
        """Post an event; the messages the OA sent the citizen because of it."""
        before = len(self.fake.messages)
        assert self.post(event).status_code == 200
        wait_until(lambda: len(self.fake.messages) >= before + expect, "no answer on Zalo")
        time.sleep(0.05)  # any further replies of the same turn
        return self.fake.messages[before:]

    def photo_url(self, name: str, content: bytes) -> str:
        self.media.files[name] = content
        return f"{self.media_base}/{name}"


def text_of(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["message"].get("text", "") for m in messages)


def payloads(messages: list[dict[str, Any]]) -> list[str]:
    found = []
    for m in messages:
        attachment = m["message"].get("attachment") or {}
        for button in (attachment.get("payload") or {}).get("buttons", []):
            found.append(button["payload"])
    return found


def count(runtime: Runtime, model: Any) -> int:
    with Session(runtime.engine) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


@pytest.fixture
def zalo(settings: Settings) -> Iterator[Zalo]:
    fake, media = FakeZalo(), FakeZaloMedia()
    with live_server(fake.app) as base, live_server(media.app) as media_base:
        configured = settings.model_copy(
            update={
                **zalo_settings(base),
                "zalo_media_hosts": "127.0.0.1",
                "dispatch_interval_seconds": 0.1,
                "outbox_lease_seconds": 1.0,
            }
        )
        app = create_app(configured)
        runtime: Runtime = app.state.runtime
        access, refresh = fake.issue_pair()
        with session_scope(runtime.engine) as session:
            now = datetime.now(UTC)
            save_tokens(session, oa_id=ZALO_OA_ID, access_token=access, refresh_token=refresh,
                        expires_at=now + timedelta(hours=25), now=now)  # fmt: skip
        with TestClient(app, base_url="https://testserver") as client:
            yield Zalo(fake, media, media_base, client, ZaloEvents())
        runtime.engine.dispose()


def to_documents(zalo: Zalo) -> None:
    """Follow, then choose a procedure and give a name and phone with Zalo's own buttons."""
    welcome = zalo.say(zalo.events.follow(), expect=2)
    assert "Xin chào" in text_of(welcome)
    assert "#hcc:menu:submit" in payloads(welcome)
    procedures = zalo.say(zalo.events.button("#hcc:menu:submit"))
    catalog = zalo.runtime.catalog
    procedure = catalog.procedure_by_slug("ho-kinh-doanh")
    assert f"#hcc:proc:{procedure.code}" in payloads(procedures)
    requirements = zalo.say(zalo.events.button(f"#hcc:proc:{procedure.code}"))
    assert "Giấy tờ cần chụp" in text_of(requirements)
    choose = zalo.say(zalo.events.button("#hcc:req:start"))
    agency = catalog.receiving_agencies(procedure)[0]
    if f"#hcc:agency:{agency.code}" in payloads(choose):
        zalo.say(zalo.events.button(f"#hcc:agency:{agency.code}"))
    ask_phone = zalo.say(zalo.events.text("Nguyễn Thị Mai"))
    kinds = [(m["message"].get("attachment") or {}).get("payload", {}).get("template_type")
             for m in ask_phone]  # fmt: skip
    assert "request_user_info" in kinds  # the phone step offers Zalo's share-info form
    first_paper = zalo.say(zalo.events.submit_info("Nguyễn Thị Mai", "84912345678"))
    assert "Giấy tờ 1/3" in text_of(first_paper)


def test_from_follow_to_a_dossier_with_code_and_qr_and_the_desk_push(zalo: Zalo) -> None:
    to_documents(zalo)
    urls = [zalo.photo_url(f"p{n}.jpg", images.good_jpeg(60 + n)) for n in range(2)]
    received = zalo.say(zalo.events.images(*urls))  # one event, two photos: one step
    assert "Đã nhận 2 ảnh" in text_of(received)
    zalo.say(zalo.events.button("#hcc:doc:done"))
    cccd = zalo.say(zalo.events.images(zalo.photo_url("cccd.jpg", images.good_jpeg(70))))
    assert "Đã nhận 1 ảnh" in text_of(cccd)
    zalo.say(zalo.events.button("#hcc:doc:done"))
    review = zalo.say(zalo.events.button("#hcc:doc:skip"))
    assert "Kiểm tra lại trước khi nộp" in text_of(review)

    submitted = zalo.say(zalo.events.button("#hcc:review:submit"), expect=3)
    with Session(zalo.runtime.engine) as session:
        dossier = session.execute(select(Dossier)).scalar_one()
    assert dossier.code in text_of(submitted) and dossier.channel == "zalo"
    media = [m for m in submitted if (m["message"].get("attachment") or {}).get("payload", {})
             .get("template_type") == "media"]  # fmt: skip
    attachment_id = media[0]["message"]["attachment"]["payload"]["elements"][0]["attachment_id"]
    qr = Image.open(io.BytesIO(zalo.fake.images[attachment_id]))
    assert [r.text for r in zxingcpp.read_barcodes(qr)] == [
        f"https://hcc.example.vn/lookup/{dossier.code}"
    ]
    assert {m["recipient"]["user_id"] for m in submitted} == {zalo.events.user_id}

    before = len(zalo.fake.messages)
    runtime = zalo.runtime
    from tests.webhook.test_admin import signed_in

    # the desk, in the panel
    browser = TestClient(zalo.client.app, base_url="https://testserver", follow_redirects=False)
    desk = signed_in(browser, runtime, "lan.ttphcc", dossier.agency_code)
    desk.get(f"/admin/dossiers/{dossier.code}")
    accepted = desk.post(f"/admin/dossiers/{dossier.code}/act", {"action": "accept"})
    assert accepted.status_code == 303  # type: ignore[attr-defined]
    wait_until(lambda: len(zalo.fake.messages) > before, "the desk's acceptance was not pushed")
    pushed = zalo.fake.messages[before:]
    assert dossier.code in text_of(pushed) and "tiếp nhận" in text_of(pushed).lower()

    def row() -> OutboxMessage:
        with Session(runtime.engine) as session:
            return session.execute(select(OutboxMessage)).scalars().one()

    wait_until(lambda: row().state == "sent", "the push was not recorded as sent")  # after the
    assert row().channel == "zalo"  # answer reached the fake, the mark follows


def test_lookup_by_typing_a_code_and_by_a_receipt_qr_photo(zalo: Zalo) -> None:
    from tests.webhook.conftest import submitted_code

    code = submitted_code(zalo.runtime, "ho-kinh-doanh")
    assert code in text_of(zalo.say(zalo.events.text(code.lower())))
    qr = images.qr_photo(f"https://hcc.example.vn/lookup/{code}")
    assert code in text_of(zalo.say(zalo.events.images(zalo.photo_url("receipt.jpg", qr)), 2))


@pytest.mark.parametrize("spoil", ["forged", "other_app", "stale"])
def test_a_forged_foreign_or_stale_event_is_refused_and_nothing_is_kept(
    zalo: Zalo, spoil: str
) -> None:
    if spoil == "forged":
        events = ZaloEvents(secret="not-the-secret")
    elif spoil == "other_app":
        events = ZaloEvents(app_id="1111111111111111111")
    else:
        events = ZaloEvents(clock=lambda: time.time() - 3600)
    response = events.post(zalo.client, HOOK, events.text("menu"))  # type: ignore[arg-type]
    assert response.status_code == 401
    assert count(zalo.runtime, InboundEvent) == 0
    time.sleep(0.3)
    assert zalo.fake.messages == []


def test_the_same_event_twice_is_handled_once(zalo: Zalo) -> None:
    event = zalo.events.text("menu")
    menu = zalo.say(event)  # six choices, one message: four and "more"
    assert zalo.post(event).status_code == 200  # Zalo's retry
    time.sleep(0.5)
    assert zalo.fake.messages == menu


def test_an_attachment_on_a_foreign_host_is_not_fetched(zalo: Zalo) -> None:
    to_documents(zalo)
    foreign = zalo.photo_url("x.jpg", images.good_jpeg(1)).replace("127.0.0.1", "localhost")
    answer = zalo.say(zalo.events.images(foreign))
    assert render("chat.file_not_downloaded", "vi") in text_of(answer)
    assert zalo.media.requests == []  # no request reached the other host


def test_an_oversized_or_non_image_attachment_gets_the_clear_message(zalo: Zalo) -> None:
    to_documents(zalo)
    big = zalo.photo_url("big.jpg", b"\xff\xd8" + b"0" * (21 * 1024 * 1024))
    assert render("chat.file_too_large_zalo", "vi") in text_of(zalo.say(zalo.events.images(big)))
    text = zalo.photo_url("notes.txt", b"just some text, not a photo")
    refused = text_of(zalo.say(zalo.events.file(text, "notes.pdf", 27)))
    reason = render("document.not_a_document", "vi")  # the document checks' own answer
    assert render("chat.file_refused", "vi", number=1, reason=reason) in refused
    still = text_of(zalo.say(zalo.events.button("#hcc:doc:done")))
    procedure = zalo.runtime.catalog.procedure_by_slug("ho-kinh-doanh")
    first = procedure.components[0]
    assert render("chat.need_more", "vi", n=first.min_files, name=first.name.vi) in still


def test_an_answer_from_the_oa_manager_lands_in_the_dossier_thread(zalo: Zalo) -> None:
    from tests.dossiers import citizen_dossier

    runtime = zalo.runtime
    citizen_dossier(runtime.engine, runtime.catalog, runtime.calendar, channel="zalo",
                    external_id=zalo.events.user_id, at=datetime.now(UTC))  # fmt: skip
    assert zalo.post(zalo.events.oa_text("Our own echo")).status_code == 200  # ignored
    answer = zalo.events.oa_text("Chị mang bản chính nhé", admin_id="99")
    assert zalo.post(answer).status_code == 200
    wait_until(lambda: count(runtime, ThreadMessage) == 1, "the OA manager's reply was not kept")
    with Session(runtime.engine) as session:
        message = session.execute(select(ThreadMessage)).scalar_one()
    assert (message.direction, message.text) == ("oa", "Chị mang bản chính nhé")


def test_an_event_kept_by_a_process_that_died_is_handled_by_the_dispatcher(zalo: Zalo) -> None:
    """The web process kept the event and answered Zalo, then died before the turn: the
    dispatcher (here, the same app's) finds it once its lease is over and answers once."""
    runtime = zalo.runtime
    event = zalo.events.text("menu")
    from bots.zalo import translate

    delivery = translate(event).delivery_id
    with session_scope(runtime.engine) as session:
        assert accept_event(session, "zalo", delivery, event, datetime.now(UTC))
    wait_until(lambda: len(zalo.fake.messages) == 1, "the kept event was not handled")
    assert "Bạn muốn làm gì" in text_of(zalo.fake.messages)
    assert zalo.post(event).status_code == 200  # Zalo's retry of it: dropped
    time.sleep(0.5)
    assert len(zalo.fake.messages) == 1


def test_replies_zalo_refused_for_a_while_are_sent_later_once(zalo: Zalo) -> None:
    """Zalo rate-limits the turn's first reply (-32): what the turn owes stays owed, and the
    dispatcher sends it after the lease — each reply once, in order."""
    zalo.fake.queue_errors("/v3.0/oa/message/cs", -32)
    assert zalo.post(zalo.events.follow()).status_code == 200
    wait_until(lambda: len(zalo.fake.messages) == 2, "the owed replies were not sent later")
    time.sleep(1.5)
    welcome, menu = zalo.fake.messages
    assert welcome["message"]["text"].startswith("Xin chào")  # in order: the welcome, the menu
    assert menu["message"]["text"] == "Bạn muốn làm gì?"


def test_unfollow_marks_the_citizen_unreachable_and_follow_brings_them_back(zalo: Zalo) -> None:
    from storage.models import ChannelIdentity

    def unreachable() -> datetime | None:
        with Session(zalo.runtime.engine) as session:
            identity = session.execute(select(ChannelIdentity)).scalar_one()
            return identity.unreachable_at

    zalo.say(zalo.events.follow(), expect=2)
    assert unreachable() is None
    assert zalo.post(zalo.events.unfollow()).status_code == 200
    assert unreachable() is not None  # pushes go by template message or SMS now
    assert "Xin chào" in text_of(zalo.say(zalo.events.follow(), expect=2))
    assert unreachable() is None


def test_a_receipt_marks_the_pushed_message(zalo: Zalo) -> None:
    from tests.dossiers import citizen_dossier

    runtime = zalo.runtime
    dossier_id, _ = citizen_dossier(runtime.engine, runtime.catalog, runtime.calendar,
                                    channel="zalo", external_id=zalo.events.user_id,
                                    at=datetime.now(UTC))  # fmt: skip
    zalo.say(zalo.events.text("menu"))  # wrote today: inside the 7-day window
    act(runtime.engine, runtime.catalog, runtime.calendar, dossier_id, Action.ACCEPT,
        datetime.now(UTC))  # fmt: skip
    zalo.client.app.state.delivery.dispatcher.wake.set()  # type: ignore[attr-defined]

    def sent() -> OutboxMessage | None:
        with Session(runtime.engine) as session:
            rows = session.execute(select(OutboxMessage)).scalars().all()
            return next((r for r in rows if r.state == "sent"), None)

    wait_until(lambda: sent() is not None, "the push was not sent")
    row = sent()
    assert row is not None and row.sent_ref and row.receipt_at is None
    assert zalo.post(zalo.events.received(msg_id=row.sent_ref)).status_code == 200
    row = sent()
    assert row is not None and row.receipt_at is not None


@pytest.mark.parametrize("days_silent", [0, 8])
def test_a_desk_reply_goes_on_zalo_inside_the_window_and_the_panel_says_how(
    zalo: Zalo, days_silent: int
) -> None:
    """Inside the 7-day window the officer's reply goes by Zalo; after it, by the fallback
    (no template configured, no SMS gateway here: not delivered) — and the thread says which."""
    from storage.models import ChannelIdentity
    from tests.dossiers import citizen_dossier
    from tests.webhook.test_admin import signed_in

    runtime = zalo.runtime
    _, code = citizen_dossier(runtime.engine, runtime.catalog, runtime.calendar, channel="zalo",
                              external_id=zalo.events.user_id, at=datetime.now(UTC))  # fmt: skip
    with session_scope(runtime.engine) as session:
        identity = session.execute(select(ChannelIdentity)).scalar_one()
        identity.last_seen_at = datetime.now(UTC) - timedelta(days=days_silent)
        session.add(identity)
        agency = session.execute(select(Dossier.agency_code)).scalar_one()  # type: ignore[call-overload]
    browser = TestClient(zalo.client.app, base_url="https://testserver", follow_redirects=False)
    desk = signed_in(browser, runtime, "lan.ttphcc", agency)
    desk.get(f"/admin/dossiers/{code}")
    sent = desk.post(f"/admin/dossiers/{code}/reply", {"text": "Chị mang bản chính nhé"})
    assert sent.status_code == 303  # type: ignore[attr-defined]
    zalo.client.app.state.delivery.dispatcher.wake.set()  # type: ignore[attr-defined]
    if days_silent == 0:
        wait_until(lambda: "Chị mang bản chính nhé" in text_of(zalo.fake.messages), "not on Zalo")
        shown = render("admin.dossier.delivered_by", "vi", channel="Zalo", state="đã gửi")
    else:
        shown = render("admin.dossier.delivered_by", "vi", channel="SMS", state="không gửi được")
    page = lambda: str(desk.get(f"/admin/dossiers/{code}").text)  # type: ignore[attr-defined]  # noqa: E731
    wait_until(lambda: shown in page(), f"the panel does not say {shown}")
    if days_silent:
        assert zalo.fake.messages == []  # nothing tried on Zalo outside the window


def buttons_of(message: dict[str, Any]) -> list[tuple[str, str]]:
    attachment = message["message"].get("attachment") or {}
    buttons = (attachment.get("payload") or {}).get("buttons", [])
    return [(b["title"], b["payload"]) for b in buttons]


def test_the_menu_is_one_message_and_more_brings_the_rest(zalo: Zalo) -> None:
    """Six choices: one /message/cs request with four and "Xem thêm"; pressing it brings the
    other two, in one request; a choice from that page works."""
    (menu,) = zalo.say(zalo.events.text("menu"))
    first = buttons_of(menu)
    assert [payload for _, payload in first[:4]] == [
        "#hcc:menu:submit", "#hcc:menu:lookup", "#hcc:menu:mine", "#hcc:menu:supplement"
    ]
    more_title, more = first[4]
    assert more_title == "➕ Xem thêm (2/2)" and more.startswith("#hcc:zalo:page:4:")
    (rest,) = zalo.say(zalo.events.button(more))
    assert rest["message"]["text"] == "Lựa chọn khác (2/2):"
    assert [payload for _, payload in buttons_of(rest)] == ["#hcc:menu:feedback",
                                                            "#hcc:menu:language"]  # fmt: skip
    (feedback,) = zalo.say(zalo.events.button("#hcc:menu:feedback"))
    assert "Hãy viết phản ánh, kiến nghị" in feedback["message"]["text"]
    time.sleep(0.3)
    assert len(zalo.fake.messages) == 3  # one request a reply


def test_more_pressed_after_the_step_moved_on_asks_the_step_again(zalo: Zalo) -> None:
    (menu,) = zalo.say(zalo.events.text("menu"))
    _, more = buttons_of(menu)[4]
    zalo.say(zalo.events.button("#hcc:menu:lookup"))
    (again,) = zalo.say(zalo.events.button(more))  # an old menu's "more": the lookup's question
    assert "Gửi mã số hồ sơ" in again["message"]["text"]


def to_agency_step(zalo: Zalo) -> list[dict[str, Any]]:
    zalo.say(zalo.events.follow(), expect=2)
    birth = zalo.runtime.catalog.procedure_by_slug("khai-sinh")
    zalo.say(zalo.events.button("#hcc:menu:submit"))
    zalo.say(zalo.events.button(f"#hcc:proc:{birth.code}"))
    return zalo.say(zalo.events.button("#hcc:req:start"))


def test_a_shared_location_lists_the_centres_nearest_first(zalo: Zalo) -> None:
    (question,) = to_agency_step(zalo)
    assert "hoặc gửi vị trí của bạn" in question["message"]["text"]
    # Tòa Thánh Cao Đài: Tân Ninh 3.51 km, Hòa Hội 18.75 km, Long An 90.13 km (tests/core/
    # test_dialogue.py shows the hand check); Zalo sends the numbers as strings.
    (near,) = zalo.say(zalo.events.location(11.2965, 106.1277, "Tòa Thánh Cao Đài"))
    assert near["recipient"]["user_id"] == zalo.events.user_id
    assert near["message"]["text"].splitlines()[1:4] == [
        "1. Trung tâm Phục vụ hành chính công phường Tân Ninh — ~3,5 km",
        "2. Trung tâm Phục vụ hành chính công xã Hòa Hội — ~19 km",
        "3. Trung tâm Phục vụ hành chính công phường Long An — ~90 km",
    ]
    assert [payload for _, payload in buttons_of(near)] == [
        "#hcc:agency:000.20.01.H53", "#hcc:agency:000.20.03.H53", "#hcc:agency:000.20.02.H53",
        "#hcc:nav:back",
    ]  # fmt: skip
    name = zalo.say(zalo.events.button("#hcc:agency:000.20.03.H53"))
    assert "Họ và tên người nộp" in text_of(name)
    stray = zalo.say(zalo.events.location(11.2965, 106.1277, as_numbers=True), expect=2)
    assert text_of(stray).startswith("Vị trí chỉ dùng khi chọn nơi nộp hồ sơ")
    assert "Họ và tên người nộp" in text_of(stray)  # the step's question again
