"""Citizen dialogue on the Zalo Official Account: a verified webhook event into the core dialogue,
and the replies out through `ZaloSender` (the one Zalo renderer, shared with the outbox).

The web route (webhook/zalo.py) keeps each event before it answers Zalo (which wants its 200
within 2 s), then calls `handle_event`; an event whose process died first is handled by the
dispatcher (`handle_kept_event`). A turn's replies are owed in the turn's own transaction, as on
Telegram (storage/inbound.py), so the dossier code outlives a crash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import anyio
import httpx

from bots.delivery import Sender, send_owed_replies, send_owed_replies_async
from bots.zalo import (
    DownloadRefused,
    EventKind,
    ReplyConnections,
    TooLarge,
    ZaloEvent,
    ZaloSender,
    download,
    more_choices,
    translate,
)
from core.channels import Channel
from core.conversation import Incoming, IncomingFile
from core.documents import MAX_BYTES
from core.messages import render
from core.replies import Reply
from storage.db import run_db, session_scope, single_statements
from storage.inbound import (
    OwedReplies,
    claim_event,
    claim_owed_replies,
    event_handled,
    first_delivery,
    owe_replies,
    replies_went_out,
)
from storage.intake import converse, record_outside_reply
from storage.models import utcnow
from storage.outbox import mark_reachable, mark_unreachable, record_receipt
from storage.quick_turn import quick_turn
from storage.quick_turn import replies_went_out as quick_replies_went_out
from webhook.runtime import Runtime

log = logging.getLogger(__name__)
CHANNEL = Channel.ZALO
MAX_FILES = 10  # attachments of one event taken as one step, like a Telegram album


@dataclass(frozen=True)
class ZaloChannel:
    """What handling an event needs besides the runtime: the sender, a download client, and
    the web process's client for sending replies on its event loop (None: sent in a thread)."""

    sender: Sender
    downloads: httpx.AsyncClient
    media_hosts: tuple[str, ...]
    api: ReplyConnections | None = None


def needs_download(event: ZaloEvent) -> bool:
    """Events with attachments are kept and answered at once, then handled (downloads can take
    seconds, and Zalo wants its 200 within 2); any other event is handled before the answer."""
    return bool(event.attachments)


def handle_now(runtime: Runtime, event: ZaloEvent) -> OwedReplies | None:
    """A quick event in one transaction with its replay guard, like a Telegram update: a retry
    of it runs nothing again and takes over only the replies still owed."""
    now = utcnow()
    lease_until = now + timedelta(seconds=runtime.settings.outbox_lease_seconds)
    with session_scope(runtime.engine) as session:
        if not first_delivery(session, CHANNEL, event.delivery_id):
            connection = session.connection()
            return claim_owed_replies(connection, CHANNEL, event.delivery_id, now, lease_until)
        match event.kind:
            case EventKind.ADMIN_REPLY:
                record_outside_reply(session, CHANNEL, event.user_id, event.text)
                return None
            case EventKind.UNFOLLOW:  # pushes go by template message or SMS from now on
                mark_unreachable(session, CHANNEL, event.user_id, event.at)
                return None
            case EventKind.RECEIPT:
                record_receipt(session, at=event.at, tracking_id=event.tracking_id or None,
                               msg_ids=event.msg_ids)  # fmt: skip
                return None
            case EventKind.FOLLOW:
                mark_reachable(session, CHANNEL, event.user_id)
            case EventKind.TURN:
                pass
            case _:
                return None
        incoming = Incoming(text="/start") if event.kind is EventKind.FOLLOW else event.incoming
        assert incoming is not None
        replies = _converse(runtime, session, event, incoming)
        return _owe_in(session, runtime, event, replies)


async def handle_now_async(runtime: Runtime, event: ZaloEvent) -> OwedReplies | None:
    """`handle_now` from the web route. On PostgreSQL a text or button turn first tries
    `storage.quick_turn` (the turn Telegram's text updates take: on the event loop, its replay
    guard, owed replies and new state in one statement); whatever it hands back — a redelivery,
    a first contact, a turn that needs the back office, a race with another turn of the same
    citizen — and every other event, and SQLite, take the full way from the start."""
    if (
        runtime.async_reader is not None
        and event.kind is EventKind.TURN
        and event.incoming is not None
        and event.page is None  # "more": its page is cut from the replies, the full way
    ):
        now = utcnow()
        lease_until = now + timedelta(seconds=runtime.settings.outbox_lease_seconds)
        quick = await quick_turn(runtime.async_reader, channel=CHANNEL,
                                 delivery_id=event.delivery_id, external_id=event.user_id,
                                 recipient=event.user_id, incoming=event.incoming,
                                 catalog=runtime.catalog, in_answer=_never_in_answer, now=now,
                                 lease_until=lease_until)  # fmt: skip
        if quick is not None:
            return OwedReplies(CHANNEL, event.delivery_id, event.user_id, quick[0], 0)
    return await run_db(runtime.engine, lambda: handle_now(runtime, event), quick=True)


def _never_in_answer(_: list[Reply]) -> bool:
    return False  # Zalo's webhook answer carries no message: every reply is sent


async def send_owed(runtime: Runtime, zalo: ZaloChannel, owed: OwedReplies) -> None:
    """Send what a turn owes, each reply recorded once out. Text and buttons go on the event
    loop over the process's connections (`ZaloSender.send_async`), each mark one statement (on
    PostgreSQL through the asyncio pool); an image, or no connections (the dispatcher's own loop),
    goes the sync way in a thread. The reply was owed in the database before Zalo got its
    200: a process that dies between a send and its mark sends that reply again, once, when
    the lease is over — as the sync way does."""
    sender = zalo.sender
    if (
        zalo.api is None
        or not isinstance(sender, ZaloSender)
        or any(reply.image_png is not None for reply in owed.unsent)
    ):
        await anyio.to_thread.run_sync(send_owed_replies, runtime.engine, sender, owed)
        return
    connections, recipient = zalo.api, owed.recipient

    async def send(reply: Reply) -> object:
        return await sender.send_async(connections, recipient, reply)

    async def went_out(count: int) -> None:
        if runtime.async_reader is not None:
            await quick_replies_went_out(runtime.async_reader, owed, count)
        else:
            await run_db(runtime.engine, partial(_went_out, runtime, owed, count), quick=True)

    await send_owed_replies_async(owed, send, went_out)


def _went_out(runtime: Runtime, owed: OwedReplies, count: int) -> None:
    with single_statements(runtime.engine) as connection:
        replies_went_out(connection, owed, count)


async def handle_event(runtime: Runtime, zalo: ZaloChannel, event: ZaloEvent) -> None:
    """Do what a kept event asks; the event row is settled in the same transaction."""
    if event.kind in (EventKind.TURN, EventKind.FOLLOW):
        given = await _incoming(zalo, event)
        if isinstance(given, Reply):  # an attachment we would not take: say why, nothing more
            refusal = given
            owed = await run_db(runtime.engine, lambda: _owe(runtime, event, [refusal]), quick=True)
        else:
            incoming = given
            owed = await run_db(
                runtime.engine, lambda: _turn(runtime, event, incoming), quick=not incoming.files
            )
        await send_owed(runtime, zalo, owed)
        return

    def settle() -> None:
        with session_scope(runtime.engine) as session:
            if event.kind is EventKind.ADMIN_REPLY and event.text:
                record_outside_reply(session, CHANNEL, event.user_id, event.text)
            event_handled(session, CHANNEL, event.delivery_id)

    await run_db(runtime.engine, settle, quick=True)


async def _incoming(zalo: ZaloChannel, event: ZaloEvent) -> Incoming | Reply:
    """The turn's input with its attachments downloaded (only from Zalo's media hosts)."""
    if event.kind is EventKind.FOLLOW:
        return Incoming(text="/start")
    assert event.incoming is not None
    files = []
    for attachment in event.attachments[:MAX_FILES]:
        try:
            data = await download(zalo.downloads, attachment.url,
                                  allowed_hosts=zalo.media_hosts, max_bytes=MAX_BYTES)  # fmt: skip
        except TooLarge:
            return Reply(render("chat.file_too_large_zalo"))
        except DownloadRefused as error:
            log.warning("zalo attachment not taken: %s", error)
            return Reply(render("chat.file_not_downloaded"))
        files.append(IncomingFile(data, attachment.name))
    return event.with_files(files)


def _turn(runtime: Runtime, event: ZaloEvent, incoming: Incoming) -> OwedReplies:
    with session_scope(runtime.engine) as session:
        return _owe_in(session, runtime, event, _converse(runtime, session, event, incoming))


def _converse(runtime: Runtime, session: Any, event: ZaloEvent, incoming: Incoming) -> list[Reply]:
    """One dialogue turn; after "more" was pressed, the next page of the choices it shows."""
    replies = converse(
        session,
        channel=CHANNEL,
        external_id=event.user_id,
        incoming=incoming,
        catalog=runtime.catalog,
        calendar=runtime.calendar,
        media=runtime.media,
        public_base_url=runtime.settings.public_base_url,
        rules=runtime.flow_rules,
    )
    return more_choices(replies, *event.page) if event.page is not None else replies


def _owe(runtime: Runtime, event: ZaloEvent, replies: list[Reply]) -> OwedReplies:
    with session_scope(runtime.engine) as session:
        return _owe_in(session, runtime, event, replies)


def _owe_in(session: Any, runtime: Runtime, event: ZaloEvent, replies: list[Reply]) -> OwedReplies:
    lease = timedelta(seconds=runtime.settings.outbox_lease_seconds)
    if not replies:
        event_handled(session, CHANNEL, event.delivery_id)
    owe_replies(session, CHANNEL, event.delivery_id, recipient=event.user_id, replies=replies,
                answered=False, lease_until=utcnow() + lease)  # fmt: skip
    return OwedReplies(CHANNEL, event.delivery_id, event.user_id, replies, 0)


def handle_kept_event(runtime: Runtime, sender: Sender, delivery_id: str, lease: timedelta) -> bool:
    """An event kept by a web process that died before handling it: handled here, once."""
    now = utcnow()
    with single_statements(runtime.engine) as connection:
        payload = claim_event(connection, CHANNEL, delivery_id, now, now + lease)
    if payload is None:
        return False

    async def handle() -> None:
        async with downloads_client() as downloads:
            hosts = runtime.settings.zalo_media_host_list
            await handle_event(runtime, ZaloChannel(sender, downloads, hosts), translate(payload))

    anyio.run(handle)
    return True


def downloads_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(20.0, connect=5.0))
