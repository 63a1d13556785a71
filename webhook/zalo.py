"""POST /webhook/zalo: events of the Zalo Official Account (docs/zalo.md).

The signature is checked over the raw bytes before anything is parsed. A text, button or
follow is handled before the answer, in one transaction with its replay guard (as a Telegram
update is); its replies go out right after. An event with attachments is kept and answered at
once (Zalo wants 200 within 2 s and retries otherwise), then downloaded and handled — by the
dispatcher if this process dies first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from bots.delivery import send_owed_replies
from bots.zalo import BadSignature, EventKind, ZaloEvent, translate, verify
from bots.zalo_citizen import (
    CHANNEL,
    ZaloChannel,
    handle_event,
    handle_now,
    needs_download,
)
from storage.db import run_db, session_scope
from storage.inbound import OwedReplies, accept_event
from storage.models import utcnow
from webhook.runtime import Runtime

log = logging.getLogger(__name__)
PATH = "/webhook/zalo"
_background: set[asyncio.Task[None]] = set()


def install(app: FastAPI) -> None:
    app.add_route(PATH, zalo_webhook, methods=["POST"], include_in_schema=False)


async def zalo_webhook(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    zalo: ZaloChannel | None = request.app.state.zalo
    settings = runtime.settings
    if zalo is None or settings.zalo_oa_secret_key is None:
        return JSONResponse({"error": "zalo_not_configured"}, status_code=503)
    body = await request.body()  # bounded by webhook.limits (events are a few hundred bytes)
    try:
        event = verify(
            body,
            request.headers.get("x-zevent-signature", ""),
            app_id=settings.zalo_app_id or "",
            oa_id=settings.zalo_oa_id or "",
            secret=settings.zalo_oa_secret_key.get_secret_value(),
            now=utcnow(),
        )
    except BadSignature as error:
        log.warning("zalo webhook refused: %s", error.reason)
        return JSONResponse({"error": "bad_signature"}, status_code=401)
    translated = translate(event)
    if translated.kind in (EventKind.ECHO, EventKind.IGNORED):
        return JSONResponse({"ok": True})
    if not needs_download(translated):
        owed = await run_db(runtime.engine, lambda: handle_now(runtime, translated), quick=True)
        if owed is not None and owed.unsent:
            _in_background(_send(runtime, zalo, owed))
        return JSONResponse({"ok": True})
    lease = timedelta(seconds=settings.outbox_lease_seconds)

    def keep() -> bool:
        with session_scope(runtime.engine) as session:
            return accept_event(session, CHANNEL, translated.delivery_id, event, utcnow() + lease)

    if await run_db(runtime.engine, keep, quick=True):  # a retry of a kept event is dropped
        _in_background(_handle(runtime, zalo, translated))
    return JSONResponse({"ok": True})


async def _send(runtime: Runtime, zalo: ZaloChannel, owed: OwedReplies) -> None:
    await anyio.to_thread.run_sync(send_owed_replies, runtime.engine, zalo.sender, owed)


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _handle(runtime: Runtime, zalo: ZaloChannel, event: ZaloEvent) -> None:
    try:
        await handle_event(runtime, zalo, event)
    except Exception:  # kept: the dispatcher handles it once its lease is over
        log.exception("zalo event %s failed; the dispatcher retries it", event.delivery_id)
