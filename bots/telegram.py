"""A `Reply` as Telegram Bot API calls — the one renderer for the citizen bot, used by the live
answer of a dialogue turn (`bots/telegram_citizen.py`) and by the outbox (`TelegramSender`), so a
reply looks the same whichever path carries it: long texts split at line breaks, the QR code as
a photo with the text as its caption, inline buttons on the last message, the share-my-phone
keyboard when the dialogue asks for a phone number, and the send-my-location keyboard when it
offers to take a location (after the inline buttons, in a message of its own: Telegram puts one
keyboard on a message).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from core.messages import render
from core.replies import Button, Reply, split_text

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024


@dataclass(frozen=True)
class BotCall:
    """One Bot API method: its JSON parameters, and the photo to upload with it (if any)."""

    method: str
    params: dict[str, Any]
    photo: bytes | None = None


def telegram_calls(chat_id: int | str, reply: Reply) -> list[BotCall]:
    """What one reply is on Telegram, in the order the citizen sees it."""
    markup = reply_markup(reply)
    text = reply.text
    calls = []
    if reply.image_png is not None:
        caption, text = text[:CAPTION_LIMIT], text[CAPTION_LIMIT:]
        params: dict[str, Any] = {"chat_id": chat_id, "caption": caption}
        if not text and "remove_keyboard" not in markup:
            params["reply_markup"] = markup
        calls.append(BotCall("sendPhoto", params, reply.image_png))
    chunks = split_text(text, TEXT_LIMIT)
    for index, chunk in enumerate(chunks):
        params = {"chat_id": chat_id, "text": chunk}
        if index == len(chunks) - 1:
            params["reply_markup"] = markup
        calls.append(BotCall("sendMessage", params))
    if reply.ask_location and "inline_keyboard" in markup:
        offer = {"chat_id": chat_id, "text": render("chat.share_location_offer"),
                 "reply_markup": _location_keyboard()}  # fmt: skip
        calls.append(BotCall("sendMessage", offer))
    return calls


def reply_markup(reply: Reply) -> dict[str, Any]:
    """The reply's keyboard; with none, an earlier reply keyboard (share phone) is removed."""
    if reply.ask_contact:
        return _contact_keyboard()
    if reply.buttons:
        return _inline_keyboard(reply.buttons)
    if reply.ask_location:
        return _location_keyboard()
    return {"remove_keyboard": True}


@lru_cache(maxsize=1)
def _contact_keyboard() -> dict[str, Any]:
    button = {"text": render("chat.share_phone"), "request_contact": True}
    return {"keyboard": [[button]], "resize_keyboard": True, "one_time_keyboard": True}


@lru_cache(maxsize=1)
def _location_keyboard() -> dict[str, Any]:
    button = {"text": render("chat.share_location"), "request_location": True}
    return {"keyboard": [[button]], "resize_keyboard": True, "one_time_keyboard": True}


@lru_cache(maxsize=512)
def _inline_keyboard(rows: tuple[tuple[Button, ...], ...]) -> dict[str, Any]:
    """Built once per distinct keyboard (the menus repeat). Callers must not change it."""
    return {"inline_keyboard": [[{"text": b.label, "callback_data": b.data} for b in row]
                                for row in rows]}  # fmt: skip
