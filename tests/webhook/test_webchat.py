"""The web chat: the same dialogue in a browser, behind a signed session cookie."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from core.dossier import Action, MissingItem
from core.messages import render
from storage.models import Dossier, InboundEvent
from tests import images
from tests.browser import chromium_page
from tests.dossiers import act, citizen_dossier
from tests.servers import browser_client, live_server, post_chunked, wait_until
from webhook.app import create_app
from webhook.limits import MAX_SEND_BYTES
from webhook.runtime import Runtime
from webhook.settings import Settings
from webhook.webchat import WEB_ICONS, web_label


def test_page_sets_a_signed_httponly_cookie(client: TestClient) -> None:
    response = client.get("/chat")
    assert response.status_code == 200 and 'capture="environment"' in response.text
    cookie = response.headers["set-cookie"]
    assert "hcc_chat=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    replies = client.post("/chat/api/send", data={"text": "/start"}).json()["replies"]
    assert "Xin chào" in replies[0]["text"]


def test_no_or_forged_session_is_refused(client: TestClient) -> None:
    assert client.post("/chat/api/send", data={"text": "hi"}).status_code == 401
    client.cookies.set("hcc_chat", "someone-else.0000")
    assert client.post("/chat/api/send", data={"text": "hi"}).status_code == 401


def test_cross_site_post_is_refused(client: TestClient) -> None:
    client.get("/chat")
    response = client.post(
        "/chat/api/send", data={"text": "hi"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403


def test_two_browsers_have_separate_conversations(client: TestClient, settings: Settings) -> None:
    client.get("/chat")
    client.post("/chat/api/send", data={"button": "menu:language"})
    other = TestClient(client.app, base_url="https://testserver")  # a second browser
    other.get("/chat")
    vi = other.post("/chat/api/send", data={"text": "menu"}).json()["replies"]
    assert "Bạn muốn làm gì" in vi[0]["text"]
    en = client.post("/chat/api/send", data={"text": "menu"}).json()["replies"]
    assert "What would you like to do" in en[0]["text"]


def test_a_send_repeated_under_its_id_gets_the_saved_answer_and_runs_once(
    client: TestClient,
) -> None:
    """The page sends again, same id, when an answer did not arrive (the server died after the
    commit): the repeat is answered from storage and the turn does not run twice (the language
    switch would switch back). Another browser cannot read the answer with that id."""
    client.get("/chat")
    switch = {"button": "menu:language", "turn": "turn-0001-abcdef"}
    first = client.post("/chat/api/send", data=switch).json()["replies"]
    assert "What would you like to do" in first[0]["text"]
    assert client.post("/chat/api/send", data=switch).json()["replies"] == first
    en = client.post("/chat/api/send", data={"text": "menu", "turn": "turn-0002"}).json()
    assert "What would you like to do" in en["replies"][0]["text"]  # switched once
    other = TestClient(client.app, base_url="https://testserver")
    other.get("/chat")
    same_id = {"text": "menu", "turn": switch["turn"]}
    theirs = other.post("/chat/api/send", data=same_id).json()["replies"]
    assert "Bạn muốn làm gì" in theirs[0]["text"]  # their own turn, in their own language


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_submit_a_dossier_in_chromium(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings)
    photo = tmp_path / "to-khai.jpg"
    photo.write_bytes(images.good_jpeg(3))
    blurred = tmp_path / "mo.jpg"
    blurred.write_bytes(images.blurred_jpeg())
    with live_server(app) as base, chromium_page() as page:
        page.goto(f"{base}/chat")
        page.wait_for_selector("text=Xin chào")
        page.click("button[data-action='menu:submit']")
        page.click("button[data-action^='proc:'] >> text=Đăng ký khai tử")
        page.click("button[data-action='req:start'] >> nth=-1")
        page.click("button[data-action^='agency:'] >> nth=0")
        page.fill("#text", "Võ Văn Kiệt")
        page.press("#text", "Enter")
        page.wait_for_selector("text=Số điện thoại di động")
        page.fill("#text", "0912345678")
        page.press("#text", "Enter")
        for number in (1, 2, 3):
            page.wait_for_selector(f"text=Giấy tờ {number}/3")
            if number == 1:
                page.set_input_files("#files", str(blurred))
                page.wait_for_selector("text=ảnh bị mờ")
            page.set_input_files("#files", str(photo))
            page.wait_for_selector(f"text=Đã nhận 1 ảnh >> nth={number - 1}")
            page.click("button[data-action='doc:done'] >> nth=-1")
        page.wait_for_selector("text=Kiểm tra lại trước khi nộp")
        page.click("button[data-action='review:submit']")
        page.wait_for_selector("text=Đã nộp hồ sơ")
        assert page.eval_on_selector(".msg img", "img => img.naturalWidth") > 100
        page.reload()  # the conversation survives a reload
        page.wait_for_selector("text=Bạn muốn làm gì?")
        with Session(app.state.runtime.engine) as session:
            dossier = session.execute(select(Dossier)).scalar_one()
        assert dossier.channel == "web" and dossier.status == "submitted"
        # The desk asks for a supplement: the notice shows up in the open page by itself.
        runtime = app.state.runtime
        component = runtime.catalog.procedure(dossier.procedure_code).components[0].code
        assert dossier.id is not None
        act(runtime.engine, runtime.catalog, runtime.calendar, dossier.id,
            Action.REQUEST_SUPPLEMENT, datetime.now(UTC),
            missing=(MissingItem(component, "Ảnh tờ khai bị lóa"),))  # fmt: skip
        page.wait_for_selector(".msg.push >> text=Ảnh tờ khai bị lóa", timeout=20_000)
        page.click("button[data-action='menu:supplement'] >> nth=-1")
        page.wait_for_selector("text=Bổ sung 1/1")
        # "Finish" on a shared device: the next person starts over, with nothing of the last one.
        page.on("dialog", lambda dialog: dialog.accept())
        page.click("#end")
        page.wait_for_selector("text=Xin chào")
        assert "Bổ sung 1/1" not in page.inner_text("#log")
    app.state.runtime.engine.dispose()


def _to_the_agency_step(client: TestClient) -> dict[str, Any]:
    client.get("/chat")
    client.post("/chat/api/send", data={"text": "/start"})
    client.post("/chat/api/send", data={"text": "khai sinh"})
    (question,) = client.post("/chat/api/send", data={"button": "req:start"}).json()["replies"]
    return question  # type: ignore[no-any-return]


def test_a_location_from_the_page_lists_the_centres_nearest_first(client: TestClient) -> None:
    question = _to_the_agency_step(client)
    assert question["ask_location"] is True  # the page shows its "send my location" button
    sent = {"latitude": "11.2965", "longitude": "106.1277"}  # hand check: tests/core/test_dialogue
    (near,) = client.post("/chat/api/send", data=sent).json()["replies"]
    assert near["text"].splitlines()[1] == (
        "1. Trung tâm Phục vụ hành chính công phường Tân Ninh — ~3,5 km"
    )
    assert near["ask_location"] is False
    assert [row[0]["data"] for row in near["buttons"]][:3] == [
        "agency:000.20.01.H53", "agency:000.20.03.H53", "agency:000.20.02.H53"
    ]


@pytest.mark.parametrize(
    "sent", [{"latitude": "abc", "longitude": "106"}, {"latitude": "11.3"},
             {"latitude": "1" * 5000, "longitude": "106"}]
)  # fmt: skip
def test_a_location_that_is_not_one_gets_the_hint_and_changes_nothing(
    client: TestClient, sent: dict[str, str]
) -> None:
    question = _to_the_agency_step(client)
    hint, again = client.post("/chat/api/send", data=sent).json()["replies"]
    assert "chưa hiểu loại tin nhắn này" in hint["text"]
    assert again["buttons"] == question["buttons"]  # the catalog's order: nothing was sorted


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_location_button_of_the_page_sends_the_browsers_location(settings: Settings) -> None:
    app = create_app(settings)
    at_tan_an = {"latitude": 10.54, "longitude": 106.40}
    with live_server(app) as base, chromium_page(geolocation=at_tan_an,
                                                 permissions=["geolocation"]) as page:  # fmt: skip
        page.goto(f"{base}/chat")
        page.wait_for_selector("text=Xin chào")
        page.click("button[data-action='menu:submit']")
        page.click("button[data-action^='proc:'] >> text=Đăng ký khai sinh")
        page.click("button[data-action='req:start'] >> nth=-1")
        page.click("button.share-location")
        page.wait_for_selector("text=1. Trung tâm Phục vụ hành chính công phường Long An — ~1,5 km")
    app.state.runtime.engine.dispose()


def test_finish_gives_the_next_person_an_empty_session(client: TestClient) -> None:
    """A kiosk or a borrowed phone: after "Finish", nobody sees the previous citizen's dossiers."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    client.get("/chat")
    first = client.cookies["hcc_chat"].split(".")[0]
    _, code = citizen_dossier(runtime.engine, runtime.catalog, runtime.calendar, channel="web",
                              external_id=first, at=datetime.now(UTC))  # fmt: skip
    mine = client.post("/chat/api/send", data={"button": "menu:mine"}).json()["replies"]
    assert code in mine[0]["text"]
    refused = client.post("/chat/api/end", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and client.cookies["hcc_chat"].startswith(first)
    assert client.post("/chat/api/end").status_code == 200
    assert "hcc_chat" not in client.cookies
    client.get("/chat")  # the next person opens the page
    assert not client.cookies["hcc_chat"].startswith(first)
    mine = client.post("/chat/api/send", data={"button": "menu:mine"}).json()["replies"]
    assert code not in mine[0]["text"] and "chưa có hồ sơ" in mine[0]["text"].lower()


BOUNDARY = "hcc-test-boundary"
MB = 1024 * 1024
SOCKET_SLACK = 12 * MB  # what the loopback's socket buffers take in before the server answers


def _multipart(files: list[tuple[str, int]], chunk: int = 256 * 1024) -> Iterator[bytes]:
    """A web chat send with `files` ((name, size)) of zero bytes, produced as it is sent."""
    turn = "turn-upload-1"
    yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="turn"\r\n\r\n{turn}\r\n'.encode()
    for name, size in files:
        yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"'
               "\r\nContent-Type: image/jpeg\r\n\r\n").encode()  # fmt: skip
        for start in range(0, size, chunk):
            yield b"\0" * min(chunk, size - start)
        yield b"\r\n"
    yield f"--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def chat_server(settings: Settings) -> Iterator[tuple[str, dict[str, str], Runtime]]:
    """A live web chat: (base URL, the headers of a browser in a session, the runtime)."""
    app = create_app(settings)
    with live_server(app) as base:
        browser = browser_client(base)
        browser.get("/chat")
        session = browser.cookies["hcc_chat"]
        headers = {
            "Cookie": f"hcc_chat={session}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        }
        yield base, headers, app.state.runtime
    app.state.runtime.engine.dispose()


def _turns(runtime: Runtime) -> int:
    with Session(runtime.engine) as session:
        return len(list(session.execute(select(InboundEvent)).scalars()))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_chunked_upload_is_refused_at_20_mb_while_it_arrives(
    chat_server: tuple[str, dict[str, str], Runtime],
) -> None:
    """300 MB chunked (no Content-Length): refused once the file passes 20 MB, with the
    sentence the page shows (before: read whole into memory)."""
    base, headers, runtime = chat_server
    status, body, sent = post_chunked(base, "/chat/api/send", headers,
                                      _multipart([("big.jpg", 300 * MB)]))  # fmt: skip
    assert status == 413
    assert json.loads(body) == {
        "error": "too_large",
        "message": render("webchat.file_too_large", "vi", limit_mb=20),
    }
    assert sent < 20 * MB + SOCKET_SLACK
    assert _turns(runtime) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_eleven_files_are_refused_at_the_eleventh(
    chat_server: tuple[str, dict[str, str], Runtime],
) -> None:
    base, headers, runtime = chat_server
    files = [(f"{n}.jpg", 1000) for n in range(11)]
    status, body, _ = post_chunked(base, "/chat/api/send", headers, _multipart(files))
    assert status == 400
    assert json.loads(body)["message"] == render("webchat.too_many_files", "vi", n=10)
    assert _turns(runtime) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_send_over_its_total_is_refused_though_each_file_fits(
    chat_server: tuple[str, dict[str, str], Runtime],
) -> None:
    """Five 19 MB files: each is allowed, together they pass the send's ceiling."""
    base, headers, runtime = chat_server
    files = [(f"{n}.jpg", 19 * MB) for n in range(5)]
    status, body, sent = post_chunked(base, "/chat/api/send", headers, _multipart(files))
    assert status == 413
    total_mb = MAX_SEND_BYTES // MB
    assert json.loads(body)["message"] == render("webchat.send_too_large", "vi", limit_mb=total_mb)
    assert sent < MAX_SEND_BYTES + SOCKET_SLACK
    assert _turns(runtime) == 0


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_page_says_at_most_ten_files_before_sending(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings)
    files = []
    for number in range(11):
        path = tmp_path / f"{number}.jpg"
        path.write_bytes(images.good_jpeg(1))
        files.append(str(path))
    with live_server(app) as base, chromium_page() as page:
        page.goto(f"{base}/chat")
        page.wait_for_selector("text=Xin chào")
        hint = render("webchat.files_hint", "vi", n=10, limit_mb=20)
        assert page.inner_text("#files-hint") == hint
        sends: list[str] = []
        page.on("request", lambda r: sends.append(r.url) if "/chat/api/send" in r.url else None)
        page.set_input_files("#files", files)
        page.wait_for_selector(f"#status >> text={render('webchat.too_many_files', 'vi', n=10)}")
        assert sends == []  # nothing was sent
    app.state.runtime.engine.dispose()


def test_an_over_long_text_field_is_refused_in_vietnamese(client: TestClient) -> None:
    client.get("/chat")
    answer = client.post("/chat/api/send", data={"text": "a" * 20_000})
    assert answer.status_code == 400
    assert answer.json() == {"error": "bad_request", "message": render("http.bad_request", "vi")}


def test_finish_detaches_the_session_so_an_old_cookie_sees_nothing(client: TestClient) -> None:
    """A copy of the cookie kept from before "Finish" (another tab, a thief) no longer names the
    citizen: no dossiers in "Hồ sơ của tôi", no status notices."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    client.get("/chat")
    old_cookie = client.cookies["hcc_chat"]
    dossier_id, code = citizen_dossier(runtime.engine, runtime.catalog, runtime.calendar,
                                       channel="web", external_id=old_cookie.split(".")[0],
                                       at=datetime.now(UTC))  # fmt: skip
    component = runtime.catalog.procedure_by_slug("ho-kinh-doanh").components[0].code
    act(runtime.engine, runtime.catalog, runtime.calendar, dossier_id, Action.REQUEST_SUPPLEMENT,
        datetime.now(UTC), missing=(MissingItem(component, "Ảnh mờ"),))  # fmt: skip
    wait_until(lambda: client.get("/chat/api/updates").json()["messages"], "notice not delivered")
    assert client.post("/chat/api/end").status_code == 200
    thief = TestClient(client.app, base_url="https://testserver", cookies={"hcc_chat": old_cookie})
    assert thief.get("/chat/api/updates").json()["messages"] == []
    mine = thief.post("/chat/api/send", data={"button": "menu:mine"}).json()["replies"]
    assert code not in mine[0]["text"] and "chưa có hồ sơ" in mine[0]["text"].lower()


def test_buttons_come_with_an_svg_icon_instead_of_their_emoji(client: TestClient) -> None:
    """Telegram and Zalo draw the dialogue's emoji; a browser without an emoji font would not."""
    client.get("/chat")
    replies = client.post("/chat/api/send", data={"text": "/start"}).json()["replies"]
    menu = {b["data"]: b for row in replies[-1]["buttons"] for b in row}
    assert menu["menu:submit"]["icon"] == "form"
    assert menu["menu:submit"]["label"] == "Nộp hồ sơ"
    assert menu["menu:lookup"] == {"label": "Tra cứu hồ sơ", "icon": "search",
                                   "data": "menu:lookup"}  # fmt: skip
    assert all(b["label"][0].isalnum() for b in menu.values()), menu
    icons = (Path(__file__).parents[2] / "static" / "icons.svg").read_text()
    assert all(f'id="{name}"' in icons for name in WEB_ICONS.values())


def test_a_label_keeps_its_words_and_a_rating_its_number() -> None:
    assert web_label("⬅️ Quay lại") == ("back", "Quay lại")
    assert web_label("⌨️ Nhập tay") == ("keyboard", "Nhập tay")
    assert web_label("Đăng ký khai sinh") == (None, "Đăng ký khai sinh")
    assert web_label("⭐⭐⭐") == ("star", "3")
