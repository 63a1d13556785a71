"""Photos on S3 through the Telegram webhook: a store that stops answering in time gets the
citizen "send it again later" within the configured timeouts (the webhook answers 200, so
Telegram does not redeliver into the same wait), /healthz says so, and the same photo is kept once
the store answers again."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from core.messages import render
from tests import images
from tests.bots.test_telegram_citizen import bot_app, last_text, post
from tests.fakes.s3 import DelayProxy, S3Bucket
from tests.fakes.telegram import FakeTelegram, Updates
from tests.storage.test_media_s3 import complete
from webhook.settings import Settings


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_photo_on_a_slow_s3_store_is_answered_resend_later(
    telegram_settings: Settings,
    telegram: tuple[FakeTelegram, str],
    slow_s3: tuple[S3Bucket, DelayProxy],
) -> None:
    fake, _ = telegram
    bucket, proxy = slow_s3
    settings = telegram_settings.model_copy(update={
        "media_url": bucket.url, "s3_endpoint_url": bucket.endpoint, "s3_region": "us-east-1",
        "s3_access_key_id": "test", "s3_secret_access_key": SecretStr("test"),
        "s3_read_timeout_seconds": 0.5, "s3_max_attempts": 2,
    })  # fmt: skip
    chat = Updates()
    with bot_app(settings, fake) as client:
        catalog = client.app.state.runtime.catalog  # type: ignore[attr-defined]
        agency = catalog.receiving_agencies(catalog.procedure_by_slug("ho-kinh-doanh"))[0]
        for update in (chat.text("ho kinh doanh"), chat.button("req:start"),
                       chat.button(f"agency:{agency.code}"), chat.text("Nguyễn Thị Mai"),
                       chat.contact("+84912345678")):  # fmt: skip
            assert post(client, update) == 200
        assert "Giấy tờ 1/3" in last_text(fake)
        assert client.get("/healthz").json()["media"] == "ok"

        proxy.delay = 10.0
        photo = images.good_jpeg(7)
        fake.add_file("photo-slow", photo)
        started = time.monotonic()
        assert post(client, chat.photo("photo-slow")) == 200
        assert time.monotonic() - started < 6  # 2 × (0.5 s + 1 s), not the store's 10 s
        assert render("chat.storage_busy", "vi") in last_text(fake)
        assert client.get("/healthz").json()["media"] == "error: ReadTimeoutError"
        assert complete(bucket.objects())  # at most the whole photo, its answer lost

        proxy.delay = 0.0
        fake.add_file("photo-again", photo)
        assert post(client, chat.photo("photo-again")) == 200
        assert "Đã nhận 1 ảnh" in last_text(fake)
        assert len(bucket.objects()) == 1  # the checked (re-encoded) photo
        assert client.get("/healthz").json()["media"] == "ok"
