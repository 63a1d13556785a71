"""A full media disk: the citizen is told to send the photo again later, the webhook answers 200
(Telegram would otherwise redeliver into the same error forever), the operators see it, and the
same photo is accepted once there is room again.

The disk is a real one: a small tmpfs mounted for the test and filled up, so the error is the
kernel's own ENOSPC, not a simulated one.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.messages import render
from core.staff import Role
from tests import images
from tests.bots.test_telegram_citizen import bot_app, last_text, post
from tests.conftest import unavailable
from tests.fakes.telegram import FakeTelegram, Updates
from tests.webhook.test_admin import first_agency, signed_in
from webhook.settings import Settings


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB filesystem of the test's own (needs root, as in CI)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs for the full-disk test: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write until the kernel says the disk is full; the filler file, to free the room later."""
    filler = disk / "filler"
    with filler.open("wb") as file:
        try:
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_photo_on_a_full_disk_is_answered_and_accepted_once_there_is_room(
    telegram_settings: Settings, telegram: tuple[FakeTelegram, str], small_disk: Path
) -> None:
    fake, _ = telegram
    chat = Updates()
    settings = telegram_settings.model_copy(
        update={"media_dir": small_disk / "media", "metrics_token": SecretStr("metrics-token-1")}
    )
    scrape = {"Authorization": "Bearer metrics-token-1"}
    with bot_app(settings, fake) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        catalog = runtime.catalog
        agency = catalog.receiving_agencies(catalog.procedure_by_slug("ho-kinh-doanh"))[0]
        for update in (chat.text("ho kinh doanh"), chat.button("req:start"),
                       chat.button(f"agency:{agency.code}"), chat.text("Nguyễn Thị Mai"),
                       chat.contact("+84912345678")):  # fmt: skip
            assert post(client, update) == 200
        assert "Giấy tờ 1/3" in last_text(fake)
        assert client.get("/healthz").json()["media"] == "ok"

        filler = fill(small_disk)
        photo = images.good_jpeg(7)
        fake.add_file("photo-full", photo)
        assert post(client, chat.photo("photo-full")) == 200  # not redelivered forever
        assert render("chat.storage_busy", "vi") in last_text(fake)
        assert "Đã nhận" not in last_text(fake)
        health = client.get("/healthz")
        assert health.status_code == 200  # lookups and text still work: keep it in rotation
        assert health.json()["ok"] is False
        assert health.json()["media"] == "error: No space left on device"
        assert "hcc_media_store_up 0.0" in client.get("/metrics", headers=scrape).text
        # the panel, same process
        browser = TestClient(client.app, base_url="https://testserver", follow_redirects=False)
        admin = signed_in(browser, runtime, "an.sys", first_agency(catalog), Role.SYSTEM_ADMIN)
        page = admin.get("/admin/deliveries")
        banner = render("admin.system.media_unavailable", "vi", reason="No space left on device")
        assert banner in page.text  # type: ignore[attr-defined]
        assert not list((small_disk / "media").rglob("*.jpg"))  # nothing half-written kept

        filler.unlink()
        fake.add_file("photo-again", photo)
        assert post(client, chat.photo("photo-again")) == 200
        assert "Đã nhận 1 ảnh" in last_text(fake)
        assert len(list((small_disk / "media").rglob("*.jpg"))) == 1
        assert client.get("/healthz").json()["media"] == "ok"
        assert "hcc_media_store_up 1.0" in client.get("/metrics", headers=scrape).text
        assert banner not in admin.get("/admin/deliveries").text  # type: ignore[attr-defined]
