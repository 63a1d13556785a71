"""The web chat on phones, kiosks and keyboards, in a real Chromium: a whole submission fits a
360 px screen, icons need no emoji font, phone photos are shrunk before sending, the kiosk counts
down before it starts over, and axe-core finds nothing serious."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from core.messages import render
from tests import images
from tests.browser import (
    PHONES,
    axe_violations,
    chromium_page,
    emoji_in_buttons,
    outside_the_screen,
)
from tests.servers import live_server
from webhook.app import create_app
from webhook.settings import Settings

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def _fits(page: Any, step: str) -> None:
    page.wait_for_timeout(50)  # the replies' layout
    assert outside_the_screen(page) == [], step
    assert emoji_in_buttons(page) == [], step


@pytest.mark.parametrize("phone", PHONES)
def test_a_whole_submission_fits_a_phone_screen(
    settings: Settings, tmp_path: Path, phone: str
) -> None:
    app = create_app(settings)
    photo = tmp_path / "giay-to.jpg"
    photo.write_bytes(images.good_jpeg(3))
    with live_server(app) as base, chromium_page(**PHONES[phone]) as page:
        page.goto(f"{base}/chat")
        page.wait_for_selector("text=Xin chào")
        _fits(page, "welcome")
        page.click("button[data-action='menu:submit']")
        page.wait_for_selector("button[data-action^='proc:']")
        _fits(page, "procedures")
        page.click("button[data-action^='proc:'] >> text=Đăng ký khai tử")
        page.wait_for_selector("button[data-action='req:start']")
        _fits(page, "requirements")
        page.click("button[data-action='req:start'] >> nth=-1")
        page.wait_for_selector("button[data-action^='agency:']")
        _fits(page, "agencies")
        page.click("button[data-action^='agency:'] >> nth=0")
        page.wait_for_selector("text=Họ và tên")
        _fits(page, "name")
        page.fill("#text", "Võ Văn Kiệt")
        page.press("#text", "Enter")
        page.wait_for_selector("text=Số điện thoại di động")
        _fits(page, "phone")
        page.fill("#text", "0912345678")
        page.press("#text", "Enter")
        for number in (1, 2, 3):
            page.wait_for_selector(f"text=Giấy tờ {number}/3")
            _fits(page, f"paper {number}")
            page.set_input_files("#files", str(photo))
            page.wait_for_selector(f"text=Đã nhận 1 ảnh >> nth={number - 1}")
            _fits(page, f"paper {number} received")
            page.click("button[data-action='doc:done'] >> nth=-1")
        page.wait_for_selector("text=Kiểm tra lại trước khi nộp")
        _fits(page, "review")
        page.click("button[data-action='review:submit']")
        page.wait_for_selector("text=Đã nộp hồ sơ")
        _fits(page, "submitted")
    app.state.runtime.engine.dispose()


def test_a_big_phone_photo_is_sent_smaller_with_its_progress(
    settings: Settings, tmp_path: Path
) -> None:
    app = create_app(settings)
    big = tmp_path / "IMG_0001.jpg"
    big.write_bytes(images.jpeg(images.document_photo(4000, 3000)))
    with live_server(app) as base, chromium_page(**PHONES["360x740"]) as page:
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
        page.wait_for_selector("text=Giấy tờ 1/3")
        page.set_input_files("#files", str(big))
        page.wait_for_selector(".upload progress")
        page.wait_for_selector(".upload li.sent")
        page.wait_for_selector("text=Đã nhận 1 ảnh")
        assert page.eval_on_selector(".upload progress", "bar => bar.value") == 100
        _fits(page, "after the upload")
    # The server keeps an upright JPEG as it came (less its metadata): what it stored was sent.
    (stored,) = [path for path in Path(settings.media_dir).rglob("*") if path.is_file()]
    with Image.open(stored) as received:
        assert max(received.size) == 2560
    assert stored.stat().st_size < big.stat().st_size * 0.8
    app.state.runtime.engine.dispose()


def test_a_file_the_page_refuses_is_named_with_the_reason(
    settings: Settings, tmp_path: Path
) -> None:
    """A PDF over 20 MB is not shrunk: its row says why, the other file is sent."""
    app = create_app(settings)
    huge = tmp_path / "ban-scan.pdf"
    huge.write_bytes(b"%PDF-1.4\n" + b"0" * (21 * 1024 * 1024))
    photo = tmp_path / "anh.jpg"
    photo.write_bytes(images.good_jpeg(2))
    with live_server(app) as base, chromium_page() as page:
        page.goto(f"{base}/chat")
        page.wait_for_selector("text=Xin chào")
        page.set_input_files("#files", [str(huge), str(photo)])
        page.wait_for_selector(".upload li.failed")
        failed = page.inner_text(".upload li.failed")
        assert "ban-scan.pdf" in failed
        assert render("webchat.file_too_large", "vi", limit_mb=20) in failed
        page.wait_for_selector(".upload li.sent >> text=anh.jpg")
    app.state.runtime.engine.dispose()


def test_the_kiosk_counts_down_before_it_starts_over(settings: Settings) -> None:
    app = create_app(settings)
    with live_server(app) as base, chromium_page(**PHONES["414x896"]) as page:
        page.clock.install()
        page.goto(f"{base}/chat?kiosk=1")
        page.wait_for_selector("text=Xin chào")
        assert page.inner_text("#end") == render("webchat.end_kiosk", "vi")
        height = page.eval_on_selector("button[data-action='menu:submit']", "b => b.offsetHeight")
        assert height >= 56  # a finger, not a mouse
        assert page.is_hidden("#idle")
        page.clock.run_for("04:35")
        page.wait_for_selector("#idle")
        shown = page.inner_text("#idle-text")  # counted down: 25 or 26 seconds left
        assert shown in {render("webchat.idle_warning", "vi", seconds=n) for n in (25, 26)}
        page.click("#idle-stay")  # still here: the session goes on
        assert page.is_hidden("#idle")
        page.clock.run_for("04:35")
        page.wait_for_selector("#idle")
        with page.expect_navigation():
            page.clock.run_for("00:30")  # nobody: the next person starts over
        page.wait_for_selector("text=Xin chào")
    app.state.runtime.engine.dispose()


def test_a_submission_starts_with_the_keyboard_only(settings: Settings) -> None:
    app = create_app(settings)
    with live_server(app) as base, chromium_page() as page:
        page.goto(f"{base}/chat")
        page.wait_for_selector("button[data-action='menu:submit']")
        for _ in range(40):  # Tab reaches the menu's buttons; Enter presses one
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.dataset.action") == "menu:submit":
                break
        else:
            raise AssertionError("Tab never reached the menu's Submit button")
        page.keyboard.press("Enter")
        page.wait_for_selector("button[data-action^='proc:']")
        for _ in range(60):  # Tab reaches the text box; typing and Enter send
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "text":
                break
        else:
            raise AssertionError("Tab never reached the text box")
        page.keyboard.type("khai tử")
        page.keyboard.press("Enter")
        page.wait_for_selector(".msg.me >> text=khai tử")
        page.wait_for_selector("button[data-action='req:start']")
    app.state.runtime.engine.dispose()


@pytest.mark.parametrize("kiosk", ["", "?kiosk=1"])
def test_the_chat_has_no_serious_accessibility_violations(settings: Settings, kiosk: str) -> None:
    app = create_app(settings)
    with live_server(app) as base, chromium_page(**PHONES["360x740"]) as page:
        page.goto(f"{base}/chat{kiosk}")
        page.wait_for_selector("button[data-action='menu:submit']")
        assert page.get_attribute("html", "lang") == "vi"
        assert axe_violations(page) == []
        page.click("button[data-action='menu:submit']")
        page.wait_for_selector("button[data-action^='proc:']")
        assert axe_violations(page) == []
    app.state.runtime.engine.dispose()
