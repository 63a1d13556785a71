"""Secrets out of the logs (webhook/logs.py): bot tokens and every configured secret are masked
in a record's message, its arguments and its exception text, whichever logger made it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from webhook.logs import install_secret_masking
from webhook.settings import Settings

TOKEN = "7423988123:AAH-real-looking_token"
GATEWAY_KEY = "Bearer sms-gateway-key-42"
ZALO_SECRET = "zalo-oa-secret-9f3c"


def test_tokens_and_configured_secrets_are_masked_everywhere_in_a_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    install_secret_masking(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            media_dir=tmp_path,
            sms_gateway_auth_header=SecretStr(GATEWAY_KEY),
            zalo_oa_secret_key=SecretStr(ZALO_SECRET),
        )
    )
    url = f"https://api.telegram.org/file/bot{TOKEN}/photos/file_7.jpg"
    try:
        raise ConnectionError(f"404, message='Not Found', url='{url}'")
    except ConnectionError as error:
        with caplog.at_level(logging.INFO):
            logging.getLogger("aiohttp.client").error("download failed: %s", error, exc_info=True)
            logging.getLogger("bots.delivery").warning(
                "gateway refused %(header)s", {"header": f"Authorization: {GATEWAY_KEY}"}
            )
            logging.getLogger("anything").info(f"signature key {ZALO_SECRET} rejected")
    text = "\n".join(logging.Formatter().format(record) for record in caplog.records)
    assert "file_7.jpg" in text and "bot7423988123:***" in text  # what happened stays readable
    for secret in (TOKEN.split(":")[1], GATEWAY_KEY, ZALO_SECRET):
        assert secret not in text and secret not in caplog.text
