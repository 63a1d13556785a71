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
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from core.channels import Channel
from core.conversation import Incoming, IncomingFile
from core.documents import MAX_BYTES
from core.notices import notice_reply
from core.replies import Reply
from storage.db import run_db, session_scope
from storage.inbound import first_delivery, owe_replies, stored_replies
from storage.intake import converse, detach_identity
from storage.models import utcnow
from storage.outbox import mailbox
from webhook.app import RuntimeDep, templates

router = APIRouter()
COOKIE = "hcc_chat"
CHANNEL = Channel.WEB
MAX_FILES_PER_SEND = 10
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


@router.get("/chat")
def chat_page(
    request: Request, runtime: RuntimeDep, lang: str | None = None, kiosk: bool = False
) -> Response:
    """The chat page; `?kiosk=1` (the counter's tablet) also ends the session after idling."""
    secret = runtime.settings.secret_key.get_secret_value()
    session_id = _session_id(secret, request.cookies.get(COOKIE))
    context = {
        "lang": "en" if lang == "en" else "vi",
        "fresh": not session_id,
        "kiosk_idle": KIOSK_IDLE_SECONDS if kiosk else 0,
    }
    response = templates.TemplateResponse(request, "chat.html", context)
    if session_id is None:
        _set_cookie(response, request, _sign(secret, secrets.token_urlsafe(18)))
    return response


def _set_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=60 * 60 * 24 * 30,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


@router.post("/chat/api/end")
async def chat_end(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """ "Finish" on a shared device: the session is detached from its citizen on the server, and
    the next person gets a new, empty session — neither they nor anyone holding a copy of the old
    cookie can see the previous citizen's conversation, dossiers or notices."""
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") != str(request.base_url).rstrip("/"):
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
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") != str(request.base_url).rstrip("/"):
        return JSONResponse({"error": "cross_site"}, status_code=403)
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_BYTES * MAX_FILES_PER_SEND + 65536:
        return JSONResponse({"error": "too_large"}, status_code=413)
    form = await request.form(max_files=MAX_FILES_PER_SEND, max_part_size=MAX_BYTES + 1)
    files = []
    for upload in form.getlist("files"):
        if isinstance(upload, UploadFile):
            files.append(IncomingFile(await upload.read(), upload.filename or ""))
    incoming = Incoming(
        text=str(form.get("text") or "")[:2000],
        button=str(form.get("button") or "")[:64],
        files=tuple(files),
    )
    turn_id = str(form.get("turn") or "")
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
            )
            if delivery is not None:  # kept with the turn: a repeat of the send gets them
                owe_replies(session, CHANNEL, delivery, recipient=session_id, replies=replies,
                            answered=True, lease_until=utcnow())  # fmt: skip
            return replies

    replies = await run_db(runtime.engine, turn, quick=not incoming.files)
    return JSONResponse({"replies": [_reply_json(reply) for reply in replies]})


@router.get("/chat/api/updates")
async def chat_updates(request: Request, runtime: RuntimeDep, after: int = 0) -> JSONResponse:
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


def _reply_json(reply: Reply) -> dict[str, Any]:
    image = None
    if reply.image_png is not None:
        image = "data:image/png;base64," + base64.b64encode(reply.image_png).decode()
    return {
        "text": reply.text,
        "buttons": [[{"label": b.label, "data": b.data} for b in row] for row in reply.buttons],
        "image": image,
    }
