"""The Zalo OA transport and sender against signed events and a fake Zalo on loopback: the
signature, every event shape, downloads only from Zalo's hosts, and `Reply`s on the wire."""

from __future__ import annotations

import asyncio
import io
import random
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import zxingcpp
from PIL import Image
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bots.delivery import MemoryThrottle, Rejected, TryLater, Unreachable
from bots.zalo import (
    BUTTON_PREFIX,
    BadSignature,
    DownloadRefused,
    EventKind,
    ForeignHost,
    ReplyConnections,
    TooLarge,
    ZaloSender,
    ZaloTokens,
    check_templates,
    choices_page,
    download,
    media_host_allowed,
    more_choices,
    translate,
    verify,
)
from core.calendar import VN_TZ
from core.conversation import Incoming, IncomingFile
from core.messages import render
from core.qr import qr_png
from core.replies import Button, Reply
from core.zalo_templates import TemplateMapping
from storage.db import make_engine, session_scope
from storage.zalo import save_tokens
from tests.fakes.zalo import (
    ZALO_APP_ID,
    ZALO_APP_SECRET,
    ZALO_OA_ID,
    ZALO_OA_SECRET,
    ZALO_USER_ID,
    FakeZalo,
    FakeZaloMedia,
    Template,
    ZaloEvents,
)
from tests.images import good_jpeg, small_pdf
from tests.servers import live_server

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def events(**kwargs: Any) -> ZaloEvents:
    return ZaloEvents(clock=lambda: NOW.timestamp(), **kwargs)


def check(body: bytes, headers: dict[str, str], now: datetime = NOW) -> dict[str, Any]:
    return verify(
        body,
        headers["X-ZEvent-Signature"],
        app_id=ZALO_APP_ID,
        oa_id=ZALO_OA_ID,
        secret=ZALO_OA_SECRET,
        now=now,
    )


# ---------------------------------------------------------------------------- signature


def test_an_event_signed_as_zalo_signs_it_verifies_in_both_known_variants() -> None:
    event = events().text("xin chào")
    assert check(*events().signed(event)) == event
    assert check(*events().signed(event, oa_id_first=True)) == event
    follow = events().follow()  # the OA is named in `oa_id`, not `recipient`
    assert check(*events().signed(follow))["follower"]["id"] == ZALO_USER_ID


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: events().signed(events().text("a"), secret="guessed"), "does not match"),
        (lambda: events(app_id="9").signed(events(app_id="9").text("a")), "does not match"),
        (  # another app of our OA, signed with the OA id first: the mac matches, the app not
            lambda: events(app_id="9").signed(events(app_id="9").text("a"), oa_id_first=True),
            "app_id is not ours",
        ),
        (lambda: events(oa_id="111").signed(events(oa_id="111").text("a")), "another Official"),
        (lambda: events(oa_id="111").signed(events(oa_id="111").follow()), "another Official"),
        (lambda: (b'{"app_id":"1"}', {"X-ZEvent-Signature": ""}), "no mac"),
    ],
    ids=[
        "forged-mac",
        "other-app",
        "other-app-oa-variant",
        "other-oa",
        "other-oa-follow",
        "no-signature",
    ],
)
def test_an_event_not_from_zalo_for_us_is_refused(make: Any, reason: str) -> None:
    with pytest.raises(BadSignature, match=reason):
        check(*make())


def test_a_body_changed_after_signing_is_refused() -> None:
    body, headers = events().signed(events().text("chuyển 100.000đ"))
    with pytest.raises(BadSignature, match="does not match"):
        check(body.replace(b"100.000", b"900.000"), headers)


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_an_event_from_more_than_five_minutes_away_is_refused(offset: timedelta) -> None:
    stale = ZaloEvents(clock=lambda: (NOW + offset).timestamp())
    with pytest.raises(BadSignature, match="timestamp too far"):
        check(*stale.signed(stale.text("a")))
    check(*stale.signed(stale.text("a")), now=NOW + offset)  # the same event, on time


# ---------------------------------------------------------------------------- translate


def test_text_and_a_button_tap_become_the_dialogues_text_and_button() -> None:
    source = events()
    text = translate(source.text("0912345678"))
    assert (text.kind, text.user_id, text.incoming) == (
        EventKind.TURN,
        ZALO_USER_ID,
        Incoming(text="0912345678"),
    )
    tap = translate(source.button(f"{BUTTON_PREFIX}proc:khai-sinh"))
    assert tap.incoming == Incoming(button="proc:khai-sinh")
    assert tap.delivery_id != text.delivery_id and tap.delivery_id.startswith("user_send_text:")


def test_several_images_are_one_turn_with_attachments_still_to_download() -> None:
    event = translate(
        events().images("https://a.zdn.vn/1.jpg", "https://a.zdn.vn/2.jpg", caption="CCCD")
    )
    assert event.kind == EventKind.TURN and event.incoming == Incoming(text="CCCD")
    assert [(a.kind, a.url) for a in event.attachments] == [
        ("image", "https://a.zdn.vn/1.jpg"),
        ("image", "https://a.zdn.vn/2.jpg"),
    ]
    files = (IncomingFile(b"1"), IncomingFile(b"2"))
    assert event.with_files(files) == Incoming(text="CCCD", files=files)


def test_a_file_keeps_its_name_and_claimed_size() -> None:
    event = translate(events().file("https://f.zdn.vn/don.pdf", "don.pdf", 34567))
    (attachment,) = event.attachments
    assert (attachment.kind, attachment.name, attachment.size) == ("file", "don.pdf", 34567)


def test_a_sticker_is_an_unsupported_input() -> None:
    event = translate(events().sticker())
    assert event.kind == EventKind.TURN and event.incoming == Incoming(unsupported=True)
    assert event.attachments == ()


@pytest.mark.parametrize("as_numbers", [False, True])
def test_a_location_as_strings_or_as_numbers_is_the_dialogues_location(as_numbers: bool) -> None:
    event = translate(events().location(11.2965, 106.1277, "Tòa Thánh", as_numbers=as_numbers))
    assert event.kind == EventKind.TURN and event.attachments == ()
    assert event.incoming == Incoming(location=(11.2965, 106.1277))  # the place name is unused


@pytest.mark.parametrize(
    "coordinates",
    [
        {"latitude": "abc", "longitude": "106.1"},
        {"latitude": "91", "longitude": "106.1"},
        {"latitude": 11.3, "longitude": -181},
        {"latitude": "nan", "longitude": "106.1"},
        {"latitude": True, "longitude": 106.1},
        {"latitude": "11.3"},
        "11.3,106.1",
    ],
)
def test_a_location_that_is_not_a_point_on_earth_is_an_unsupported_input(coordinates: Any) -> None:
    event = events().location(11.3, 106.1)
    event["message"]["attachments"][0]["payload"]["coordinates"] = coordinates
    assert translate(event).incoming == Incoming(unsupported=True)


@pytest.mark.parametrize("shape", ["nested", "flat", "text"])
def test_submitted_info_in_each_known_shape_gives_name_and_normalised_phone(shape: str) -> None:
    event = translate(events().submit_info("Nguyễn Thị Mai", "84912345678", shape))
    assert (event.kind, event.name, event.phone) == (
        EventKind.TURN,
        "Nguyễn Thị Mai",
        "+84912345678",
    )
    assert event.incoming == Incoming(phone="+84912345678")


def test_follow_unfollow_echoes_admin_replies_and_receipts() -> None:
    source = events()
    assert translate(source.follow()).kind == EventKind.FOLLOW
    unfollow = translate(source.unfollow())
    assert (unfollow.kind, unfollow.user_id) == (EventKind.UNFOLLOW, ZALO_USER_ID)
    assert unfollow.delivery_id == f"unfollow:{int(NOW.timestamp() * 1000)}:{ZALO_USER_ID}"
    assert translate(source.oa_text("Mã hồ sơ: X")).kind == EventKind.ECHO
    admin = translate(source.oa_text("Chị mang bản chính nhé", admin_id="77"))
    assert (admin.kind, admin.user_id, admin.text, admin.admin_id) == (
        EventKind.ADMIN_REPLY,
        ZALO_USER_ID,
        "Chị mang bản chính nhé",
        "77",
    )
    received = translate(source.received("m1"))
    assert (received.kind, received.msg_ids, received.tracking_id) == (
        EventKind.RECEIPT,
        ("m1",),
        "",
    )
    template = translate(source.received("m2", tracking_id="notice:7:accepted"))
    assert template.tracking_id == "notice:7:accepted"
    seen = translate(source.seen("m1", "m3"))
    assert (seen.kind, seen.msg_ids) == (EventKind.RECEIPT, ("m1", "m3"))
    assert received.delivery_id != translate(source.seen("m1")).delivery_id


# ---------------------------------------------------------------------------- download


@pytest.fixture
def media() -> Iterator[tuple[FakeZaloMedia, str]]:
    fake = FakeZaloMedia()
    with live_server(fake.app) as base:
        yield fake, base


def fetch(url: str, allowed: tuple[str, ...] = ("127.0.0.1",), max_bytes: int = 1_000_000) -> bytes:
    async def run() -> bytes:
        async with httpx.AsyncClient() as client:
            return await download(client, url, allowed_hosts=allowed, max_bytes=max_bytes)

    return asyncio.run(run())


def test_an_attachment_on_a_foreign_host_is_refused_without_a_request(
    media: tuple[FakeZaloMedia, str],
) -> None:
    fake, base = media
    fake.files["a.jpg"] = good_jpeg()
    foreign = base.replace("127.0.0.1", "localhost")  # the same server under another name
    with pytest.raises(ForeignHost):
        fetch(f"{foreign}/a.jpg")
    with pytest.raises(ForeignHost):
        fetch(f"{base}/a.jpg", allowed=("zdn.vn",))
    assert fake.requests == []
    assert fetch(f"{base}/a.jpg") == fake.files["a.jpg"]
    assert fake.requests == ["/a.jpg"]


def test_media_hosts_match_exactly_or_as_subdomains_and_over_https() -> None:
    allowed = ("zdn.vn", "zadn.vn")
    assert media_host_allowed(httpx.URL("https://f21-zpc.zdn.vn/x.jpg"), allowed)
    assert media_host_allowed(httpx.URL("https://zadn.vn/x.jpg"), allowed)
    assert not media_host_allowed(httpx.URL("http://f21-zpc.zdn.vn/x.jpg"), allowed)
    assert not media_host_allowed(httpx.URL("https://evilzdn.vn/x.jpg"), allowed)
    assert not media_host_allowed(httpx.URL("https://zdn.vn.evil.com/x.jpg"), allowed)
    assert not media_host_allowed(httpx.URL("https://zdn.vn@evil.com/x.jpg"), allowed)


def test_a_non_image_is_passed_through_for_the_dialogues_checks(
    media: tuple[FakeZaloMedia, str],
) -> None:
    fake, base = media
    fake.files["note.txt"] = b"not an image at all"
    assert fetch(f"{base}/note.txt") == b"not an image at all"


def streaming_app(declared: str | None) -> Starlette:
    """Sends 1 MB chunks up to 50 MB, without or with a (false) Content-Length."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(50):
            yield b"\xff" * 1_000_000

    async def endpoint(request: Request) -> Response:
        if declared is None:
            return StreamingResponse(chunks(), media_type="image/jpeg")
        return Response(b"\xff" * 2_000_000, headers={"content-length": declared})

    return Starlette(routes=[Route("/big.jpg", endpoint)])


def test_an_oversized_attachment_without_content_length_is_cut_while_streaming() -> None:
    with live_server(streaming_app(None)) as base, pytest.raises(TooLarge):
        fetch(f"{base}/big.jpg", max_bytes=1_500_000)


def close_delimited_server(total: int) -> tuple[str, Any]:
    """A raw HTTP/1.0 server whose body has no length and ends when the connection closes:
    what a lying or missing Content-Length comes down to."""
    listener = socket.create_server(("127.0.0.1", 0))
    sent = {"bytes": 0}

    def serve() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n\r\n")
        try:
            while sent["bytes"] < total:
                connection.sendall(b"\xff" * 65536)
                sent["bytes"] += 65536
        except OSError:
            pass
        connection.close()
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/x.jpg", sent


def test_an_oversized_close_delimited_body_is_cut_while_streaming() -> None:
    url, sent = close_delimited_server(200_000_000)
    with pytest.raises(TooLarge):
        fetch(url, max_bytes=1_000_000)
    assert sent["bytes"] < 100_000_000


def test_a_declared_size_over_the_limit_is_refused_before_reading() -> None:
    with live_server(streaming_app("2000000")) as base, pytest.raises(TooLarge):
        fetch(f"{base}/big.jpg", max_bytes=1_000_000)


def test_a_missing_attachment_is_refused_clearly(media: tuple[FakeZaloMedia, str]) -> None:
    with pytest.raises(DownloadRefused, match="404"):
        fetch(f"{media[1]}/gone.jpg")


# ---------------------------------------------------------------------------- sender


@dataclass
class Wired:
    fake: FakeZalo
    base: str
    engine: Engine
    client: httpx.Client

    def sender(self, **kwargs: Any) -> ZaloSender:
        tokens = ZaloTokens(
            self.engine,
            self.client,
            oauth_base=self.base,
            app_id=ZALO_APP_ID,
            app_secret=ZALO_APP_SECRET,
            oa_id=ZALO_OA_ID,
        )
        api_base = kwargs.pop("api_base", self.base)
        return ZaloSender(self.client, api_base, self.base, tokens, MemoryThrottle(), **kwargs)


@pytest.fixture
def wired(sqlite_url: str) -> Iterator[Wired]:
    fake = FakeZalo()
    engine = make_engine(sqlite_url)
    access, refresh = fake.issue_pair()
    with session_scope(engine) as session:
        save_tokens(
            session,
            oa_id=ZALO_OA_ID,
            access_token=access,
            refresh_token=refresh,
            expires_at=datetime.now(UTC) + timedelta(hours=25),
            now=datetime.now(UTC),
        )
    with live_server(fake.app) as base, httpx.Client(timeout=10) as client:
        yield Wired(fake, base, engine, client)
    engine.dispose()


Send = Callable[[ZaloSender, str, Reply], "str | None"]


@pytest.fixture(params=["send", "send_async"])
def send(request: pytest.FixtureRequest) -> Send:
    """Both ways a reply goes out: `send` (the outbox, threads) and `send_async` (the webhook's
    turns, on the event loop): the same messages on the wire, the same errors."""
    if request.param == "send":
        return lambda sender, recipient, reply: sender.send(recipient, reply)

    def on_the_loop(sender: ZaloSender, recipient: str, reply: Reply) -> str | None:
        async def run() -> str | None:
            connections = ReplyConnections()
            try:
                return await sender.send_async(connections, recipient, reply)
            finally:
                await connections.aclose()

        return asyncio.run(run())

    return on_the_loop


def test_a_long_text_is_split_at_2000_characters(wired: Wired, send: Send) -> None:
    lines = [f"{i:04d} " + "x" * 95 for i in range(45)]  # 4,500 characters
    send(wired.sender(), ZALO_USER_ID, Reply("\n".join(lines)))
    texts = wired.fake.texts()
    assert len(texts) == 3 and all(len(t) <= 2000 for t in texts)
    assert "\n".join(texts) == "\n".join(lines)
    assert {m["recipient"]["user_id"] for m in wired.fake.messages} == {ZALO_USER_ID}


def test_buttons_go_as_hidden_query_buttons_and_come_back_as_taps(wired: Wired, send: Send) -> None:
    buttons = tuple((Button(f"Thủ tục {i}", f"proc:{i}"),) for i in range(5))
    send(wired.sender(), ZALO_USER_ID, Reply("Chọn thủ tục:", buttons))
    (message,) = wired.fake.messages  # five fit in one message
    assert message["message"]["text"] == "Chọn thủ tục:"
    sent = message["message"]["attachment"]["payload"]["buttons"]
    assert sent[0] == {"title": "Thủ tục 0", "type": "oa.query.hide", "payload": "#hcc:proc:0"}
    assert [b["payload"] for b in sent] == [f"#hcc:proc:{i}" for i in range(5)]
    tap = translate(events().button(sent[4]["payload"]))
    assert tap.incoming == Incoming(button="proc:4")


def _buttons_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    return list(message["message"]["attachment"]["payload"]["buttons"])


def test_more_than_five_choices_are_one_message_with_four_and_more(
    wired: Wired, send: Send
) -> None:
    """Twelve choices: pages of 4 + "more", 4 + "more", then the last 4 — each page one message,
    each choice on exactly one page; "more" comes back as the step's question again, and its
    page is cut from that."""
    choices = tuple((Button(f"Nơi {i}", f"agency:{i}"),) for i in range(12))
    question = Reply("Chọn nơi nộp:", (*choices, (Button("Quay lại", "nav:back"),)))
    sender, seen = wired.sender(), []
    send(sender, ZALO_USER_ID, question)
    for page in (2, 3):
        (message,) = wired.fake.messages[-1:]
        *shown, more = _buttons_of(message)
        assert len(shown) == 4 and more["title"] == f"➕ Xem thêm ({page}/3)"
        seen += [b["payload"] for b in shown]
        tap = translate(events().button(more["payload"]))
        assert tap.incoming == Incoming(button="nav:resume") and tap.page is not None
        (next_page,) = more_choices([question], *tap.page)  # the dialogue asked it again
        send(sender, ZALO_USER_ID, next_page)
    assert len(wired.fake.messages) == 3
    last = wired.fake.messages[-1]
    assert last["message"]["text"] == "Lựa chọn khác (3/3):"
    seen += [b["payload"] for b in _buttons_of(last)]
    assert seen == [f"#hcc:agency:{i}" for i in range(12)] + ["#hcc:nav:back"]
    assert wired.fake.messages[0]["message"]["text"] == "Chọn nơi nộp:"


def test_more_of_a_list_the_step_no_longer_shows_asks_the_step_again() -> None:
    six = tuple((Button(str(i), f"menu:{i}"),) for i in range(6))
    *_, more = choices_page(Reply("Menu", six)).buttons[-1]
    page = translate(events().button(BUTTON_PREFIX + more.data)).page
    assert page is not None
    other = Reply("Chọn thủ tục:", tuple((Button(str(i), f"proc:{i}"),) for i in range(6)))
    assert more_choices([other], *page) == [other]  # another list by now: its first page
    assert more_choices([Reply("Menu", six)], page[0] + 1, page[1]) == [Reply("Menu", six)]
    forged = translate(events().button(f"{BUTTON_PREFIX}zalo:page:4:nothex!!"))
    assert forged.incoming == Incoming(button="nav:resume") and forged.page is None


def test_the_template_type_of_button_messages_is_a_setting(sqlite_url: str) -> None:
    strict = FakeZalo(require_button_template_type=True)
    engine = make_engine(sqlite_url)
    access, refresh = strict.issue_pair()
    with session_scope(engine) as session:
        save_tokens(
            session,
            oa_id=ZALO_OA_ID,
            access_token=access,
            refresh_token=refresh,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            now=datetime.now(UTC),
        )
    reply = Reply("Chọn:", ((Button("Có", "yes"),),))
    with live_server(strict.app) as base, httpx.Client() as client:
        wired = Wired(strict, base, engine, client)
        with pytest.raises(Rejected, match="template_type"):
            wired.sender().send(ZALO_USER_ID, reply)
        wired.sender(button_template_type="button").send(ZALO_USER_ID, reply)
    assert len(strict.messages) == 1
    engine.dispose()


def _decoded(image: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(image)))]


def test_the_qr_image_is_uploaded_and_sent_as_a_media_template(wired: Wired) -> None:
    url = "https://hcc.example.vn/tra-cuu/TN-2612-000123"
    wired.sender().send(ZALO_USER_ID, Reply("Mã hồ sơ: TN-2612-000123", image_png=qr_png(url)))
    ((attachment_id, uploaded),) = wired.fake.images.items()
    assert _decoded(uploaded) == [url]
    media, text = wired.fake.messages
    element = media["message"]["attachment"]["payload"]["elements"][0]
    assert element == {"media_type": "image", "attachment_id": attachment_id}
    assert text["message"]["text"] == "Mã hồ sơ: TN-2612-000123"


def test_an_image_over_1_mb_is_sent_as_a_smaller_jpeg_that_still_scans(wired: Wired) -> None:
    url = "https://hcc.example.vn/tra-cuu/TN-2612-000124"
    rng = random.Random(3)
    page = Image.frombytes("RGB", (1400, 1400), rng.randbytes(1400 * 1400 * 3))
    code = Image.open(io.BytesIO(qr_png(url, box_size=12))).convert("RGB")
    page.paste(code, (100, 100))
    png = io.BytesIO()
    page.save(png, "PNG")
    assert png.tell() > 1_000_000
    wired.sender().send(ZALO_USER_ID, Reply("", image_png=png.getvalue()))
    (uploaded,) = wired.fake.images.values()
    assert len(uploaded) <= 1_000_000 and uploaded.startswith(b"\xff\xd8")
    assert _decoded(uploaded) == [url]


def test_asking_for_the_phone_sends_a_request_user_info_template(wired: Wired, send: Send) -> None:
    send(wired.sender(lang="en"), ZALO_USER_ID, Reply("Your phone number?", ask_contact=True))
    question, request = wired.fake.messages
    assert question["message"] == {"text": "Your phone number?"}
    payload = request["message"]["attachment"]["payload"]
    assert payload["template_type"] == "request_user_info"
    assert payload["elements"][0]["title"] == render("zalo.contact_title", "en")
    assert payload["elements"][0]["subtitle"] == render("zalo.contact_subtitle", "en")


def test_the_receipt_pdf_goes_as_an_uploaded_file(wired: Wired) -> None:
    wired.sender().send_file(ZALO_USER_ID, "bien-nhan.pdf", small_pdf())
    ((token, (name, content)),) = wired.fake.files.items()
    assert (name, content) == ("bien-nhan.pdf", small_pdf())
    assert wired.fake.messages[0]["message"]["attachment"] == {
        "type": "file",
        "payload": {"token": token},
    }


@pytest.mark.parametrize("refusal", ["expired", "invalid"])
def test_a_token_refused_mid_run_is_refreshed_once_and_the_message_delivered_once(
    wired: Wired, send: Send, refusal: str
) -> None:
    sender = wired.sender()
    send(sender, ZALO_USER_ID, Reply("một"))
    if refusal == "expired":
        wired.fake.expire_access_tokens()  # -220 on the next call
    else:
        wired.fake.queue_errors("/v3.0/oa/message/cs", -216)
    send(sender, ZALO_USER_ID, Reply("hai"))
    send(sender, ZALO_USER_ID, Reply("ba"))
    assert wired.fake.texts() == ["một", "hai", "ba"]
    assert wired.fake.refresh_calls == 1


def test_a_token_still_refused_after_a_refresh_is_not_retried_again(
    wired: Wired, send: Send
) -> None:
    wired.fake.queue_errors("/v3.0/oa/message/cs", -216, -216)
    with pytest.raises(Rejected, match="-216"):
        send(wired.sender(), ZALO_USER_ID, Reply("một"))
    assert wired.fake.refresh_calls == 1 and wired.fake.messages == []


def test_zalo_errors_map_to_try_later_unreachable_and_rejected(wired: Wired, send: Send) -> None:
    sender = wired.sender()
    wired.fake.queue_errors("/v3.0/oa/message/cs", -32)
    with pytest.raises(TryLater, match="-32"):
        send(sender, ZALO_USER_ID, Reply("a"))
    wired.fake.blocked.add(ZALO_USER_ID)
    with pytest.raises(Unreachable, match="-213"):
        send(sender, ZALO_USER_ID, Reply("a"))
    wired.fake.blocked.clear()
    wired.fake.out_of_window.add(ZALO_USER_ID)
    with pytest.raises(Unreachable, match="-230"):
        send(sender, ZALO_USER_ID, Reply("a"))
    wired.fake.out_of_window.clear()
    with pytest.raises(Rejected, match="-210: button payload exceeds 1000"):
        send(sender, ZALO_USER_ID, Reply("a", ((Button("x", "d" * 1000),),)))
    wired.fake.queue_errors("/v3.0/oa/message/cs", -201)
    with pytest.raises(Rejected, match="-201: Parameters are invalid"):
        send(sender, ZALO_USER_ID, Reply("a"))
    assert wired.fake.messages == []


def test_a_server_error_or_no_answer_is_try_later(wired: Wired, send: Send) -> None:
    async def failing(request: Request) -> Response:
        return Response("bad gateway", status_code=502)

    down = Starlette(routes=[Route("/v3.0/oa/message/cs", failing, methods=["POST"])])
    with live_server(down) as base, pytest.raises(TryLater, match="502"):
        send(wired.sender(api_base=base), ZALO_USER_ID, Reply("a"))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(TryLater, match=r"Connect(or)?Error"):  # httpx's, aiohttp's
        send(wired.sender(api_base=f"http://127.0.0.1:{port}"), ZALO_USER_ID, Reply("a"))


def test_sending_faster_than_the_apps_rate_is_left_for_later(wired: Wired, send: Send) -> None:
    sender = wired.sender(per_minute=1)
    send(sender, ZALO_USER_ID, Reply("a"))
    with pytest.raises(TryLater) as raised:
        send(sender, ZALO_USER_ID, Reply("b"))
    assert raised.value.retry_after == pytest.approx(60, abs=1)
    assert wired.fake.texts() == ["a"]


# ---------------------------------------------------------------------------- template messages


def test_a_template_message_goes_by_phone_with_its_tracking_id(wired: Wired) -> None:
    wired.fake.templates["24680"] = Template(["ma_ho_so", "ngay_hen"], required={"ma_ho_so"})
    data = {"ma_ho_so": "TN-2612-000123", "ngay_hen": "15/12/2026"}
    msg_id = wired.sender().send_template("+84912345678", "24680", data, "notice:7:accepted")
    (sent,) = wired.fake.template_messages
    assert sent == {
        "phone": "84912345678",
        "template_id": "24680",
        "template_data": data,
        "tracking_id": "notice:7:accepted",
    }
    assert len(msg_id) == 32


def test_template_message_errors(wired: Wired) -> None:
    wired.fake.templates["24680"] = Template(["ma_ho_so"])
    late = datetime(2026, 12, 1, 23, 0, tzinfo=VN_TZ)
    sender = wired.sender(clock=lambda: late)
    with pytest.raises(Rejected, match="not a Vietnamese mobile"):
        sender.send_template("12345", "24680", {"ma_ho_so": "X"}, "t1")
    wired.fake.queue_errors("/message/template", -108)
    with pytest.raises(Rejected, match="-108"):
        sender.send_template("0912345678", "24680", {"ma_ho_so": "X"}, "t1")
    wired.fake.night = True
    with pytest.raises(TryLater, match="-133") as night:
        sender.send_template("0912345678", "24680", {"ma_ho_so": "X"}, "t1")
    assert night.value.retry_after == 7 * 3600  # at 06:00
    wired.fake.night = False
    wired.fake.queue_errors("/message/template", -144)
    with pytest.raises(TryLater, match="-144") as quota:
        sender.send_template("0912345678", "24680", {"ma_ho_so": "X"}, "t1")
    assert quota.value.retry_after == 3600  # tomorrow
    wired.fake.expire_access_tokens()  # the business host answers -124
    sender.send_template("0912345678", "24680", {"ma_ho_so": "X"}, "t1")
    assert wired.fake.refresh_calls == 1 and len(wired.fake.template_messages) == 1


def test_configured_templates_are_checked_against_what_zalo_declares(wired: Wired) -> None:
    wired.fake.templates["1"] = Template(["ma_ho_so", "ngay_hen"], required={"ma_ho_so"})
    wired.fake.templates["2"] = Template(["ma_ho_so"], status="REJECT", required={"ma_ho_so"})
    mappings = {
        "notice.accepted": TemplateMapping(
            "notice.accepted", "1", {"ma_ho_so": "code", "ngay_hen": "appointment_date"}
        ),
        "notice.refused": TemplateMapping("notice.refused", "2", {"ly_do": "reason"}),
        "notice.returned": TemplateMapping("notice.returned", "3", {"ma_ho_so": "code"}),
    }
    problems = check_templates(wired.sender(), mappings)
    assert problems == [
        "notice.refused (template 2): status is REJECT, not ENABLE",
        "notice.refused (template 2): parameter 'ly_do' is not declared by the template",
        "notice.refused (template 2): required parameter 'ma_ho_so' is not filled",
        "notice.returned (template 3): zalo -201: template_id is invalid",
    ]


def test_a_followers_profile_is_read_with_the_query_as_json(wired: Wired) -> None:
    wired.fake.users[ZALO_USER_ID] = {
        "display_name": "Mai",
        "shared_info": {"phone": "84912345678"},
    }
    profile = wired.sender().profile(ZALO_USER_ID)
    assert (profile["display_name"], profile["user_is_follower"]) == ("Mai", True)
    with pytest.raises(Rejected, match="-201"):
        wired.sender().profile("unknown")
