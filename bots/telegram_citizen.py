"""Citizen bot on Telegram (aiogram 3): translate updates into the core dialogue and back.

The web route checks the secret header and the replay guard; this module turns a Telegram
update into `Incoming`, runs one dialogue turn over storage, and sends the `Reply`s.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import aclosing
from datetime import timedelta
from functools import partial
from typing import Any, NamedTuple

import anyio
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import SendMessage, SendPhoto, TelegramMethod
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    Message,
    Update,
)

from bots.telegram import BotCall, telegram_calls
from core.channels import Channel
from core.conversation import Incoming, IncomingFile
from core.documents import MAX_BYTES
from core.geo import location
from core.messages import render
from core.replies import Reply
from storage.db import run_db, session_scope, single_statements
from storage.inbound import (
    OwedReplies,
    claim_owed_replies,
    first_delivery,
    owe_replies,
    park_album_part,
    replies_went_out,
    take_album,
)
from storage.intake import album_incoming, converse
from storage.models import utcnow
from storage.quick_turn import quick_turn

log = logging.getLogger(__name__)
CHANNEL = Channel.TELEGRAM
DOCUMENT_TYPES = ("image/", "application/pdf")


def make_bot(token: str, api_base: str) -> Bot:
    """A Bot whose every call goes to `api_base` (the public API, a local server, or a fake)."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_base.rstrip("/")))
    session.middleware(RetryAfter())
    return Bot(token=token, session=session)


class RetryAfter(BaseRequestMiddleware):
    """Honour Telegram's 429 `retry_after`: wait as told and try again, a few times at most.

    A wait longer than `max_wait` is not done inline (the web request would time out); the error
    goes up so the caller can leave the message for later.
    """

    def __init__(self, attempts: int = 3, max_wait: float = 10.0) -> None:
        self.attempts, self.max_wait = attempts, max_wait

    async def __call__(
        self, make_request: NextRequestMiddlewareType[Any], bot: Bot, method: TelegramMethod[Any]
    ) -> Any:
        for attempt in range(self.attempts):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                if attempt + 1 == self.attempts or error.retry_after > self.max_wait:
                    raise
                await asyncio.sleep(error.retry_after)
        raise AssertionError("unreachable")


def make_dispatcher(runtime: Any) -> Dispatcher:
    """One router for the citizen dialogue; `runtime` is the web app's Runtime."""
    router = Router(name="citizen")

    @router.callback_query()
    async def on_button(query: CallbackQuery, bot: Bot, event_update: Update) -> BotCall | None:
        await query.answer()
        if query.message is None or query.data is None:
            return None
        chat_id = query.message.chat.id
        if query.message.chat.type != "private":
            return one_line(chat_id, "chat.private_only")
        incoming = Incoming(button=query.data)
        return await _turn(runtime, bot, event_update.update_id, chat_id, incoming)

    # One message handler, not one per content type: aiogram runs plain (non-async) filters
    # such as F.text in a thread pool, a thread hop per filter per update.
    @router.message()
    async def on_message(message: Message, bot: Bot, event_update: Update) -> BotCall | None:
        chat_id = message.chat.id
        if message.chat.type != "private":  # a group is not one citizen: no dialogue there
            return one_line(chat_id, "chat.private_only")
        if message.contact is not None:
            incoming = Incoming(phone=message.contact.phone_number)
        elif message.photo or message.document:
            try:
                data = await _download(bot, message)
            except TooLarge:
                return one_line(chat_id, "chat.file_too_large_telegram")
            except DownloadFailed:
                return one_line(chat_id, "chat.download_failed")
            if message.media_group_id:  # one photo of an album: answer the album once, later
                await _park(runtime, bot, event_update, message, data)
                return None
            incoming = Incoming(text=message.caption or "", files=(IncomingFile(data),))
        elif message.text is not None:
            incoming = Incoming(text=message.text)
        elif message.location is not None:  # "send my location", a venue, a live location
            point = location(message.location.latitude, message.location.longitude)
            incoming = Incoming(location=point) if point else Incoming(unsupported=True)
        else:
            incoming = Incoming(unsupported=True)
        return await _turn(runtime, bot, event_update.update_id, chat_id, incoming)

    dispatcher = Dispatcher(disable_fsm=True)  # the dialogue keeps its own state (storage)
    dispatcher.include_router(router)
    return dispatcher


class TooLarge(Exception):
    """The file is over MAX_BYTES: Telegram said so, or more bytes came than that."""


class DownloadFailed(Exception):
    """The file could not be fetched (getFile refused, the file server failed, a path we do not
    follow): the citizen is asked to send it again."""


def one_line(chat_id: int, key: str) -> BotCall:
    """One sentence to the chat, as the webhook's answer (nothing to store, nothing to await)."""
    return BotCall("sendMessage", {"chat_id": chat_id, "text": render(key)})


async def _download(bot: Bot, message: Message) -> bytes:
    """The photo (largest size within the limit) or image/PDF document, streamed: counted as it
    arrives and cut past MAX_BYTES whatever `file_size` said (it may be missing or wrong)."""
    if message.photo:
        sizes = [p for p in message.photo if (p.file_size or 0) <= MAX_BYTES]
        if not sizes:
            raise TooLarge
        file_id = max(sizes, key=lambda p: p.width * p.height).file_id
    else:
        document = message.document
        assert document is not None
        if (document.file_size or 0) > MAX_BYTES:
            raise TooLarge
        file_id = document.file_id  # the content is checked later, whatever the name says
    try:
        file = await bot.get_file(file_id)
        if (file.file_size or 0) > MAX_BYTES:
            raise TooLarge
        path = file.file_path or ""
        if not _safe_file_path(path):
            log.warning("telegram file %s has a file path we do not follow", file_id)
            raise DownloadFailed
        return await _stream(bot, path)
    except (TooLarge, DownloadFailed):
        raise
    except Exception as error:  # the Bot API or its file server: its URL carries the token
        log.warning("telegram file %s could not be downloaded: %s", file_id,
                    type(error).__name__)  # fmt: skip
        raise DownloadFailed from error


def _safe_file_path(path: str) -> bool:
    """A relative path under the bot's files, as Telegram gives them (`photos/file_1.jpg`)."""
    if not path or path.startswith("/") or "\\" in path:
        return False
    return ".." not in path.split("/")


async def _stream(bot: Bot, path: str) -> bytes:
    url = bot.session.api.file_url(bot.token, path)
    chunks, size = [], 0
    stream = bot.session.stream_content(url=url, timeout=30, chunk_size=65536)
    async with aclosing(stream):
        async for chunk in stream:
            size += len(chunk)
            if size > MAX_BYTES:
                raise TooLarge
            chunks.append(chunk)
    return b"".join(chunks)


def _converse(runtime: Any, session: Any, chat_id: int, incoming: Incoming) -> list[Reply]:
    return converse(
        session,
        channel=CHANNEL,
        external_id=str(chat_id),
        incoming=incoming,
        catalog=runtime.catalog,
        calendar=runtime.calendar,
        media=runtime.media,
        public_base_url=runtime.settings.public_base_url,
        rules=runtime.flow_rules,
    )


async def _turn(
    runtime: Any, bot: Bot, update_id: int, chat_id: int, incoming: Incoming
) -> BotCall | None:
    """One dialogue turn. The update id and the turn's replies are recorded in the turn's own
    transaction: a redelivered update is not run again, but the replies it still owes (our answer
    never reached Telegram, or the process died sending them) are sent — once.

    On PostgreSQL a turn without a file first tries `storage.quick_turn` (on the event loop, two
    statements); what it hands back — or a file, or SQLite — runs the full way, through the ORM.

    A turn with a single text reply returns it as the webhook's answer (Telegram runs one method
    given there: no extra request, the reply arrives sooner); other replies are sent in order."""
    delivery, recipient = str(update_id), str(chat_id)

    def fits_in_answer(replies: list[Reply]) -> bool:
        # Not while earlier replies to this chat are still going out: it would overtake them.
        return (
            len(replies) == 1
            and len(telegram_calls(chat_id, replies[0])) == 1
            and replies[0].image_png is None
            and chat_id not in _chat_locks
        )

    def run() -> tuple[OwedReplies | None, bool]:
        now = utcnow()
        lease_until = now + _reply_lease(runtime)
        with session_scope(runtime.engine) as session:
            if not first_delivery(session, CHANNEL, delivery):
                owed = claim_owed_replies(session.connection(), CHANNEL, delivery, now, lease_until)
                return owed, False
            replies = _converse(runtime, session, chat_id, incoming)
            in_answer = fits_in_answer(replies)
            owe_replies(session, CHANNEL, delivery, recipient=recipient, replies=replies,
                        answered=in_answer, lease_until=lease_until)  # fmt: skip
            return OwedReplies(CHANNEL, delivery, recipient, replies, 0), in_answer

    quick = None
    if runtime.async_reader is not None and not incoming.files:  # PostgreSQL, no file
        now = utcnow()
        quick = await quick_turn(runtime.async_reader, channel=CHANNEL, delivery_id=delivery,
                                 external_id=recipient, recipient=recipient, incoming=incoming,
                                 catalog=runtime.catalog, in_answer=fits_in_answer, now=now,
                                 lease_until=now + _reply_lease(runtime))  # fmt: skip
    if quick is not None:
        replies, in_answer = quick
        owed: OwedReplies | None = OwedReplies(CHANNEL, delivery, recipient, replies, 0)
    else:
        owed, in_answer = await run_db(runtime.engine, run, quick=not incoming.files)
    if owed is None:
        return None
    if in_answer and chat_id not in _chat_locks:  # (a send may have started meanwhile)
        return telegram_calls(chat_id, owed.replies[0])[0]
    await _answer(runtime, bot, chat_id, owed)
    return None


def _reply_lease(runtime: Any) -> timedelta:
    """How long a process may take to send a turn's replies before another one takes over."""
    return timedelta(seconds=runtime.settings.outbox_lease_seconds)


class PlainText(NamedTuple):
    """A private chat's plain text message: all the dialogue reads of most updates."""

    update_id: int
    chat_id: int
    text: str


def read_update(bot: Bot, body: bytes) -> PlainText | Update:
    """The update Telegram posted, parsed once; ValueError when the body is not one.

    A plain private text comes back as `PlainText`, without aiogram's model: its parse was the
    largest part of a text update's cost (bench/telegram_intake.py). Anything else is an Update."""
    data = json.loads(body)
    return _plain_text(data) or Update.model_validate(data, context={"bot": bot})


async def handle_update(
    runtime: Any, bot: Bot, dispatcher: Dispatcher, update: PlainText | Update
) -> bytes | None:
    """Run one update; the webhook's JSON answer when the turn gives one. A plain text runs the
    turn `on_message` would run, without the dispatcher's middlewares and routers."""
    if isinstance(update, PlainText):
        incoming = Incoming(text=update.text)
        answer = await _turn(runtime, bot, update.update_id, update.chat_id, incoming)
    else:
        answer = await dispatcher.feed_update(bot, update)
    if not isinstance(answer, BotCall):
        return None
    return json.dumps({"method": answer.method, **answer.params}, ensure_ascii=False).encode()


def _is(kind: type) -> Any:
    return lambda value: type(value) is kind  # exactly: True is an int, not a message id


def _matches(value: Any, required: dict[str, Any], optional: dict[str, Any] | None = None) -> bool:
    """`value` is a dict with every `required` key, no key outside both, each value passing."""
    if type(value) is not dict or not required.keys() <= value.keys():
        return False
    checks = required if optional is None else {**required, **optional}
    return all(key in checks and checks[key](item) for key, item in value.items())


_STRING_NAMES = {"first_name": _is(str), "last_name": _is(str), "username": _is(str)}
_PRIVATE_CHAT = {"id": _is(int), "type": lambda value: value == "private"}
_USER = {"id": _is(int), "is_bot": _is(bool), "first_name": _is(str)}
_USER_EXTRAS = {**_STRING_NAMES, "language_code": _is(str), "is_premium": _is(bool)}
_ENTITY = {"type": _is(str), "offset": _is(int), "length": _is(int)}
_TEXT_MESSAGE = {
    "message_id": _is(int),
    "date": _is(int),
    "chat": lambda chat: _matches(chat, _PRIVATE_CHAT, _STRING_NAMES),
    "text": _is(str),
}
_TEXT_MESSAGE_EXTRAS = {
    "from": lambda user: _matches(user, _USER, _USER_EXTRAS),
    "entities": lambda items: type(items) is list and all(_matches(e, _ENTITY) for e in items),
}
_TEXT_UPDATE = {
    "update_id": _is(int),
    "message": lambda message: _matches(message, _TEXT_MESSAGE, _TEXT_MESSAGE_EXTRAS),
}


def _plain_text(data: Any) -> PlainText | None:
    """`data` as PlainText when it is nothing but a text message from a private chat, its
    fields the way Telegram sends them (so aiogram would parse it and `on_message` would read
    only its text); None for anything else — buttons, files, contacts, edits, groups, oddities —
    which goes through aiogram as before."""
    if not _matches(data, _TEXT_UPDATE):
        return None
    message = data["message"]
    return PlainText(data["update_id"], message["chat"]["id"], message["text"])


ALBUM_WAIT = 1.0  # seconds without a new photo of the album before it is answered
_background: set[asyncio.Task[None]] = set()
_chat_locks: dict[int, asyncio.Lock] = {}


async def _answer(runtime: Any, bot: Bot, chat_id: int, owed: OwedReplies) -> None:
    """Send the replies a turn owes, in order, each recorded as sent once out; if the Bot API
    is slow (rate limits, outages), the webhook answers Telegram after the reply budget and the
    replies go on in the background. Replies left unsent (an error, the process killed) are
    finished by the dispatcher once their lease is over (webhook.jobs)."""
    if not owed.unsent:
        return

    def went_out(count: int) -> None:
        with single_statements(runtime.engine) as connection:
            replies_went_out(connection, owed, count)

    async def send_all() -> None:
        lock = _chat_locks.setdefault(chat_id, asyncio.Lock())
        async with lock:  # a later turn of the same chat waits: replies keep their order
            try:
                for count, reply in enumerate(owed.unsent, start=owed.sent + 1):
                    await send_reply(bot, chat_id, reply)
                    await run_db(runtime.engine, partial(went_out, count), quick=True)
            except Exception:
                log.exception("replies to chat %s could not be sent; sent later", chat_id)
        if not lock.locked() and _chat_locks.get(chat_id) is lock:
            del _chat_locks[chat_id]

    task = asyncio.create_task(send_all())
    _background.add(task)
    task.add_done_callback(_background.discard)
    try:
        budget = runtime.settings.telegram_reply_budget_seconds
        await asyncio.wait_for(asyncio.shield(task), timeout=budget)
    except TimeoutError:
        log.warning("replies to chat %s continue after the webhook answered", chat_id)


async def _park(runtime: Any, bot: Bot, update: Update, message: Message, data: bytes) -> None:
    """Hold an album's photo in the database; the album's last photo runs one turn for all.

    The webhook answers at once; the turn runs after ALBUM_WAIT in this process. Several web
    workers may receive photos of one album: only the one holding the latest photo answers."""
    chat_id, group = message.chat.id, str(message.media_group_id)
    delivery = str(update.update_id)

    def park() -> tuple[bool, OwedReplies | None]:
        now = utcnow()
        with session_scope(runtime.engine) as session:
            if not first_delivery(session, CHANNEL, delivery):  # the album may owe its answer
                lease_until = now + _reply_lease(runtime)
                return False, claim_owed_replies(session.connection(), CHANNEL, delivery, now,
                                                 lease_until)  # fmt: skip
            park_album_part(session, channel=CHANNEL, external_id=str(chat_id),
                            media_group_id=group, update_id=update.update_id, data=data,
                            caption=message.caption or "")  # fmt: skip
            return True, None

    parked, owed = await anyio.to_thread.run_sync(park)
    if owed is not None:
        await _answer(runtime, bot, chat_id, owed)
    if parked:
        task = asyncio.create_task(_finish_album(runtime, bot, chat_id, group, update.update_id))
        _background.add(task)
        task.add_done_callback(_background.discard)


async def _finish_album(runtime: Any, bot: Bot, chat_id: int, group: str, update_id: int) -> None:
    await asyncio.sleep(ALBUM_WAIT)

    def run() -> OwedReplies | None:
        lease_until = utcnow() + _reply_lease(runtime)
        with session_scope(runtime.engine) as session:
            parts = take_album(session, CHANNEL, str(chat_id), group, update_id)
            if parts is None:
                return None
            replies = _converse(runtime, session, chat_id, album_incoming(parts))
            owe_replies(session, CHANNEL, str(update_id), recipient=str(chat_id),
                        replies=replies, answered=False, lease_until=lease_until)  # fmt: skip
            return OwedReplies(CHANNEL, str(update_id), str(chat_id), replies, 0)

    try:
        owed = await anyio.to_thread.run_sync(run)
    except Exception:  # a background task has nobody to raise to: log it
        log.exception("answering album %s of chat %s failed", group, chat_id)
        return
    if owed is not None:
        await _answer(runtime, bot, chat_id, owed)


async def send_reply(bot: Bot, chat_id: int, reply: Reply) -> None:
    """Send one reply as the shared renderer lays it out (aiogram makes the requests)."""
    for call in telegram_calls(chat_id, reply):
        if call.photo is not None:
            photo = BufferedInputFile(call.photo, filename="qr.png")
            await bot(SendPhoto(**call.params, photo=photo))
        else:
            await bot(SendMessage(**call.params))


COMMANDS = ("start", "menu", "cancel")


async def setup_webhook(bot: Bot, public_base_url: str, secret: str) -> str:
    """Register our webhook with its secret, and the command menu in Vietnamese and English."""
    url = f"{public_base_url.rstrip('/')}/webhook/telegram/citizen"
    await bot.set_webhook(
        url=url, secret_token=secret, allowed_updates=["message", "callback_query"]
    )
    for lang in ("vi", "en"):
        commands = [
            BotCommand(command=name, description=render(f"chat.command.{name}", lang))
            for name in COMMANDS
        ]
        await bot.set_my_commands(commands, language_code=lang)
    return url
