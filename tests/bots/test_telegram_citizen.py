"""The citizen bot end to end: Telegram updates into POST /webhook/telegram/citizen, replies out
to a fake Bot API server on 127.0.0.1, a real dossier in the database."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlmodel import Session

from core.documents import MAX_BYTES
from core.messages import render
from storage.models import ChannelIdentity, DocumentFile, Dossier, InboundEvent
from tests import images
from tests.fakes.telegram import TELEGRAM_SECRET, TELEGRAM_TOKEN, FakeTelegram, Updates
from webhook.app import create_app
from webhook.settings import Settings

TOKEN, SECRET = TELEGRAM_TOKEN, TELEGRAM_SECRET


@contextmanager
def bot_app(settings: Settings, fake: FakeTelegram, **changes: Any) -> Iterator[TestClient]:
    """The app with the citizen bot against `fake`, `settings` changed as given."""
    app = create_app(settings.model_copy(update=changes))
    app.state.fake_telegram = fake  # for `post`: Telegram runs the webhook's answer
    with TestClient(app, base_url="https://testserver") as test_client:
        yield test_client
    app.state.runtime.engine.dispose()


@pytest.fixture
def client(telegram_settings: Settings, telegram: tuple[FakeTelegram, str]) -> Iterator[TestClient]:
    with bot_app(telegram_settings, telegram[0]) as test_client:
        yield test_client


def post(client: TestClient, update: dict[str, Any], secret: str = SECRET) -> int:
    """Deliver an update as Telegram does (the method in the webhook's answer runs too)."""
    fake: FakeTelegram = client.app.state.fake_telegram  # type: ignore[attr-defined]
    return fake.deliver(client, "/webhook/telegram/citizen", update, secret).status_code


def last_text(fake: FakeTelegram) -> str:
    sent = [c for c in fake.calls if c.method in ("sendMessage", "sendPhoto")]
    call = sent[-1]
    return str(call.params.get("text") or call.params.get("caption"))


def count(client: TestClient, model: Any) -> int:
    with Session(client.app.state.runtime.engine) as session:  # type: ignore[attr-defined]
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def test_from_hello_to_a_dossier_with_code_and_qr(
    client: TestClient, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    chat = Updates()
    catalog = client.app.state.runtime.catalog  # type: ignore[attr-defined]
    procedure = catalog.procedure_by_slug("ho-kinh-doanh")
    agency = catalog.receiving_agencies(procedure)[0]

    assert post(client, chat.text("/start")) == 200
    welcome = fake.sent("sendMessage")
    assert "Xin chào" in welcome[0].params["text"]
    keyboard = welcome[-1].params["reply_markup"]["inline_keyboard"]
    assert keyboard[0][0]["callback_data"] == "menu:submit"

    post(client, chat.text("ho kinh doanh"))
    assert "Giấy tờ cần chụp" in last_text(fake)
    post(client, chat.button("req:start"))
    assert fake.sent("answerCallbackQuery")
    post(client, chat.button(f"agency:{agency.code}"))
    post(client, chat.text("Nguyễn Thị Mai"))
    contact_prompt = fake.sent("sendMessage")[-1].params["reply_markup"]
    assert contact_prompt["keyboard"][0][0]["request_contact"] is True
    post(client, chat.contact("+84912345678"))
    assert "Giấy tờ 1/3" in last_text(fake)

    fake.add_file("photo-1", images.good_jpeg(1))
    post(client, chat.photo("photo-1"))
    get_file = fake.sent("getFile")
    assert [c.params["file_id"] for c in get_file] == ["photo-1"]  # the largest size
    assert "Đã nhận 1 ảnh" in last_text(fake)
    post(client, chat.button("doc:done"))

    fake.add_file("scan-2", images.good_jpeg(2), path="documents/cccd.pdf")
    post(client, chat.document("scan-2", "cccd.pdf", "application/pdf", 200000))
    assert "Đã nhận 1 ảnh" in last_text(fake)  # judged by content, not by the name
    post(client, chat.button("doc:done"))
    post(client, chat.button("doc:skip"))
    assert "Kiểm tra lại trước khi nộp" in last_text(fake)

    post(client, chat.button("review:submit"))
    photo = fake.sent("sendPhoto")[-1]
    with Session(client.app.state.runtime.engine) as session:  # type: ignore[attr-defined]
        dossier = session.execute(select(Dossier)).scalar_one()
        files = session.execute(select(DocumentFile)).scalars().all()
    assert dossier.code in photo.params["caption"]
    assert int(photo.params["chat_id"]) == chat.chat_id
    qr = Image.open(io.BytesIO(photo.files["photo"]))
    assert [r.text for r in zxingcpp.read_barcodes(qr)] == [
        f"https://hcc.example.vn/lookup/{dossier.code}"
    ]
    assert len(files) == 2


def test_replayed_update_is_acknowledged_and_ignored(
    client: TestClient, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    update = Updates().text("/start")
    assert post(client, update) == 200
    calls = len(fake.calls)
    assert post(client, update) == 200
    assert len(fake.calls) == calls
    assert count(client, InboundEvent) == 1


def test_forged_secret_is_refused_and_stores_nothing(
    client: TestClient, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    assert post(client, Updates().text("/start"), secret="guess") == 401
    assert post(client, Updates().text("/start"), secret="") == 401
    assert fake.calls == []
    assert count(client, InboundEvent) == 0


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"message": {"text": "hi"}}', b'{"update_id": 7, "message": {"text": "hi"}}'],
    ids=["not-json", "no-update-id", "message-without-chat"],
)
def test_malformed_update_is_refused(client: TestClient, body: bytes) -> None:
    response = client.post(
        "/webhook/telegram/citizen",
        content=body,
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert response.status_code == 400
    assert count(client, InboundEvent) == 0


def test_sticker_gets_a_hint_not_a_dead_end(
    client: TestClient, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    post(client, Updates().sticker())
    assert "chưa hiểu" in fake.sent("sendMessage")[0].params["text"]


def test_the_agency_step_offers_the_location_button_and_a_location_sorts_the_centres(
    client: TestClient, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    chat = Updates()
    post(client, chat.text("/start"))
    post(client, chat.text("khai sinh"))
    before = len(fake.sent("sendMessage"))
    post(client, chat.button("req:start"))
    choose, offer = fake.sent("sendMessage")[before:]  # one keyboard a message
    assert "hoặc gửi vị trí của bạn" in choose.params["text"]
    assert choose.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == (
        "agency:000.20.01.H53"
    )
    assert offer.params["reply_markup"]["keyboard"] == [
        [{"text": "📍 Gửi vị trí của tôi", "request_location": True}]
    ]
    post(client, chat.location(10.54, 106.40))  # near Tân An (hand check: tests/core/test_dialogue)
    near = fake.sent("sendMessage")[-1].params
    assert near["text"].splitlines()[1:4] == [
        "1. Trung tâm Phục vụ hành chính công phường Long An — ~1,5 km",
        "2. Trung tâm Phục vụ hành chính công xã Hòa Hội — ~89 km",
        "3. Trung tâm Phục vụ hành chính công phường Tân Ninh — ~92 km",
    ]
    keyboard = near["reply_markup"]["inline_keyboard"]
    assert [row[0]["callback_data"] for row in keyboard] == [
        "agency:000.20.02.H53", "agency:000.20.03.H53", "agency:000.20.01.H53", "nav:back"
    ]
    post(client, chat.button("agency:000.20.02.H53"))
    assert "Họ và tên người nộp" in last_text(fake)
    post(client, chat.location(10.54, 106.40))  # not used at the name step: said, asked again
    texts = [c.params["text"] for c in fake.sent("sendMessage")[-2:]]
    assert texts[0].startswith("Vị trí chỉ dùng khi chọn nơi nộp hồ sơ")
    assert "Họ và tên người nộp" in texts[1]


def test_hcc_telegram_setup_registers_webhook_and_commands(
    telegram: tuple[FakeTelegram, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from webhook.cli import main
    from webhook.settings import get_settings

    fake, base = telegram
    for name, value in {
        "TELEGRAM_CITIZEN_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_BASE": base,
        "PUBLIC_BASE_URL": "https://hcc.example.vn",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        assert main(["telegram", "setup"]) == 0
    finally:
        get_settings.cache_clear()
    webhook = fake.sent("setWebhook")[0].params
    assert webhook["url"] == "https://hcc.example.vn/webhook/telegram/citizen"
    assert webhook["secret_token"] == SECRET
    assert webhook["allowed_updates"] == ["message", "callback_query"]
    menus = {c.params["language_code"]: c.params["commands"] for c in fake.sent("setMyCommands")}
    assert {c["command"] for c in menus["vi"]} == {"start", "menu", "cancel"}
    assert menus["en"][0]["description"] == "Start"


def test_rate_limited_reply_is_sent_after_the_wait(
    client: TestClient, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    fake.rate_limited["sendMessage"] = [1]
    started = time.monotonic()
    assert post(client, Updates().text("/start")) == 200
    attempts = fake.sent("sendMessage")
    assert len(attempts) == 3  # refused once, then the welcome and the menu
    assert "Xin chào" in attempts[1].params["text"]
    assert time.monotonic() - started >= 1.0


def _to_documents_step(client: TestClient, chat: Updates) -> None:
    catalog = client.app.state.runtime.catalog  # type: ignore[attr-defined]
    agency = catalog.receiving_agencies(catalog.procedure_by_slug("ho-kinh-doanh"))[0]
    for update in (chat.text("/start"), chat.text("ho kinh doanh"), chat.button("req:start"),
                   chat.button(f"agency:{agency.code}"), chat.text("Nguyễn Thị Mai"),
                   chat.contact("+84912345678")):  # fmt: skip
        assert post(client, update) == 200


def test_an_album_is_answered_once_for_all_its_photos(
    client: TestClient, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    chat = Updates()
    _to_documents_step(client, chat)
    before = len(fake.sent("sendMessage"))
    for n in range(3):
        fake.add_file(f"album-{n}", images.good_jpeg(10 + n))
        assert post(client, chat.photo(f"album-{n}", album="grp-1")) == 200
    assert len(fake.sent("sendMessage")) == before  # nothing yet: more photos may follow
    deadline = time.time() + 10
    while len(fake.sent("sendMessage")) == before and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # long enough for a second answer to show up, if there were one
    answers = fake.sent("sendMessage")[before:]
    assert len(answers) == 1
    assert "Đã nhận 3 ảnh" in answers[0].params["text"]
    assert count(client, DocumentFile) == 0  # still a draft: files are kept with the dialogue
    with Session(client.app.state.runtime.engine) as session:  # type: ignore[attr-defined]
        from storage.models import AlbumPart, ChannelIdentity

        assert session.execute(select(func.count()).select_from(AlbumPart)).scalar_one() == 0
        identity = session.execute(select(ChannelIdentity)).scalar_one()
    files = next(iter(identity.conversation["files"].values()))
    assert len(files) == 3


def test_a_replayed_album_photo_is_not_counted_twice(
    client: TestClient, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    chat = Updates()
    _to_documents_step(client, chat)
    before = len(fake.sent("sendMessage"))
    fake.add_file("album-a", images.good_jpeg(21))
    fake.add_file("album-b", images.good_jpeg(22))
    first = chat.photo("album-a", album="grp-2")
    post(client, first)
    # Telegram redelivers the update; the download now gives other bytes, so only the replay
    # guard (not the store's dedup by hash) keeps it from becoming a third photo.
    fake.add_file("album-a", images.good_jpeg(23))
    post(client, first)
    post(client, chat.photo("album-b", album="grp-2"))
    deadline = time.time() + 10
    while len(fake.sent("sendMessage")) == before and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)
    [answer] = fake.sent("sendMessage")[before:]
    assert "Đã nhận 2 ảnh" in answer.params["text"]


def test_a_slow_bot_api_does_not_hold_the_webhook_past_its_budget(
    telegram_settings: Settings, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    with bot_app(telegram_settings, fake, telegram_reply_budget_seconds=0.5) as client:
        fake.hold.clear()  # the Bot API does not answer
        started = time.monotonic()
        assert post(client, Updates().text("/start")) == 200
        assert time.monotonic() - started < 3
        assert fake.delivered == []
        fake.hold.set()
        deadline = time.time() + 10
        while not fake.delivered and time.time() < deadline:
            time.sleep(0.05)
        assert "Xin chào" in fake.delivered[0].params["text"]  # the reply went on afterwards


def test_a_single_text_reply_rides_on_the_webhook_answer(
    client: TestClient, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    chat = Updates()
    post(client, chat.text("/start"))
    calls = len(fake.calls)
    response = client.post(
        "/webhook/telegram/citizen",
        json=chat.text("ho kinh doanh"),
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert len(fake.calls) == calls  # no request of ours reached the Bot API
    fake.run_webhook_answer(response.headers["content-type"], response.content)
    [answer] = fake.calls[calls:]
    assert answer.method == "sendMessage"
    assert int(answer.params["chat_id"]) == chat.chat_id
    assert "Giấy tờ cần chụp" in answer.params["text"]
    assert answer.params["reply_markup"]["inline_keyboard"]


def test_replies_keep_their_order_when_the_bot_api_is_slow(
    telegram_settings: Settings, telegram: tuple[FakeTelegram, str]
) -> None:
    """The next turn's reply does not ride on the webhook answer past replies still queued."""
    fake, _ = telegram
    chat = Updates()
    with bot_app(telegram_settings, fake, telegram_reply_budget_seconds=0.3) as client:
        fake.hold.clear()
        assert post(client, chat.text("/start")) == 200  # its replies wait for the Bot API
        assert post(client, chat.text("ho kinh doanh")) == 200
        assert fake.calls == []
        fake.hold.set()
        deadline = time.time() + 10
        while len(fake.delivered) < 3 and time.time() < deadline:
            time.sleep(0.05)
        texts = [str(c.params["text"]) for c in fake.delivered]
        assert "Xin chào" in texts[0]
        assert "Giấy tờ cần chụp" in texts[-1]


def _in_a_group(update: dict[str, Any]) -> dict[str, Any]:
    update["message"]["chat"] = {"id": -1001234, "type": "supergroup", "title": "Tổ dân phố 3"}
    return update


def test_private_texts_skip_aiogram_and_everything_else_does_not(
    client: TestClient, telegram: tuple[FakeTelegram, str]
) -> None:
    """`read_update` reads only a plain private text itself; the rest is aiogram's, as before."""
    from bots.telegram_citizen import PlainText, read_update

    bot = client.app.state.citizen_bot  # type: ignore[attr-defined]
    chat = Updates()
    text, command = chat.text("ho kinh doanh"), chat.text("/start")
    for update in (text, command):
        body = json.dumps(update).encode()
        assert read_update(bot, body) == PlainText(
            update["update_id"], chat.chat_id, update["message"]["text"]
        )
    edited = chat.text("menu")
    edited["edited_message"] = edited.pop("message")
    odd_id = chat.text("menu")
    odd_id["message"]["message_id"] = True
    captioned = chat.text("menu")
    captioned["message"]["caption"] = "menu"
    typed_group = chat.text("menu")  # the chat's type alone, without a group's title
    typed_group["message"]["chat"]["type"] = "group"
    others = {
        "group": _in_a_group(chat.text("menu")),
        "group-typed": typed_group,
        "button": chat.button("menu:submit"),
        "photo": chat.photo("photo-1"),
        "album": chat.photo("photo-2", album="al-1"),
        "contact": chat.contact("+84912345678"),
        "sticker": chat.sticker(),
        "edited": edited,
        "bool-as-id": odd_id,
        "caption": captioned,
    }
    for name, update in others.items():
        assert not isinstance(read_update(bot, json.dumps(update).encode()), PlainText), name


def test_text_button_and_group_text_are_answered(
    client: TestClient, telegram: tuple[FakeTelegram, str]
) -> None:
    """A private chat runs the dialogue; a group gets one line (it is not one citizen: its
    members would continue each other's drafts and see each other's dossiers)."""
    fake, _ = telegram
    chat = Updates()
    assert post(client, chat.text("/start")) == 200
    assert "Xin chào" in fake.sent("sendMessage")[0].params["text"]
    post(client, chat.button("menu:submit"))
    assert fake.sent("answerCallbackQuery")
    post(client, chat.text("ho kinh doanh"))
    assert "Giấy tờ cần chụp" in last_text(fake)
    calls = len(fake.calls)
    assert post(client, _in_a_group(Updates(first_update_id=9000).text("/start"))) == 200
    [welcome, *_] = fake.calls[calls:]
    assert int(welcome.params["chat_id"]) == -1001234
    assert welcome.params["text"] == render("chat.private_only")
    assert count(client, InboundEvent) == 3  # no turn ran for the group
    with Session(client.app.state.runtime.engine) as session:  # type: ignore[attr-defined]
        chats = session.execute(select(ChannelIdentity.external_id)).scalars().all()
    assert chats == ["424242"]


def test_a_group_photo_or_button_runs_no_dialogue(
    client: TestClient, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    group = Updates(chat_id=-1005555, chat_type="group")
    fake.add_file("group-photo", images.good_jpeg(4))
    for update in (group.photo("group-photo"), group.button("menu:submit")):
        before = len(fake.calls)
        assert post(client, update) == 200
        texts = [c.params.get("text") for c in fake.calls[before:] if c.method == "sendMessage"]
        assert texts == [render("chat.private_only")]
    assert fake.file_requests == []  # nothing of the group's was downloaded
    assert count(client, ChannelIdentity) == 0


def _photo_step(client: TestClient) -> Updates:
    chat = Updates(chat_id=515151, first_update_id=20000)
    _to_documents_step(client, chat)
    return chat


def _answer_to(client: TestClient, fake: FakeTelegram, update: dict[str, Any]) -> list[str]:
    before = len(fake.calls)
    assert post(client, update) == 200  # never a 500: Telegram would redeliver into the same
    return [str(c.params.get("text")) for c in fake.calls[before:] if c.method == "sendMessage"]


@pytest.mark.parametrize("said_size", [None, 150_000], ids=["no file_size", "a lying file_size"])
def test_a_file_larger_than_it_says_is_cut_at_20_mb(
    client: TestClient, telegram: tuple[FakeTelegram, str], said_size: int | None
) -> None:
    fake, _ = telegram
    chat = _photo_step(client)
    fake.add_file("huge", b"\xff\xd8" + b"\0" * (MAX_BYTES + 1), said_size=said_size)
    update = chat.document("huge", "to-khai.pdf", "application/pdf", 150_000)
    if said_size is None:
        del update["message"]["document"]["file_size"]
    assert _answer_to(client, fake, update) == [render("chat.file_too_large_telegram")]
    assert count(client, DocumentFile) == 0


@pytest.mark.parametrize(
    "failure",
    ["getFile refused", "file 404", "file 500", "path ../", "absolute path"],
)
def test_a_failed_download_asks_to_send_again_and_answers_200(
    client: TestClient, telegram: tuple[FakeTelegram, str], failure: str
) -> None:
    fake, _ = telegram
    chat = _photo_step(client)
    photo = images.good_jpeg(5)
    match failure:
        case "getFile refused":
            fake.add_file("p", photo)
            fake.failing["getFile"] = [400]
        case "file 404":
            fake.add_file("p", photo, status=404)
        case "file 500":
            fake.add_file("p", photo, status=500)
        case "path ../":
            fake.add_file("p", photo, path="../../etc/passwd")
        case "absolute path":
            fake.add_file("p", photo, path="/etc/passwd")
    assert _answer_to(client, fake, chat.photo("p")) == [render("chat.download_failed")]
    if "path" in failure:
        assert fake.file_requests == []  # such a path is not followed
    # The citizen sends it again and it is taken.
    fake.failing.pop("getFile", None)
    fake.add_file("p2", photo)
    assert "Đã nhận 1 ảnh" in _answer_to(client, fake, chat.photo("p2"))[0]


def test_the_bot_token_never_reaches_the_log(
    client: TestClient, telegram: tuple[FakeTelegram, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The file server's error carries the URL `/file/bot<token>/…`: the log names the file
    id, and whatever else logs it has the token masked."""
    fake, _ = telegram
    chat = _photo_step(client)
    fake.add_file("p404", images.good_jpeg(6), status=404)
    with caplog.at_level(logging.DEBUG):
        assert _answer_to(client, fake, chat.photo("p404")) == [render("chat.download_failed")]
        logging.getLogger("aiohttp.client").error(
            "GET %s failed", f"{fake_base(client)}/file/bot{TOKEN}/photos/p404.jpg"
        )
    secret_part = TOKEN.split(":")[1]
    assert "p404" in caplog.text
    assert caplog.records and all(secret_part not in _full(r) for r in caplog.records)


def fake_base(client: TestClient) -> str:
    return str(client.app.state.runtime.settings.telegram_api_base)  # type: ignore[attr-defined]


def _full(record: logging.LogRecord) -> str:
    return logging.Formatter().format(record)
