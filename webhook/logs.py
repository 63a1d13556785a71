"""Secrets never reach a log: every record of every logger (ours, aiohttp's, httpx's, uvicorn's)
has Telegram bot tokens (`bot<digits>:<token>`, as in the Bot API's URLs) and the value of every
configured secret setting masked — in its message, its arguments, its exception and stack text.

Installed once per process at start (`create_app`, the `hcc` command line) as a log record
factory, so it holds whatever handlers are configured later.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import SecretStr

from webhook.settings import Settings

MASK = "***"
BOT_TOKEN = re.compile(r"(bot\d+):[A-Za-z0-9_-]+")
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words; no real secret is that short
_secrets: set[str] = set()
_installed = False


def mask(text: str) -> str:
    """`text` with every bot token and configured secret replaced by ***."""
    text = BOT_TOKEN.sub(rf"\1:{MASK}", text)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def secret_values(settings: Settings) -> set[str]:
    """The values of all secret settings (tokens, keys, webhook secrets) that are set."""
    values = set()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if len(secret) >= MIN_SECRET_LENGTH:
                values.add(secret)
    return values


def install_secret_masking(settings: Settings) -> None:
    """Mask tokens and `settings`' secrets in every log record made from now on."""
    global _installed
    _secrets.update(secret_values(settings))
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _mask_record(record)
        return record

    logging.setLogRecordFactory(masked_record)
    _installed = True


def _mask_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        record.msg = mask(record.msg)
    if isinstance(record.args, tuple):  # kept a tuple: uvicorn's access lines read its items
        record.args = tuple(_mask_argument(argument) for argument in record.args)
    elif isinstance(record.args, dict):
        record.args = {key: _mask_argument(value) for key, value in record.args.items()}
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = mask(record.stack_info)


def _mask_argument(argument: Any) -> Any:
    if isinstance(argument, (int, float, bool)) or argument is None:
        return argument
    text = str(argument)  # an exception or URL object: what %s would print
    masked = mask(text)
    if masked != text:
        return masked
    return argument
