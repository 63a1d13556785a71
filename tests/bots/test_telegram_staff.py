"""The staff bot end to end: updates into POST /webhook/telegram/staff, alerts and answers out to
the fake Bot API on 127.0.0.1 (one server, two bots: citizen and staff), real dossiers and
accounts in the database, the outbox delivered by the embedded dispatcher."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlmodel import Session, col

from bots.channels import make_senders
from bots.delivery import MemoryThrottle, deliver
from core.dossier import Action
from core.messages import render
from core.staff import Role
from storage.db import session_scope
from storage.models import Dossier, OutboxMessage, StatusEvent, ThreadMessage
from storage.reminders import queue_reminders
from storage.staff import create_staff
from storage.staff_bot import new_link_token
from tests.dossiers import MONDAY, act, citizen_dossier
from tests.fakes.telegram import (
    STAFF_SECRET,
    STAFF_TOKEN,
    TELEGRAM_SECRET,
    TELEGRAM_TOKEN,
    Call,
    FakeTelegram,
    Updates,
)
from tests.servers import free_port, live_server, wait_until
from webhook.app import create_app
from webhook.runtime import Runtime
from webhook.settings import Settings

PATH = "/webhook/telegram/staff"
CITIZEN_CHAT = "555"


@pytest.fixture
def fake() -> Iterator[tuple[FakeTelegram, str]]:
    telegram = FakeTelegram(TELEGRAM_TOKEN, also=(STAFF_TOKEN,))
    with live_server(telegram.app) as base:
        yield telegram, base


@pytest.fixture
def client(settings: Settings, fake: tuple[FakeTelegram, str]) -> Iterator[TestClient]:
    changed = settings.model_copy(
        update={
            "telegram_citizen_token": SecretStr(TELEGRAM_TOKEN),
            "telegram_webhook_secret": SecretStr(TELEGRAM_SECRET),
            "telegram_staff_token": SecretStr(STAFF_TOKEN),
            "telegram_staff_webhook_secret": SecretStr(STAFF_SECRET),
            "telegram_api_base": fake[1],
            "telegram_per_chat_interval": 0.0,
        }
    )
    app = create_app(changed)
    with TestClient(app, base_url="https://testserver") as test_client:
        yield test_client
    app.state.runtime.engine.dispose()


def runtime_of(client: TestClient) -> Runtime:
    return client.app.state.runtime  # type: ignore[attr-defined,no-any-return]


def agencies(runtime: Runtime) -> tuple[str, str]:
    catalog = runtime.catalog
    desks = catalog.receiving_agencies(catalog.procedure_by_slug("ho-kinh-doanh"))
    return desks[0].code, desks[1].code


def account(runtime: Runtime, username: str, agency: str) -> int:
    with session_scope(runtime.engine) as session:
        user, _ = create_staff(session, username=username, full_name=username.title(),
                               agency_code=agency, role=Role.DESK_OFFICER)  # fmt: skip
        assert user.id is not None
        return user.id


def link_token(runtime: Runtime, user_id: int, at: datetime | None = None) -> str:
    with session_scope(runtime.engine) as session:
        return new_link_token(session, user_id, at or datetime.now(UTC))


def post(client: TestClient, update: dict[str, Any], secret: str = STAFF_SECRET) -> int:
    return client.post(
        PATH, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}
    ).status_code


def staff_texts(fake: FakeTelegram, chat: int) -> list[str]:
    return [
        str(c.params.get("text")) for c in fake.by(STAFF_TOKEN) if int(c.params["chat_id"]) == chat
    ]


def linked_officer(client: TestClient, fake: FakeTelegram, username: str, agency: str,
                   chat: int) -> Updates:  # fmt: skip
    """An officer's account, bound to their Telegram chat through a one-time link."""
    runtime = runtime_of(client)
    updates = Updates(chat_id=chat, first_update_id=chat * 10)
    token = link_token(runtime, account(runtime, username, agency))
    assert post(client, updates.text(f"/start {token}")) == 200
    assert "Đã kết nối" in staff_texts(fake, chat)[-1]
    return updates


def alerts_to(fake: FakeTelegram, chat: int) -> list[Call]:
    calls = [c for c in fake.by(STAFF_TOKEN) if int(c.params["chat_id"]) == chat]
    return [c for c in calls if "Hồ sơ mới" in str(c.params["text"])]


def alert_to(fake: FakeTelegram, chat: int) -> Call:
    wait_until(lambda: bool(alerts_to(fake, chat)), f"no alert to {chat}")
    return alerts_to(fake, chat)[0]


def to_citizen(fake: FakeTelegram, chat: str = CITIZEN_CHAT) -> list[str]:
    """What the citizen bot sent to the dossier's citizen."""
    return [str(c.params.get("text")) for c in fake.by(TELEGRAM_TOKEN)
            if int(c.params["chat_id"]) == int(chat)]  # fmt: skip


def button_data(call: Call, label: str) -> str:
    markup = call.params["reply_markup"]
    for row in markup["inline_keyboard"]:
        for button in row:
            if button["text"] == label:
                return str(button["callback_data"])
    raise AssertionError(f"no button {label!r} in {markup}")


def new_dossier(runtime: Runtime, chat: str = CITIZEN_CHAT) -> tuple[int, str]:
    return citizen_dossier(runtime.engine, runtime.catalog, runtime.calendar,
                           external_id=chat, at=datetime.now(UTC))  # fmt: skip


def status_code(runtime: Runtime, dossier_id: int) -> str:
    with Session(runtime.engine) as session:
        dossier = session.get(Dossier, dossier_id)
        assert dossier is not None
        return dossier.code


def status_of(runtime: Runtime, dossier_id: int) -> str:
    with Session(runtime.engine) as session:
        dossier = session.get(Dossier, dossier_id)
        assert dossier is not None
        return dossier.status


def test_an_officer_links_is_alerted_and_accepts_from_the_bot(
    client: TestClient, fake: tuple[FakeTelegram, str]
) -> None:
    telegram, runtime = fake[0], runtime_of(client)
    ours, theirs = agencies(runtime)
    lan = linked_officer(client, telegram, "lan.ttphcc", ours, 7001)
    binh = linked_officer(client, telegram, "binh.other", theirs, 7002)

    dossier_id, code = new_dossier(runtime)
    alert = alert_to(telegram, 7001)
    assert code in alert.params["text"]
    open_button = alert.params["reply_markup"]["inline_keyboard"][0][0]
    assert open_button["url"] == f"https://hcc.example.vn/admin/dossiers/{code}"
    accept = button_data(alert, "Tiếp nhận")
    assert not any(code in t for t in staff_texts(telegram, 7002))  # another agency: no alert

    # Another agency's officer pressing the button (its key is not theirs) changes nothing.
    assert post(client, binh.button(accept)) == 200
    assert staff_texts(telegram, 7002)[-1] == render("staffbot.stale")
    assert status_of(runtime, dossier_id) == "submitted"

    # The officer presses Tiếp nhận: the calendar's date to confirm, nothing changed yet.
    assert post(client, lan.button(accept)) == 200
    confirm_call = telegram.by(STAFF_TOKEN)[-1]
    assert "Ngày hẹn trả kết quả sẽ là" in confirm_call.params["text"]
    assert status_of(runtime, dossier_id) == "submitted"
    assert post(client, lan.button(button_data(confirm_call, "Xác nhận"))) == 200
    assert "Đã tiếp nhận hồ sơ" in staff_texts(telegram, 7001)[-1]
    assert status_of(runtime, dossier_id) == "accepted"

    with Session(runtime.engine) as session:
        dossier = session.get(Dossier, dossier_id)
        assert dossier is not None and dossier.appointment_date is not None
        shown = dossier.appointment_date.strftime("%d/%m/%Y")
        notice = session.execute(
            select(OutboxMessage).where(col(OutboxMessage.dossier_id) == dossier_id,
                                        col(OutboxMessage.template) == "notice.accepted")
        ).scalar_one()  # fmt: skip
        event = session.execute(
            select(StatusEvent).where(col(StatusEvent.dossier_id) == dossier_id,
                                      col(StatusEvent.action) == "accept")
        ).scalar_one()  # fmt: skip
    assert confirm_call.params["text"].endswith(f"{shown}.")
    assert (notice.channel, notice.recipient) == ("telegram", CITIZEN_CHAT)
    assert event.staff_user_id is not None  # the audit trail names the officer
    wait_until(lambda: bool(to_citizen(telegram)), "the citizen was not told")
    assert shown in to_citizen(telegram)[-1]

    # The same button again: stale, says so, changes nothing.
    assert post(client, lan.button(accept)) == 200
    stale = staff_texts(telegram, 7001)[-1]
    assert "Ngày hẹn" not in stale and "tiếp nhận" in stale.lower()  # the state machine's refusal
    # By now the outbox has sent everything queued before the citizen's notice: still nothing
    # went to the other agency's officer.
    assert alerts_to(telegram, 7002) == []
    assert status_of(runtime, dossier_id) == "accepted"


def test_replying_to_an_alert_reaches_the_citizen_and_the_panel_thread(
    client: TestClient, fake: tuple[FakeTelegram, str]
) -> None:
    telegram, runtime = fake[0], runtime_of(client)
    lan = linked_officer(client, telegram, "lan.ttphcc", agencies(runtime)[0], 7001)
    dossier_id, _ = new_dossier(runtime)
    alert_to(telegram, 7001)
    with Session(runtime.engine) as session:
        wait_until(lambda: session.execute(select(col(OutboxMessage.sent_ref)).where(
            col(OutboxMessage.channel) == "staff")).scalar_one_or_none() is not None,
            "alert not recorded as sent")  # fmt: skip
        sent_ref = session.execute(select(col(OutboxMessage.sent_ref)).where(
            col(OutboxMessage.channel) == "staff")).scalar_one()  # fmt: skip
    assert (
        post(client, lan.text("Ảnh CCCD bị mờ, chị gửi lại giúp em.", reply_to=int(sent_ref)))
        == 200
    )
    with Session(runtime.engine) as session:
        thread = session.execute(
            select(ThreadMessage).where(col(ThreadMessage.dossier_id) == dossier_id)
        ).scalar_one()
    assert thread.text == "Ảnh CCCD bị mờ, chị gửi lại giúp em." and thread.staff_user_id
    wait_until(lambda: any("Ảnh CCCD bị mờ" in text for text in to_citizen(telegram)),
               "the reply did not reach the citizen")  # fmt: skip

    # The citizen answers in the thread (the notice's "answer the desk" button): the officer's
    # phone hears of it, and replying to that alert answers in the same thread.
    citizen = Updates(chat_id=int(CITIZEN_CHAT), first_update_id=60000)
    code = status_code(runtime, dossier_id)
    for update in (citizen.button(f"reply:{code}"), citizen.text("Dạ em gửi lại ngay ạ")):
        assert telegram.deliver(client, "/webhook/telegram/citizen", update).status_code == 200
    wait_until(lambda: any("Dạ em gửi lại ngay ạ" in t for t in staff_texts(telegram, 7001)),
               "the citizen's message did not reach the officer")  # fmt: skip


def test_links_are_single_use_and_expire(
    client: TestClient, fake: tuple[FakeTelegram, str]
) -> None:
    telegram, runtime = fake[0], runtime_of(client)
    user_id = account(runtime, "lan.ttphcc", agencies(runtime)[0])
    token = link_token(runtime, user_id)
    first, second = Updates(chat_id=7001), Updates(chat_id=7003, first_update_id=9000)
    assert post(client, first.text(f"/start {token}")) == 200
    assert post(client, second.text(f"/start {token}")) == 200  # reused
    assert staff_texts(telegram, 7003) == [render("staffbot.link_invalid")]
    old = link_token(runtime, user_id, datetime.now(UTC) - timedelta(minutes=11))
    assert post(client, second.text(f"/start {old}")) == 200  # expired
    assert staff_texts(telegram, 7003)[-1] == render("staffbot.link_invalid")
    assert post(client, second.text("/hangdoi")) == 200  # still not linked
    assert staff_texts(telegram, 7003)[-1] == render("staffbot.not_linked")


def test_an_unlinked_user_gets_one_line_and_a_forged_secret_401(
    client: TestClient, fake: tuple[FakeTelegram, str]
) -> None:
    telegram, runtime = fake[0], runtime_of(client)
    stranger = Updates(chat_id=8001)
    for update in (stranger.text("/hangdoi"), stranger.text("xin chào"), stranger.button("abc")):
        assert post(client, update) == 200
    assert staff_texts(telegram, 8001) == [render("staffbot.not_linked")] * 3
    before = len(telegram.calls)
    assert post(client, stranger.text("/hangdoi"), secret="forged") == 401
    assert len(telegram.calls) == before
    new_dossier(runtime)  # nobody linked: no alert is even queued
    with Session(runtime.engine) as session:
        staff_rows = session.execute(
            select(OutboxMessage).where(col(OutboxMessage.channel) == "staff")
        ).all()
    assert staff_rows == []


def test_the_panel_gives_the_link_and_unlinks(
    client: TestClient, fake: tuple[FakeTelegram, str]
) -> None:
    from tests.webhook.test_admin import signed_in

    telegram, runtime = fake[0], runtime_of(client)
    browser = TestClient(client.app, base_url="https://testserver", follow_redirects=False)
    desk = signed_in(browser, runtime, "lan.ttphcc", agencies(runtime)[0])
    page = desk.get("/admin/telegram")
    assert page.status_code == 200 and "chưa kết nối" in page.text  # type: ignore[attr-defined]
    shown = desk.post("/admin/telegram/link")
    found = re.search(r"https://t\.me/hcc_staff_bot\?start=([\w-]+)", shown.text)  # type: ignore[attr-defined]
    assert found is not None
    lan = Updates(chat_id=7001)
    assert post(client, lan.text(f"/start {found.group(1)}")) == 200
    assert "Đã kết nối với tài khoản lan.ttphcc" in staff_texts(telegram, 7001)[-1]
    assert "đã kết nối với bot" in desk.get("/admin/telegram").text  # type: ignore[attr-defined]
    desk.get("/admin/telegram")
    assert desk.post("/admin/telegram/unlink").status_code == 303  # type: ignore[attr-defined]
    assert post(client, lan.text("/hangdoi")) == 200
    assert staff_texts(telegram, 7001)[-1] == render("staffbot.not_linked")


def test_a_supplement_and_a_refusal_from_the_bot_reach_the_citizen(
    client: TestClient, fake: tuple[FakeTelegram, str]
) -> None:
    telegram, runtime = fake[0], runtime_of(client)
    lan = linked_officer(client, telegram, "lan.ttphcc", agencies(runtime)[0], 7001)
    first_id, first_code = new_dossier(runtime)
    alert = alert_to(telegram, 7001)
    assert post(client, lan.button(button_data(alert, "Yêu cầu bổ sung"))) == 200
    picker = telegram.by(STAFF_TOKEN)[-1]
    papers = runtime.catalog.procedure_by_slug("ho-kinh-doanh").components
    component = papers[0].name.vi
    first, second = button_data(picker, component), button_data(picker, papers[1].name.vi)
    done = button_data(picker, "Xong")
    assert post(client, lan.button(done)) == 200  # nothing chosen yet
    assert staff_texts(telegram, 7001)[-1] == render("staffbot.pick_one")
    for key in (first, second, second):  # the second chosen, then unchosen
        assert post(client, lan.button(key)) == 200
    edited = telegram.by(STAFF_TOKEN, "editMessageReplyMarkup")[-1]
    labels = [row[0]["text"] for row in edited.params["reply_markup"]["inline_keyboard"]]
    assert labels[:2] == [f"✓ {component}", papers[1].name.vi]
    assert post(client, lan.button(done)) == 200
    assert post(client, lan.text("ảnh chụp bị mờ, chụp lại rõ nét")) == 200
    confirm = telegram.by(STAFF_TOKEN)[-1]
    assert "1 thành phần" in confirm.params["text"] and status_of(runtime, first_id) == "submitted"
    assert post(client, lan.button(button_data(confirm, "Xác nhận"))) == 200
    assert first_code in staff_texts(telegram, 7001)[-1]
    assert status_of(runtime, first_id) == "supplement_requested"
    wait_until(lambda: any("ảnh chụp bị mờ" in t for t in to_citizen(telegram)), "no form 02")
    notice = next(t for t in to_citizen(telegram) if "ảnh chụp bị mờ" in t)
    assert component in notice  # form 02's content: the paper and why

    second_id, _ = new_dossier(runtime, "556")
    wait_until(lambda: len(alerts_to(telegram, 7001)) == 2, "no second alert")
    assert post(client, lan.button(button_data(alerts_to(telegram, 7001)[1], "Từ chối"))) == 200
    assert post(client, lan.text("Không thuộc thẩm quyền của đơn vị")) == 200
    assert status_of(runtime, second_id) == "refused"
    wait_until(lambda: any("Không thuộc thẩm quyền" in t for t in to_citizen(telegram, "556")),
               "the refusal did not reach the citizen")  # fmt: skip


def test_staff_reminders_also_reach_the_linked_officers(
    client: TestClient, fake: tuple[FakeTelegram, str]
) -> None:
    telegram, runtime = fake[0], runtime_of(client)
    ours, theirs = agencies(runtime)
    linked_officer(client, telegram, "lan.ttphcc", ours, 7001)
    linked_officer(client, telegram, "binh.other", theirs, 7002)
    dossier_id, code = citizen_dossier(runtime.engine, runtime.catalog, runtime.calendar,
                                       external_id=CITIZEN_CHAT)  # fmt: skip
    for step in (Action.ACCEPT, Action.FORWARD):  # forwarded in time: only the deadline reminds
        act(runtime.engine, runtime.catalog, runtime.calendar, dossier_id, step, MONDAY)
    wednesday = datetime(2026, 12, 9, 1, 0, tzinfo=UTC)  # 08:00: the last day to extend
    with session_scope(runtime.engine) as session:
        assert queue_reminders(session, runtime.catalog, runtime.calendar, wednesday,
                               runtime.flow_rules) == 1  # fmt: skip
    with Session(runtime.engine) as session:
        rows = session.execute(
            select(OutboxMessage).where(col(OutboxMessage.template) == "remind.due_soon")
        ).scalars().all()  # fmt: skip
    assert sorted(r.channel for r in rows) == ["panel", "staff"]  # not to the other agency
    [to_phone] = [r for r in rows if r.channel == "staff"]
    assert to_phone.recipient == "7001" and to_phone.id is not None
    senders = make_senders(runtime, MemoryThrottle())  # the outbox's one sending path, on Wednesday
    outcome = deliver(
        runtime.engine, senders, to_phone.id, lease=timedelta(seconds=30), now=wednesday
    )
    assert outcome.state == "sent"
    reminder = staff_texts(telegram, 7001)[-1]
    assert code in reminder and "10/12/2026" in reminder and "Sắp đến hạn" in reminder


def test_a_bot_api_down_at_start_up_does_not_stop_the_app(settings: Settings) -> None:
    """The web process starts; the staff webhook answers 503 (Telegram sends the update again)
    until the Bot API answers."""
    down = settings.model_copy(update={
        "telegram_staff_token": SecretStr(STAFF_TOKEN),
        "telegram_staff_webhook_secret": SecretStr(STAFF_SECRET),
        "telegram_api_base": f"http://127.0.0.1:{free_port()}",
    })  # fmt: skip
    app = create_app(down)
    with TestClient(app, base_url="https://testserver") as test_client:
        assert test_client.get("/healthz").status_code == 200
        assert post(test_client, Updates(chat_id=7001).text("/help")) == 503
    app.state.runtime.engine.dispose()
