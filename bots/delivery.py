"""Outbound delivery: one `Sender` per channel behind one interface, and `deliver`, the single
code path that takes one outbox message to the citizen (called inline by the web process in the
embedded mode, or by an rq job when Redis is configured).

Senders are synchronous (rq jobs are plain functions); they raise `Unreachable` when the person
cannot be reached on that channel (fallback to SMS), `TryLater` for a temporary problem (with
the wait the service asked for, if any) and `Rejected` when retrying cannot help.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
from sqlalchemy.engine import Engine

from core.conversation import Reply, notice_reply
from core.sms import sms_parts
from storage.db import session_scope, single_statements
from storage.outbox import claim, mark_dead, mark_sent, reroute_to_sms, retry_later

log = logging.getLogger(__name__)

TELEGRAM_TEXT_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024
# Waits up to this long (our throttle's slot, or one 429's retry_after) are slept inside the
# job; a longer one is not (it would hold a worker): the message is rescheduled.
MAX_INLINE_WAIT = 5.0


class DeliveryError(Exception):
    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unreachable(DeliveryError):
    """This person cannot be reached on this channel (blocked the bot, chat gone, no channel)."""


class TryLater(DeliveryError):
    """A temporary failure: the service is down, slow, or asked us to wait."""


class Rejected(DeliveryError):
    """The service refused the message itself; sending it again cannot help."""


class Sender(Protocol):
    def send(self, recipient: str, reply: Reply) -> None: ...


class Throttle(Protocol):
    def reserve(self, key: str, interval: float) -> float:
        """Book the next free slot of `key` (one per `interval` seconds); seconds to wait for it."""
        ...


class MemoryThrottle:
    """Slots kept in this process: enough when one process sends (the embedded mode)."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str, interval: float) -> float:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(key, 0.0))
            self._next[key] = slot + interval
            return slot - now


class RedisThrottle:
    """Slots kept in Redis, shared by every worker on every machine (Redis's clock for all)."""

    _SCRIPT = """
    local t = redis.call('TIME')
    local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
    local interval = tonumber(ARGV[1])
    redis.call('SET', KEYS[1], tostring(slot + interval), 'PX',
               math.ceil((slot + interval - now) * 1000) + 1000)
    return tostring(slot - now)
    """

    def __init__(self, redis: Any) -> None:
        self._reserve = redis.register_script(self._SCRIPT)

    def reserve(self, key: str, interval: float) -> float:
        return float(self._reserve(keys=[f"hcc:throttle:{key}"], args=[interval]))


class TelegramSender:
    """The citizen bot's Bot API: long texts split, images as photos, inline buttons kept, and
    Telegram's limits respected (about 30 messages/s per bot, 1/s per chat)."""

    def __init__(
        self,
        client: httpx.Client,
        token: str,
        api_base: str,
        throttle: Throttle,
        per_second: float = 30.0,
        per_chat_interval: float = 1.0,
    ) -> None:
        self.client, self.throttle = client, throttle
        self.base = f"{api_base.rstrip('/')}/bot{token}"
        self.per_second, self.per_chat_interval = per_second, per_chat_interval

    def send(self, recipient: str, reply: Reply) -> None:
        markup = None
        if reply.buttons:
            keyboard = [
                [{"text": b.label, "callback_data": b.data} for b in row] for row in reply.buttons
            ]
            markup = {"inline_keyboard": keyboard}
        text = reply.text
        if reply.image_png is not None:
            caption, text = text[:TELEGRAM_CAPTION_LIMIT], text[TELEGRAM_CAPTION_LIMIT:]
            self._call(
                recipient,
                "sendPhoto",
                data={"chat_id": recipient, "caption": caption}
                | ({"reply_markup": json.dumps(markup)} if markup and not text else {}),
                files={"photo": ("image.png", reply.image_png, "image/png")},
            )
        chunks = split_text(text, TELEGRAM_TEXT_LIMIT)
        for index, chunk in enumerate(chunks):
            body: dict[str, Any] = {"chat_id": recipient, "text": chunk}
            if markup and index == len(chunks) - 1:
                body["reply_markup"] = markup
            self._call(recipient, "sendMessage", json_body=body)

    def _call(
        self,
        chat: str,
        method: str,
        *,
        json_body: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
    ) -> None:
        wait = self.throttle.reserve(f"telegram:chat:{chat}", self.per_chat_interval)
        if self.per_second > 0:
            wait = max(wait, self.throttle.reserve("telegram:bot", 1 / self.per_second))
        if wait > MAX_INLINE_WAIT:
            raise TryLater("telegram: over the sending rate", retry_after=wait)
        if wait > 0:
            time.sleep(wait)
        try:
            _raise_for_telegram(self._post(method, json_body, data, files))
        except TryLater as error:  # only a 429 carries retry_after here
            if error.retry_after is None or error.retry_after > MAX_INLINE_WAIT:
                raise
            time.sleep(error.retry_after)  # a short 429 is waited out once, then rescheduled
            _raise_for_telegram(self._post(method, json_body, data, files))

    def _post(
        self,
        method: str,
        json_body: dict[str, Any] | None,
        data: dict[str, Any] | None,
        files: dict[str, Any] | None,
    ) -> httpx.Response:
        try:
            return self.client.post(f"{self.base}/{method}", json=json_body, data=data, files=files)
        except httpx.HTTPError as error:
            raise TryLater(f"telegram: {type(error).__name__}: {error}") from error


def _raise_for_telegram(response: httpx.Response) -> None:
    if response.status_code == 200:
        return
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    description = (
        f"telegram {response.status_code}: {answer.get('description', response.text[:200])}"
    )
    if response.status_code == 429:
        retry_after = float((answer.get("parameters") or {}).get("retry_after", 5))
        raise TryLater(description, retry_after=retry_after)
    if response.status_code == 403 or "chat not found" in description:
        raise Unreachable(description)  # the citizen blocked the bot or deleted the chat
    if response.status_code >= 500:
        raise TryLater(description)
    raise Rejected(description)


class SmsSender:
    """A generic HTTP SMS gateway: POST a JSON body built from a template, one request per part
    (unaccented GSM-7, at most 160 characters each)."""

    def __init__(
        self, client: httpx.Client, url: str, auth_header: str | None, body_template: str
    ) -> None:
        self.client, self.url = client, url
        self.headers: dict[str, str] = {}
        if auth_header:
            name, _, value = auth_header.partition(":")
            self.headers[name.strip()] = value.strip()
        self.body_template = json.loads(body_template)

    def send(self, recipient: str, reply: Reply) -> None:
        for part in sms_parts(reply.text):
            body = _fill(self.body_template, {"phone": recipient, "text": part})
            try:
                response = self.client.post(self.url, json=body, headers=self.headers)
            except httpx.HTTPError as error:
                raise TryLater(f"sms: {type(error).__name__}: {error}") from error
            if response.status_code == 429 or response.status_code >= 500:
                retry_after = response.headers.get("retry-after")
                raise TryLater(
                    f"sms gateway {response.status_code}",
                    retry_after=float(retry_after)
                    if retry_after and retry_after.isdigit()
                    else None,
                )
            if response.status_code >= 400:
                raise Rejected(f"sms gateway {response.status_code}: {response.text[:200]}")


def _fill(template: Any, values: Mapping[str, str]) -> Any:
    """The gateway's JSON body: every string in the template with {phone} and {text} filled in
    (values go in as JSON strings, so nothing the citizen typed can change the structure)."""
    if isinstance(template, str):
        for name, value in values.items():
            template = template.replace("{" + name + "}", value)
        return template
    if isinstance(template, dict):
        return {key: _fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(value, values) for value in template]
    return template


class MailboxSender:
    """Web chat and the staff panel: the message is shown where its reader looks (the chat page
    polls for it, the panel lists it), so being marked sent is the delivery."""

    def send(self, recipient: str, reply: Reply) -> None:
        return None


def split_text(text: str, limit: int) -> list[str]:
    """Texts longer than a channel allows, split at line breaks (or hard, for one huge line)."""
    if not text:
        return []
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) > limit:
            chunks.append(current)
            current = ""
        current += line
    if current:
        chunks.append(current)
    return [chunk.rstrip("\n") for chunk in chunks]


@dataclass(frozen=True)
class Outcome:
    state: str  # sent, pending (will retry), dead, rerouted, skipped (not ours to send)
    detail: str = ""


def deliver(
    engine: Engine,
    senders: Mapping[str, Sender],
    message_id: int,
    *,
    lease: timedelta,
    now: datetime | None = None,
) -> Outcome:
    """Send one outbox message at most once: claim it, send it, record what happened."""
    now = now or datetime.now(UTC)
    with single_statements(engine) as connection:  # the claim and "sent" are one statement each
        message = claim(connection, message_id, now, lease)
    if message is None:
        return Outcome("skipped")
    reply = notice_reply(message.template, message.values, message.values.get("language", "vi"))
    sender = senders.get(message.channel)
    try:
        if sender is None:
            raise Unreachable(f"{message.channel}: channel not configured")
        sender.send(message.recipient, reply)
    except Unreachable as error:
        with session_scope(engine) as session:
            state = reroute_to_sms(session, message, now, str(error))
        return Outcome(state, str(error))
    except TryLater as error:
        wait = timedelta(seconds=error.retry_after) if error.retry_after is not None else None
        with session_scope(engine) as session:
            state = retry_later(
                session, message, now, str(error), wait=wait, counts=error.retry_after is None
            )
        return Outcome(state, str(error))
    except Rejected as error:
        with session_scope(engine) as session:
            mark_dead(session, message.id, str(error))
        return Outcome("dead", str(error))
    except Exception as error:  # a bug or an unforeseen failure: keep the message, retry later
        log.exception("delivering outbox message %s failed", message.id)
        with session_scope(engine) as session:
            state = retry_later(session, message, now, f"{type(error).__name__}: {error}")
        return Outcome(state, str(error))
    with single_statements(engine) as connection:
        mark_sent(connection, message.id, datetime.now(UTC))
    return Outcome("sent")
