"""Nothing a citizen is owed is lost: a turn's replies survive the web process that ran it.

The web process here is a real `hcc serve` (embedded mode: SQLite, its own dispatcher thread),
killed with SIGKILL; Telegram is the fake Bot API on 127.0.0.1, and it redelivers an update whose
webhook call got no answer, as the real one does.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select
from sqlmodel import Session

from storage.db import make_engine
from storage.models import Dossier, InboundEvent
from tests import images
from tests.fakes.telegram import TELEGRAM_SECRET, TELEGRAM_TOKEN, Call, FakeTelegram, Updates
from tests.servers import wait_until
from webhook.settings import REPO_ROOT

HOOK = "/webhook/telegram/citizen"


class WebProcess:
    """`hcc serve` in its own process group, started again on the same database after a kill."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env, self.port = env, port
        self.process: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "webhook.cli", "serve", "--port", str(self.port)],
            cwd=REPO_ROOT, env=self.env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._up, "hcc serve did not start", timeout=30)

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)  # no goodbye: whatever was in flight is cut
        self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def web(
    sqlite_url: str, telegram: tuple[FakeTelegram, str], tmp_path: Path
) -> Iterator[WebProcess]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DATABASE_URL": sqlite_url,
        "MEDIA_DIR": str(tmp_path / "media"),
        "PUBLIC_BASE_URL": "http://127.0.0.1",
        "LOAD_DEMO_DATA": "false",
        "TELEGRAM_CITIZEN_TOKEN": TELEGRAM_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
        "TELEGRAM_API_BASE": telegram[1],
        "TELEGRAM_PER_CHAT_INTERVAL": "0",
        "TELEGRAM_REPLY_BUDGET_SECONDS": "30",  # the webhook call waits for its replies
        "OUTBOX_LEASE_SECONDS": "2",
        "DISPATCH_INTERVAL_SECONDS": "0.2",
    }
    process = WebProcess(env, free_port())
    process.start()
    yield process
    process.stop()


def deliver(fake: FakeTelegram, web: WebProcess, update: dict[str, Any]) -> httpx.Response:
    with httpx.Client(base_url=web.base, timeout=60) as client:
        return fake.deliver(client, HOOK, update)


def to_review(fake: FakeTelegram, web: WebProcess, chat: Updates) -> None:
    """A citizen's dialogue up to the review screen of a one-paper procedure."""
    for update in (chat.text("/start"), chat.text("khai sinh"), chat.button("req:start")):
        assert deliver(fake, web, update).status_code == 200
    choose = [c for c in fake.calls[-2:] if "agency:" in str(c.params.get("reply_markup"))]
    if choose:  # (the last message then offers the "send my location" keyboard)
        agency = choose[0].params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        deliver(fake, web, chat.button(agency))
    deliver(fake, web, chat.text("Nguyễn Thị Mai"))
    deliver(fake, web, chat.contact("+84912345678"))
    for n in range(4):  # every paper photographed, optional ones too
        text = str(fake.calls[-1].params.get("text") or fake.calls[-1].params.get("caption"))
        if "Kiểm tra lại trước khi nộp" in text:
            return
        fake.add_file(f"photo-{n}", images.good_jpeg(40 + n))
        deliver(fake, web, chat.photo(f"photo-{n}"))
        deliver(fake, web, chat.button("doc:done"))
    text = str(fake.calls[-1].params.get("text"))
    assert "Kiểm tra lại trước khi nộp" in text, text


def qr_photos(fake: FakeTelegram) -> list[Call]:
    return [c for c in fake.delivered if c.method == "sendPhoto"]


def dossier_code(sqlite_url: str) -> str:
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        code = session.execute(select(Dossier.code)).scalar_one()  # type: ignore[call-overload]
    engine.dispose()
    return str(code)


def reply_state(sqlite_url: str, update_id: int) -> tuple[str | None, int]:
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        event = session.get(InboundEvent, ("telegram", str(update_id)))
        assert event is not None
        state = (event.reply_state, event.replies_sent)
    engine.dispose()
    return state


def assert_one_code_and_qr(fake: FakeTelegram, code: str) -> None:
    photos = qr_photos(fake)
    assert len(photos) == 1, f"{len(photos)} QR photos delivered"
    assert code in photos[0].params["caption"]
    qr = Image.open(io.BytesIO(photos[0].files["photo"]))
    assert [r.text for r in zxingcpp.read_barcodes(qr)] == [f"http://127.0.0.1/lookup/{code}"]


def test_killed_while_sending_the_code_the_redelivery_sends_it_once(
    web: WebProcess, telegram: tuple[FakeTelegram, str], sqlite_url: str
) -> None:
    """The submit commits, the process dies while the QR photo is on its way (Telegram never
    answered it, so it never reached the chat); Telegram redelivers the update to the restarted
    process, which does not submit again but sends the code, the QR and the menu — once."""
    fake, _ = telegram
    chat = Updates()
    to_review(fake, web, chat)
    submit = chat.button("review:submit")
    fake.hold.clear()  # the Bot API stops answering sends
    fake.waiting.clear()
    with httpx.Client(base_url=web.base, timeout=60) as client:
        pending = client.build_request(
            "POST", HOOK, json=submit, headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
        )
        call = threading.Thread(target=lambda: _ignore_errors(client.send, pending), daemon=True)
        call.start()
        assert fake.waiting.wait(20), "the submit's replies never reached the Bot API"
        web.kill()  # the dossier is committed; its code is on the wire
        call.join(10)
    # Telegram saw the request go away unanswered, so the photo never reached the chat (had it
    # answered first, that one photo would be the known duplicate window: docs/architecture.md).
    wait_until(lambda: bool(fake.aborted), "the killed request was not seen to go away")
    code = dossier_code(sqlite_url)
    assert qr_photos(fake) == []
    assert reply_state(sqlite_url, submit["update_id"]) == ("sending", 0)

    web.start()
    fake.hold.set()
    # (Telegram got no answer from the webhook call, so it delivers the update again.) Its
    # turn is not run again; the replies it owes go out once — sent by this redelivery, or by
    # the dispatcher if the lease ran out while the process was coming back.
    assert deliver(fake, web, submit).status_code == 200
    wait_until(lambda: reply_state(sqlite_url, submit["update_id"]) == ("sent", 2), "not sent")
    assert_one_code_and_qr(fake, code)
    menu = [c for c in fake.delivered if c.method == "sendMessage"][-1]
    assert menu.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "menu:submit"
    assert deliver(fake, web, submit).status_code == 200  # and again: nothing more
    time.sleep(3)  # past the lease: the dispatcher finds nothing owed either
    assert_one_code_and_qr(fake, code)


def test_replies_a_dead_process_left_are_finished_by_the_dispatcher(
    web: WebProcess, telegram: tuple[FakeTelegram, str], sqlite_url: str
) -> None:
    """Without a redelivery (the process died after Telegram had its answer), the replies still
    owed are sent by the restarted process's dispatcher once their lease is over."""
    fake, _ = telegram
    chat = Updates(chat_id=515151)
    to_review(fake, web, chat)
    submit = chat.button("review:submit")
    fake.hold.clear()
    fake.waiting.clear()
    with httpx.Client(base_url=web.base, timeout=60) as client:
        call = threading.Thread(
            target=lambda: _ignore_errors(
                client.post, HOOK, json=submit,
                headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
            ),
            daemon=True,
        )  # fmt: skip
        call.start()
        assert fake.waiting.wait(20)
        web.kill()
        call.join(10)
    wait_until(lambda: bool(fake.aborted), "the killed request was not seen to go away")
    code = dossier_code(sqlite_url)
    fake.hold.set()
    web.start()
    wait_until(lambda: len(qr_photos(fake)) == 1, "the dispatcher did not send the code", 30)
    wait_until(lambda: reply_state(sqlite_url, submit["update_id"]) == ("sent", 2), "not settled")
    time.sleep(1)
    assert_one_code_and_qr(fake, code)


def test_an_answer_telegram_never_got_is_sent_on_the_redelivery_once(
    web: WebProcess, telegram: tuple[FakeTelegram, str], sqlite_url: str
) -> None:
    """A one-text turn is answered inside the webhook response; when that response is lost, the
    redelivered update gets the same reply through the Bot API, once — and the turn is not run
    again (the language switch would switch back)."""
    fake, _ = telegram
    chat = Updates(chat_id=616161)
    assert deliver(fake, web, chat.text("/start")).status_code == 200
    switch = chat.button("menu:language")
    with httpx.Client(base_url=web.base, timeout=30) as client:  # Telegram never reads this
        lost = client.post(
            HOOK, json=switch, headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
        )
    assert lost.json()["method"] == "sendMessage"  # the reply was in the lost answer
    assert reply_state(sqlite_url, switch["update_id"]) == ("answered", 0)
    before = len(fake.delivered)

    deliver(fake, web, switch)
    deliver(fake, web, switch)
    again = fake.delivered[before:]
    assert [c.method for c in again] == ["sendMessage"]
    assert again[0].params["text"] == lost.json()["text"]
    assert again[0].params["text"] == "What would you like to do?"  # the English menu
    assert reply_state(sqlite_url, switch["update_id"]) == ("sent", 1)
    deliver(fake, web, chat.text("menu"))  # still in English: the switch ran once
    assert fake.calls[-1].params["text"] == lost.json()["text"]


def _ignore_errors(function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server was killed mid-call: the point
        function(*args, **kwargs)
