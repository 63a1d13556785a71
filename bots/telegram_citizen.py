"""Citizen bot on Telegram (aiogram 3): translate updates into the core dialogue and back.

The web route checks the secret header and the replay guard; this module turns a Telegram
update into `Incoming`, runs one dialogue turn over storage, and sends the `Reply`s.
"""

from __future__ import annotations

import asyncio
import json
import logging
from functools import lru_cache
from typing import Any

import anyio
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from pydantic import BaseModel

from core.conversation import Incoming, IncomingFile
from core.documents import MAX_BYTES
from core.messages import render
from core.replies import Button, Reply
from storage.db import run_db, session_scope
from storage.inbound import first_delivery, park_album_part, take_album
from storage.intake import album_incoming, converse

log = logging.getLogger(__name__)
CHANNEL = "telegram"
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
    async def on_button(query: CallbackQuery, bot: Bot, event_update: Update) -> SendMessage | None:
        await query.answer()
        if query.message is None or query.data is None:
            return None
        incoming = Incoming(button=query.data)
        return await _turn(runtime, bot, event_update, query.message.chat.id, incoming)

    # One message handler, not one per content type: aiogram runs plain (non-async) filters
    # such as F.text in a thread pool, a thread hop per filter per update.
    @router.message()
    async def on_message(message: Message, bot: Bot, event_update: Update) -> SendMessage | None:
        chat_id = message.chat.id
        if message.contact is not None:
            incoming = Incoming(phone=message.contact.phone_number)
        elif message.photo or message.document:
            data = await _download(bot, message)
            if data is None:
                await bot.send_message(chat_id, render("chat.file_too_large_telegram"))
                return None
            if message.media_group_id:  # one photo of an album: answer the album once, later
                await _park(runtime, bot, event_update, message, data)
                return None
            incoming = Incoming(text=message.caption or "", files=(IncomingFile(data),))
        elif message.text is not None:
            incoming = Incoming(text=message.text)
        else:
            incoming = Incoming(unsupported=True)
        return await _turn(runtime, bot, event_update, chat_id, incoming)

    dispatcher = Dispatcher(disable_fsm=True)  # the dialogue keeps its own state (storage)
    dispatcher.include_router(router)
    return dispatcher


async def _download(bot: Bot, message: Message) -> bytes | None:
    """The photo (largest size within the limit) or image/PDF document; None if too large."""
    if message.photo:
        sizes = [p for p in message.photo if (p.file_size or 0) <= MAX_BYTES]
        if not sizes:
            return None
        file_id = max(sizes, key=lambda p: p.width * p.height).file_id
    else:
        document = message.document
        assert document is not None
        if (document.file_size or 0) > MAX_BYTES:
            return None
        file_id = document.file_id  # the content is checked later, whatever the name says
    file = await bot.get_file(file_id)
    assert file.file_path is not None
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None
    return downloaded.read()


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
    )


async def _turn(
    runtime: Any, bot: Bot, update: Update, chat_id: int, incoming: Incoming
) -> SendMessage | None:
    """One dialogue turn; the update id is recorded in the same transaction, so a redelivered
    update is dropped and a turn that failed is retried whole when Telegram redelivers it.

    A turn with a single text reply returns it as the webhook's answer (Telegram runs one method
    given there: no extra request, the reply arrives sooner); other replies are sent in order."""

    def run() -> list[Reply]:
        with session_scope(runtime.engine) as session:
            if not first_delivery(session, CHANNEL, str(update.update_id)):
                return []
            return _converse(runtime, session, chat_id, incoming)

    replies = await run_db(runtime.engine, run, quick=not incoming.files)
    # Not while earlier replies to this chat are still being sent: the answer would overtake them.
    if len(replies) == 1 and replies[0].image_png is None and chat_id not in _chat_locks:
        return SendMessage(
            chat_id=chat_id, text=replies[0].text[:4096], reply_markup=_markup(replies[0])
        )
    await _answer(bot, chat_id, replies, runtime.settings.telegram_reply_budget_seconds)
    return None


def read_update(bot: Bot, body: bytes) -> Update:
    """The update Telegram posted, parsed once; ValueError when the body is not one."""
    return Update.model_validate_json(body, context={"bot": bot})


async def handle_update(bot: Bot, dispatcher: Dispatcher, update: Update) -> bytes | None:
    """Run one update; the webhook's JSON answer when the turn gives one."""
    answer = await dispatcher.feed_update(bot, update)
    return webhook_answer(answer) if isinstance(answer, TelegramMethod) else None


def webhook_answer(method: TelegramMethod[Any]) -> bytes:
    """A method as the webhook's JSON answer: its name and the fields given (no file uploads)."""
    fields: dict[str, Any] = {"method": method.__api_method__}
    for key in method.model_fields_set:
        value = getattr(method, key)
        if isinstance(value, InputFile):
            raise ValueError("a webhook answer cannot upload files")
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", exclude_none=True)
        fields[key] = value
    return json.dumps(fields, ensure_ascii=False).encode()


ALBUM_WAIT = 1.0  # seconds without a new photo of the album before it is answered
_background: set[asyncio.Task[None]] = set()
_chat_locks: dict[int, asyncio.Lock] = {}


async def _answer(bot: Bot, chat_id: int, replies: list[Reply], budget: float) -> None:
    """Send the turn's replies, in order; if the Bot API is slow (rate limits, outages), the
    webhook answers Telegram after `budget` seconds and the replies go on in the background."""
    if not replies:
        return

    async def send_all() -> None:
        lock = _chat_locks.setdefault(chat_id, asyncio.Lock())
        async with lock:  # a later turn of the same chat waits: replies keep their order
            try:
                for reply in replies:
                    await send_reply(bot, chat_id, reply)
            except Exception:
                log.exception("replies to chat %s could not be sent", chat_id)
        if not lock.locked() and _chat_locks.get(chat_id) is lock:
            del _chat_locks[chat_id]

    task = asyncio.create_task(send_all())
    _background.add(task)
    task.add_done_callback(_background.discard)
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=budget)
    except TimeoutError:
        log.warning("replies to chat %s continue after the webhook answered", chat_id)


async def _park(runtime: Any, bot: Bot, update: Update, message: Message, data: bytes) -> None:
    """Hold an album's photo in the database; the album's last photo runs one turn for all.

    The webhook answers at once; the turn runs after ALBUM_WAIT in this process. Several web
    workers may receive photos of one album: only the one holding the latest photo answers."""
    chat_id, group = message.chat.id, str(message.media_group_id)

    def park() -> bool:
        with session_scope(runtime.engine) as session:
            if not first_delivery(session, CHANNEL, str(update.update_id)):
                return False
            park_album_part(session, channel=CHANNEL, external_id=str(chat_id),
                            media_group_id=group, update_id=update.update_id, data=data,
                            caption=message.caption or "")  # fmt: skip
            return True

    if await anyio.to_thread.run_sync(park):
        task = asyncio.create_task(_finish_album(runtime, bot, chat_id, group, update.update_id))
        _background.add(task)
        task.add_done_callback(_background.discard)


async def _finish_album(runtime: Any, bot: Bot, chat_id: int, group: str, update_id: int) -> None:
    await asyncio.sleep(ALBUM_WAIT)

    def run() -> list[Reply]:
        with session_scope(runtime.engine) as session:
            parts = take_album(session, CHANNEL, str(chat_id), group, update_id)
            if parts is None:
                return []
            return _converse(runtime, session, chat_id, album_incoming(parts))

    try:
        replies = await anyio.to_thread.run_sync(run)
    except Exception:  # a background task has nobody to raise to: log it
        log.exception("answering album %s of chat %s failed", group, chat_id)
        return
    await _answer(bot, chat_id, replies, runtime.settings.telegram_reply_budget_seconds)


def _markup(reply: Reply) -> Any:
    """The reply's keyboard; with none, any earlier reply keyboard (share phone) is removed."""
    if reply.ask_contact:
        return ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text=render("chat.share_phone"), request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
    if reply.buttons:
        return _inline_keyboard(reply.buttons)
    return ReplyKeyboardRemove()


@lru_cache(maxsize=512)
def _inline_keyboard(rows: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup:
    """Built once per distinct keyboard (the menus repeat): a keyboard is a dozen models."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=b.label, callback_data=b.data) for b in row] for row in rows
        ]
    )


async def send_reply(bot: Bot, chat_id: int, reply: Reply) -> None:
    markup = _markup(reply)
    if reply.image_png is not None:
        photo = BufferedInputFile(reply.image_png, filename="qr.png")
        if isinstance(markup, ReplyKeyboardRemove):
            markup = None
        await bot.send_photo(chat_id, photo, caption=reply.text[:1024], reply_markup=markup)
        return
    await bot.send_message(chat_id, reply.text[:4096], reply_markup=markup)


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
