"""Outbound delivery: one `Sender` per channel behind one interface, and `deliver`, the single
code path that takes one outbox message to the citizen (called inline by the web process in the
embedded mode, or by an rq job when Redis is configured).

Senders are synchronous (rq jobs are plain functions); they raise `Unreachable` when the person
cannot be reached on that channel (fallback to SMS, or what the sender names), `TryLater` for a
temporary problem (with the wait the service asked for, if any) and `Rejected` when retrying
cannot help. Two optional protocols keep `deliver` free of channel names: a `Rerouting` sender
says before sending whether its channel can reach the citizen now and where a notice goes when
it cannot (Zalo's 7-day window); a `NoticeSender` sends the notice itself rather than its text
(a template message is an approved form filled with the notice's values).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bots.telegram import telegram_calls
from core.channels import Channel, Contact
from core.notices import notice_reply
from core.replies import Reply
from core.sms import sms_parts
from storage.db import database_unavailable, session_scope, single_statements
from storage.inbound import OwedReplies, replies_went_out
from storage.outbox import (
    Claimed,
    channel_contact,
    claim,
    mark_dead,
    mark_sent,
    reroute,
    retry_later,
)

log = logging.getLogger(__name__)

# Waits up to this long (our throttle's slot, or one 429's retry_after) are slept inside the
# job; a longer one is not (it would hold a worker): the message is rescheduled.
MAX_INLINE_WAIT = 5.0
DEFAULT_RETRY_AFTER = 5.0  # a 429 that does not say how long to wait
BOT_LIMIT_WINDOW = 1.0  # 429s of two chats this close together: the bot's limit was hit


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
    def send(self, recipient: str, reply: Reply) -> str | None:
        """Send; the service's id of the (last) message sent, when it gives one (receipts)."""
        ...


@runtime_checkable
class Rerouting(Protocol):
    """A sender whose channel cannot carry every notice to everyone now (Zalo: only within 7
    days of the citizen's last interaction, never after an unfollow)."""

    def unreachable_reason(self, contact: Contact | None, now: datetime) -> str | None:
        """Why a notice cannot go on this channel to this citizen now; None: it can."""
        ...

    def fallback(self, template: str) -> str:
        """The channel a notice goes by instead (also when a send was refused as unreachable)."""
        ...


@runtime_checkable
class NoticeSender(Protocol):
    """A sender that sends the outbox notice itself (key and values), not its rendered text."""

    def send_notice(self, message: Claimed) -> str | None: ...


class Throttle(Protocol):
    """Sending slots per key (a chat, a bot), shared by everyone who sends through the key."""

    def reserve(self, key: str, interval: float, limit: float = math.inf) -> float:
        """Book the next free slot of `key` (one per `interval` seconds); seconds to wait for it.
        A slot more than `limit` seconds away is not booked (the caller will not wait for it)."""
        ...

    def hold(self, key: str, seconds: float) -> None:
        """No slot of `key` before `seconds` from now: the service asked us to wait."""
        ...

    def refused(self, key: str, member: str, window: float) -> int:
        """Note that `member` was refused now; how many members were refused in the last
        `window` seconds, this one included."""
        ...


class MemoryThrottle:
    """Slots kept in this process: enough when one process sends (the embedded mode)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next: dict[str, float] = {}
        self._refusals: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str, interval: float, limit: float = math.inf) -> float:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(key, 0.0))
            if slot - now <= limit:
                self._next[key] = slot + interval
            return slot - now

    def hold(self, key: str, seconds: float) -> None:
        with self._lock:
            self._next[key] = max(self._next.get(key, 0.0), self._clock() + seconds)

    def refused(self, key: str, member: str, window: float) -> int:
        with self._lock:
            now = self._clock()
            recent = {
                name: at for name, at in self._refusals.get(key, {}).items() if at > now - window
            }
            recent[member] = now
            self._refusals[key] = recent
            return len(recent)


class RedisThrottle:
    """Slots kept in Redis, shared by every worker on every machine (Redis's clock for all)."""

    _NOW = """
    local t = redis.call('TIME')
    local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    """
    _RESERVE = (
        _NOW
        + """
    local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
    local interval, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
    if slot - now <= limit then
        redis.call('SET', KEYS[1], tostring(slot + interval), 'PX',
                   math.ceil((slot + interval - now) * 1000) + 1000)
    end
    return tostring(slot - now)
    """
    )
    _HOLD = (
        _NOW
        + """
    local free = math.max(now + tonumber(ARGV[1]), tonumber(redis.call('GET', KEYS[1]) or '0'))
    redis.call('SET', KEYS[1], tostring(free), 'PX', math.ceil((free - now) * 1000) + 1000)
    """
    )
    _REFUSED = (
        _NOW
        + """
    local window = tonumber(ARGV[2])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
    redis.call('ZADD', KEYS[1], now, ARGV[1])
    redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
    return redis.call('ZCARD', KEYS[1])
    """
    )

    def __init__(self, redis: Any, prefix: str = "hcc:throttle:") -> None:
        self._prefix = prefix
        self._reserve = redis.register_script(self._RESERVE)
        self._hold = redis.register_script(self._HOLD)
        self._refused = redis.register_script(self._REFUSED)

    def reserve(self, key: str, interval: float, limit: float = math.inf) -> float:
        args = [interval, min(limit, 1e9)]  # Lua's tonumber() may not read "inf"
        return float(self._reserve(keys=[self._prefix + key], args=args))

    def hold(self, key: str, seconds: float) -> None:
        self._hold(keys=[self._prefix + key], args=[seconds])

    def refused(self, key: str, member: str, window: float) -> int:
        return int(self._refused(keys=[self._prefix + key], args=[member, window]))


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
        name: str = "telegram",  # the bot's throttle keys: each bot has Telegram's limits
    ) -> None:
        self.client, self.throttle, self.name = client, throttle, name
        self.base = f"{api_base.rstrip('/')}/bot{token}"
        self.per_second, self.per_chat_interval = per_second, per_chat_interval

    def send(self, recipient: str, reply: Reply) -> None:
        for call in telegram_calls(recipient, reply):
            if call.photo is None:
                self._call(recipient, call.method, json_body=call.params)
                continue
            form = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in call.params.items()}
            photo = {"photo": ("image.png", call.photo, "image/png")}
            self._call(recipient, call.method, data=form, files=photo)

    def _call(
        self,
        chat: str,
        method: str,
        *,
        json_body: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
    ) -> str | None:
        """One Bot API call within the limits; the id of the message it sent, if any."""
        wait = self.throttle.reserve(
            f"{self.name}:chat:{chat}", self.per_chat_interval, MAX_INLINE_WAIT
        )
        if self.per_second > 0 and wait <= MAX_INLINE_WAIT:
            bot_wait = self.throttle.reserve(
                f"{self.name}:bot", 1 / self.per_second, MAX_INLINE_WAIT
            )
            wait = max(wait, bot_wait)
        if wait > MAX_INLINE_WAIT:
            raise TryLater("telegram: over the sending rate", retry_after=wait)
        if wait > 0:
            time.sleep(wait)
        try:
            return self._post(chat, method, json_body, data, files)
        except TryLater as error:  # only a 429 carries retry_after here
            if error.retry_after is None or error.retry_after > MAX_INLINE_WAIT:
                raise
            time.sleep(error.retry_after)  # a short 429 is waited out once, then rescheduled
            return self._post(chat, method, json_body, data, files)

    def _post(
        self,
        chat: str,
        method: str,
        json_body: dict[str, Any] | None,
        data: dict[str, Any] | None,
        files: dict[str, Any] | None,
    ) -> str | None:
        try:
            response = self.client.post(
                f"{self.base}/{method}", json=json_body, data=data, files=files
            )
        except httpx.HTTPError as error:
            raise TryLater(f"telegram: {type(error).__name__}: {error}") from error
        if response.status_code == 429:
            self._hold(chat, _retry_after(response))
        _raise_for_telegram(response)
        try:
            result = response.json().get("result")
        except ValueError:
            return None
        if isinstance(result, dict) and "message_id" in result:
            return str(result["message_id"])
        return None

    def _hold(self, chat: str, seconds: float) -> None:
        """After a 429, nothing more to this chat until Telegram's `retry_after` has passed.
        The answer does not say whether the chat's limit or the bot's was hit: when chats are
        refused together (two within `BOT_LIMIT_WINDOW`), it is the bot's, so the bot is held
        too; one chat refused alone leaves the others sending."""
        self.throttle.hold(f"{self.name}:chat:{chat}", seconds)
        if self.throttle.refused(f"{self.name}:refused", chat, BOT_LIMIT_WINDOW) > 1:
            self.throttle.hold(f"{self.name}:bot", seconds)


def _retry_after(response: httpx.Response) -> float:
    """The wait a 429 asks for (Telegram puts it in the body's `parameters`)."""
    try:
        parameters = response.json().get("parameters") or {}
    except ValueError:
        parameters = {}
    return float(parameters.get("retry_after", DEFAULT_RETRY_AFTER))


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
        raise TryLater(description, retry_after=_retry_after(response))
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
            sms_gateway_call(
                "sms gateway", self.client, "POST", self.url, json=body, headers=self.headers
            )


def sms_gateway_call(
    name: str, client: httpx.Client, method: str, url: str, **options: Any
) -> httpx.Response:
    """One request to an SMS gateway's send API, its failures sorted the one way every gateway
    sender needs: unreachable, 429 or 5xx → later; another 4xx → refused for good."""
    try:
        response = client.request(method, url, **options)
    except httpx.HTTPError as error:
        raise TryLater(f"{name}: {type(error).__name__}: {error}") from error
    if response.status_code == 429 or response.status_code >= 500:
        retry_after = response.headers.get("retry-after")
        raise TryLater(
            f"{name} {response.status_code}",
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    if response.status_code >= 400:
        raise Rejected(f"{name} {response.status_code}: {response.text[:200]}")
    return response


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


T = TypeVar("T")
# The part of the lease kept free after the last try to record an outcome: room for clocks of
# two machines that differ a little, and for that try's own round trip.
LEASE_MARGIN = 0.2
RECORD_FIRST_PAUSE, RECORD_MAX_PAUSE = 0.05, 1.0


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
    """Send one outbox message at most once: claim it, send it, record what happened.

    Once the service has answered, the outcome is recorded even through a database blip: the
    write is retried until the database answers, for as long as the claim's lease leaves before
    another worker may take the message (a duplicate is then possible, and the write gives up)."""
    now = now or datetime.now(UTC)
    claimed_at = time.monotonic()
    with single_statements(engine) as connection:  # the claim and "sent" are one statement each
        message = claim(connection, message_id, now, lease)
    if message is None:
        return Outcome("skipped")
    until = claimed_at + lease.total_seconds() * (1 - LEASE_MARGIN)
    sender = senders.get(message.channel)
    fallback = sender.fallback(message.template) if isinstance(sender, Rerouting) else Channel.SMS
    try:
        if sender is None:
            raise Unreachable(f"{message.channel}: channel not configured")
        sent_ref = _send(engine, sender, message, now)
    except DeliveryError as error:
        return Outcome(_record_failure(engine, message, now, error, until, fallback), str(error))
    except Exception as error:  # a bug or an unforeseen failure: keep the message, retry later
        log.exception("delivering outbox message %s failed", message.id)
        unforeseen = TryLater(f"{type(error).__name__}: {error}")
        state = _record_failure(engine, message, now, unforeseen, until, fallback)
        return Outcome(state, str(error))

    def record_sent() -> str:
        with single_statements(engine) as connection:
            mark_sent(connection, message.id, datetime.now(UTC), sent_ref)
        return "sent"

    return Outcome(_until_recorded(record_sent, message.id, until))


def _send(engine: Engine, sender: Sender, message: Claimed, now: datetime) -> str | None:
    """The one send of a claimed message, by whatever the sender takes."""
    if isinstance(sender, Rerouting):
        with session_scope(engine) as session:
            contact = channel_contact(session, message.channel, message.recipient)
        reason = sender.unreachable_reason(contact, now)
        if reason is not None:  # known in advance: not worth a refused call
            raise Unreachable(f"{message.channel}: {reason}")
    if isinstance(sender, NoticeSender):
        return sender.send_notice(message)
    lang = message.values.get("language", "vi")
    return sender.send(message.recipient, notice_reply(message.template, message.values, lang))


def _record_failure(
    engine: Engine,
    message: Claimed,
    now: datetime,
    error: DeliveryError,
    until: float,
    fallback: str,
) -> str:
    """Where a message goes after a failed send: the fallback channel (unreachable), later, or
    the dead letters."""

    def step(session: Session) -> str:
        if isinstance(error, Unreachable):
            return reroute(session, message, now, str(error), fallback)
        if isinstance(error, TryLater):
            wait = timedelta(seconds=error.retry_after) if error.retry_after is not None else None
            return retry_later(
                session, message, now, str(error), wait=wait, counts=error.retry_after is None
            )
        mark_dead(session, message.id, str(error))
        return "dead"

    def record() -> str:
        with session_scope(engine) as session:
            return step(session)

    return _until_recorded(record, message.id, until)


def _until_recorded(write: Callable[[], T], message_id: int, until: float) -> T:
    """`write`, tried again with backoff while the database is unreachable, until the monotonic
    time `until`; then the error goes up and the expired lease lets the message be sent again."""
    pause = RECORD_FIRST_PAUSE
    while True:
        try:
            return write()
        except Exception as error:
            if not database_unavailable(error) or time.monotonic() + pause > until:
                raise
            log.warning(
                "recording outbox message %s: database unavailable (%s); trying again in %.2f s",
                message_id,
                type(error).__name__,
                pause,
            )
            time.sleep(pause)
            pause = min(pause * 2, RECORD_MAX_PAUSE)


async def send_owed_replies_async(
    owed: OwedReplies,
    send: Callable[[Reply], Awaitable[object]],
    went_out: Callable[[int], Awaitable[None]],
) -> int:
    """`send_owed_replies` for a sender on the event loop: the same order, the same record of
    each reply once it is out (`went_out(count)`), the same handling of failures."""
    done = owed.sent
    try:
        for reply in owed.unsent:
            await send(reply)
            done += 1
            await went_out(done)
    except TryLater as error:
        log.warning("replies to %s %s wait: %s", owed.channel, owed.recipient, error)
    except DeliveryError as error:
        log.warning("replies to %s %s dropped: %s", owed.channel, owed.recipient, error)
        await went_out(len(owed.replies))
    return done - owed.sent


def send_owed_replies(engine: Engine, sender: Sender, owed: OwedReplies) -> int:
    """Send the replies a dialogue turn still owes, in order, each recorded once it is out; how
    many went. A temporary failure leaves the rest for whoever finds the lease over (the
    dispatcher); a refusal that retrying cannot help drops them."""
    done = owed.sent
    try:
        for reply in owed.unsent:
            sender.send(owed.recipient, reply)
            done += 1
            with single_statements(engine) as connection:
                replies_went_out(connection, owed, done)
    except TryLater as error:
        log.warning("replies to %s %s wait: %s", owed.channel, owed.recipient, error)
    except DeliveryError as error:
        log.warning("replies to %s %s dropped: %s", owed.channel, owed.recipient, error)
        with single_statements(engine) as connection:
            replies_went_out(connection, owed, len(owed.replies))
    return done - owed.sent
