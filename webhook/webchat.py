"""GET /chat: the same citizen dialogue in a browser, for the kiosk and people without Telegram.

The session is a random id in a signed, HttpOnly, SameSite=Lax cookie; the page posts each input
(text, button, photos from the camera) to /chat/api/send and shows the replies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.channels import Channel
from core.conversation import Incoming, IncomingFile
from core.documents import MAX_BYTES
from core.geo import location
from core.messages import render
from core.notices import notice_reply
from core.replies import Reply
from storage.db import run_db, session_scope
from storage.inbound import first_delivery, owe_replies, stored_replies
from storage.intake import converse, detach_identity
from storage.models import utcnow
from storage.outbox import mailbox
from webhook.deps import RuntimeDep, templates
from webhook.limits import MAX_ROW_ID, MAX_SEND_BYTES, BodyTooLarge
from webhook.security import is_https
from webhook.staff_session import same_origin

router = APIRouter()
COOKIE = "hcc_chat"
CHANNEL = Channel.WEB
MAX_FILES_PER_SEND = 10  # also said on the page, before sending
MAX_FIELD_BYTES = 16 * 1024  # a text field (2,000 characters of Vietnamese fit)
# The page names each send with a random id and sends it again, same id, when the answer did
# not arrive (network, or the server died after the commit): a repeat is answered from storage.
TURN_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


def _sign(secret: str, session_id: str) -> str:
    mac = hmac.new(secret.encode(), f"chat:{session_id}".encode(), hashlib.sha256).hexdigest()
    return f"{session_id}.{mac}"


def _session_id(secret: str, cookie: str | None) -> str | None:
    """The session id in a cookie we signed; None for a missing or forged cookie."""
    if not cookie or "." not in cookie:
        return None
    session_id = cookie.split(".", 1)[0]
    return session_id if hmac.compare_digest(_sign(secret, session_id), cookie) else None


KIOSK_IDLE_SECONDS = 300  # a kiosk page left alone this long starts over for the next person
KIOSK_WARNING_SECONDS = 30  # the last ones counted down on the screen, with a way to stay
PHOTO_LONGEST_SIDE = 2560  # the page shrinks bigger photos before sending (as Telegram does)
PHOTO_JPEG_QUALITY = 0.85


@router.get("/chat")
def chat_page(
    request: Request, runtime: RuntimeDep, lang: str | None = None, kiosk: bool = False
) -> Response:
    """The chat page; `?kiosk=1` (the counter's tablet) also ends the session after idling."""
    secret = runtime.settings.secret_key.get_secret_value()
    session_id = _session_id(secret, request.cookies.get(COOKIE))
    language = "en" if lang == "en" else "vi"
    limit_mb = MAX_BYTES // (1024 * 1024)
    texts = {
        "sending": render("webchat.sending", language),
        "error": render("webchat.error", language),
        "uploading": render("webchat.uploading", language, n="{n}"),
        "end_confirm": render("webchat.end_confirm", language),
        "location": web_label(render("chat.share_location", language))[1],
        "noLocation": render("webchat.no_location", language),
        "too_many_files": render("webchat.too_many_files", language, n=MAX_FILES_PER_SEND),
        "file_too_large": render("webchat.file_too_large", language, limit_mb=limit_mb),
        "send_too_large": render(
            "webchat.send_too_large", language, limit_mb=MAX_SEND_BYTES // (1024 * 1024)
        ),
        "idle_warning": render("webchat.idle_warning", language, seconds="{seconds}"),
        "file_failed": render("webchat.file_failed", language, name="{name}", reason="{reason}"),
    }
    config = {
        "texts": texts,
        "first": {"text": "/start"} if not session_id else {"button": "nav:resume"},
        "kiosk_idle": KIOSK_IDLE_SECONDS if kiosk else 0,
        "kiosk_warning": KIOSK_WARNING_SECONDS,
        "photo_longest_side": PHOTO_LONGEST_SIDE,
        "photo_quality": PHOTO_JPEG_QUALITY,
        "max_files": MAX_FILES_PER_SEND,
        "max_file_bytes": MAX_BYTES,
        "max_send_bytes": MAX_SEND_BYTES,
    }
    context = {"lang": language, "config": config, "max_files": MAX_FILES_PER_SEND,
               "max_file_mb": limit_mb, "kiosk": kiosk}  # fmt: skip
    response = templates.TemplateResponse(request, "chat.html", context)
    if session_id is None:
        cookie = _sign(secret, secrets.token_urlsafe(18))
        _set_cookie(response, runtime.settings.public_base_url, cookie)
    return response


def _set_cookie(response: Response, public_base_url: str, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=60 * 60 * 24 * 30,
        httponly=True,
        samesite="lax",
        secure=is_https(public_base_url),  # not the request's scheme: a TLS proxy may be in front
    )


@router.post("/chat/api/end")
async def chat_end(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """ "Finish" on a shared device: the session is detached from its citizen on the server, and
    the next person gets a new, empty session — neither they nor anyone holding a copy of the old
    cookie can see the previous citizen's conversation, dossiers or notices."""
    if not same_origin(request, runtime.settings.public_base_url):
        return JSONResponse({"error": "cross_site"}, status_code=403)
    secret = runtime.settings.secret_key.get_secret_value()
    session_id = _session_id(secret, request.cookies.get(COOKIE))
    if session_id is not None:

        def detach() -> None:
            with session_scope(runtime.engine) as session:
                detach_identity(session, CHANNEL, session_id)

        await run_db(runtime.engine, detach, quick=True)
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE)  # the next page load starts a new session, with a welcome
    return response


@router.post("/chat/api/send")
async def chat_send(request: Request, runtime: RuntimeDep) -> JSONResponse:
    secret = runtime.settings.secret_key.get_secret_value()
    session_id = _session_id(secret, request.cookies.get(COOKIE))
    if session_id is None:
        return JSONResponse({"error": "no_session"}, status_code=401)
    if not same_origin(request, runtime.settings.public_base_url):
        return JSONResponse({"error": "cross_site"}, status_code=403)
    fields, files = await read_send(request)
    point = None
    shared = "latitude" in fields or "longitude" in fields  # the page's "send my location"
    if shared:
        point = location(fields.get("latitude", ""), fields.get("longitude", ""))
    incoming = Incoming(
        text=fields.get("text", "")[:2000],
        button=fields.get("button", "")[:64],
        files=tuple(files),
        location=point,
        unsupported=point is None and shared,
    )
    turn_id = fields.get("turn", "")
    delivery = f"{session_id}:{turn_id}" if TURN_ID.fullmatch(turn_id) else None

    def turn() -> list[Reply]:
        with session_scope(runtime.engine) as session:
            if delivery is not None and not first_delivery(session, CHANNEL, delivery):
                return stored_replies(session, CHANNEL, delivery) or []
            replies = converse(
                session,
                channel=CHANNEL,
                external_id=session_id,
                incoming=incoming,
                catalog=runtime.catalog,
                calendar=runtime.calendar,
                media=runtime.media,
                public_base_url=runtime.settings.public_base_url,
                rules=runtime.flow_rules,
            )
            if delivery is not None:  # kept with the turn: a repeat of the send gets them
                owe_replies(session, CHANNEL, delivery, recipient=session_id, replies=replies,
                            answered=True, lease_until=utcnow())  # fmt: skip
            return replies

    replies = await run_db(runtime.engine, turn, quick=not incoming.files)
    return JSONResponse({"replies": [_reply_json(reply) for reply in replies]})


async def read_send(request: Request) -> tuple[dict[str, str], list[IncomingFile]]:
    """The send's text fields and files, each file counted while it arrives: past MAX_BYTES, or
    past MAX_FILES_PER_SEND files, or the whole send past its ceiling (webhook.limits), it is
    refused with a sentence the page shows — before more is read."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":  # a text or button without files
        try:
            form = await request.form(max_files=0, max_part_size=MAX_FIELD_BYTES)
        except StarletteHTTPException as error:  # its parser words its refusals in English
            raise HTTPException(error.status_code) from None
        return {k: v for k, v in form.items() if isinstance(v, str)}, []
    if not params.get(b"boundary"):
        raise HTTPException(400)
    reader = _SendReader()
    parser = MultipartParser(params[b"boundary"], reader.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except BodyTooLarge:
        limit = MAX_SEND_BYTES // (1024 * 1024)
        raise HTTPException(413, render("webchat.send_too_large", limit_mb=limit)) from None
    except MultipartParseError:
        raise HTTPException(400) from None
    return reader.fields, reader.files


# The text fields a send may carry (anything else is dropped): what was typed or pressed, the
# turn's id, a location the page's "send my location" button shared.
SEND_FIELDS = ("text", "button", "turn", "latitude", "longitude")


class _SendReader:
    """python-multipart callbacks that keep the fields and files of one send, refusing as soon
    as a limit is passed (the 11th file at its first byte, a file at its 20 MB + 1st)."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.files: list[IncomingFile] = []
        self._header, self._value, self._disposition = b"", b"", b""
        self._name, self._filename = "", None  # type: tuple[str, str | None]
        self._data = bytearray()

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_name,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _begin(self) -> None:
        self._disposition, self._data = b"", bytearray()

    def _header_name(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        options = parse_options_header(self._disposition)[1]
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._filename = None if filename is None else filename.decode("utf-8", "replace")[:200]

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._filename is None:
            if len(self._data) + end - start > MAX_FIELD_BYTES:
                raise HTTPException(413)
        elif len(self.files) >= MAX_FILES_PER_SEND:
            raise HTTPException(400, render("webchat.too_many_files", n=MAX_FILES_PER_SEND))
        elif len(self._data) + end - start > MAX_BYTES:
            limit = MAX_BYTES // (1024 * 1024)
            raise HTTPException(413, render("webchat.file_too_large", limit_mb=limit))
        self._data += data[start:end]

    def _part_end(self) -> None:
        if self._filename is not None:
            if self._name == "files" and self._data:
                self.files.append(IncomingFile(bytes(self._data), self._filename))
        elif self._name in SEND_FIELDS:
            self.fields[self._name] = self._data.decode("utf-8", "replace")


@router.get("/chat/api/updates")
async def chat_updates(
    request: Request, runtime: RuntimeDep, after: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0
) -> JSONResponse:
    """Status pushes delivered to this chat since message `after` (the page polls this)."""
    secret = runtime.settings.secret_key.get_secret_value()
    session_id = _session_id(secret, request.cookies.get(COOKIE))
    if session_id is None:
        return JSONResponse({"error": "no_session"}, status_code=401)

    def read() -> list[dict[str, Any]]:
        with session_scope(runtime.engine) as session:
            return [
                {
                    "id": m.id,
                    **_reply_json(
                        notice_reply(m.template, m.values, m.values.get("language", "vi"))
                    ),
                }
                for m in mailbox(session, CHANNEL, session_id, after)
            ]

    return JSONResponse({"messages": await run_db(runtime.engine, read, quick=True)})


# The dialogue's buttons start with an emoji, which Telegram and Zalo draw themselves; a browser
# without an emoji font (a kiosk, an office PC) shows an empty box. The page draws the icon of the
# same meaning from static/icons.svg instead, and the label without it.
WEB_ICONS = {
    "✅": "check", "📝": "form", "🔎": "search", "📂": "folder", "🌐": "globe", "🏠": "home",
    "▶": "play", "⬅": "back", "✖": "cross", "⏭": "skip", "📤": "upload", "💬": "chat",
    "✍": "pen", "⌨": "keyboard", "📱": "phone", "📍": "pin", "➕": "plus", "📎": "clip",
}  # fmt: skip
_LEADING_SYMBOLS = re.compile(r"^[\u2190-\u2bff\U0001f000-\U0001faff\ufe0f\u200d\s]+")


def web_label(label: str) -> tuple[str | None, str]:
    """A button's label for the page: (its icon's name, or None; the label without emoji)."""
    if label and label.strip("⭐") == "":  # a rating, 1 to 5 stars: one star and the number
        return "star", str(len(label))
    match = _LEADING_SYMBOLS.match(label)
    if match is None:
        return None, label
    return WEB_ICONS.get(label[0]), label[match.end() :] or label


def _button_json(label: str, data: str) -> dict[str, Any]:
    icon, text = web_label(label)
    return {"label": text, "icon": icon, "data": data}


def _reply_json(reply: Reply) -> dict[str, Any]:
    image = None
    if reply.image_png is not None:
        image = "data:image/png;base64," + base64.b64encode(reply.image_png).decode()
    return {
        "text": reply.text,
        "buttons": [[_button_json(b.label, b.data) for b in row] for row in reply.buttons],
        "image": image,
        "ask_location": reply.ask_location,
    }
