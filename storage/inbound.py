"""Replay guard for webhooks (each delivery id — update_id, msg_id, SMS id — is handled once),
the replies a dialogue turn owes until they are sent, and albums held back until their last photo
arrives.

Owed replies follow the outbox rule: they are written in the turn's own transaction, so a
process that dies after the commit cannot take the answer (the dossier code above all) with it.

    answered ──(the delivery comes again: our answer never reached the service)──▶ sending
    sending ──each reply out: replies_sent + 1──▶ sent
       └──(lease over: the sending process went away)──▶ claimed again, the rest sent
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import Session, col

from core.replies import Button, Reply
from storage.models import AlbumPart, InboundEvent, UTCDateTime, utcnow


def _record_delivery(insert: Any) -> Any:
    table = InboundEvent.__table__  # type: ignore[attr-defined]
    return (
        insert(table)
        .values(
            channel=bindparam("channel"),
            external_id=bindparam("external_id"),
            received_at=bindparam("received_at", type_=UTCDateTime),
        )
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        .returning(table.c.external_id)
    )


# Built once per dialect: every webhook delivery runs it (see bench/telegram_intake.py).
_RECORD_DELIVERY = {
    "postgresql": _record_delivery(pg_insert),
    "sqlite": _record_delivery(sqlite_insert),
}


def first_delivery(session: Session, channel: str, external_id: str) -> bool:
    """Record the delivery; False when it was seen before (a redelivery to acknowledge and drop)."""
    connection = session.connection()
    statement = _RECORD_DELIVERY[connection.dialect.name]
    values = {"channel": channel, "external_id": external_id, "received_at": utcnow()}
    return connection.execute(statement, values).first() is not None


_events: Any = InboundEvent.__table__  # type: ignore[attr-defined]
RECEIVED, ANSWERED, SENDING, SENT = "received", "answered", "sending", "sent"


def _owe(insert: Any) -> Any:
    """An upsert: the delivery's row normally exists (the replay guard wrote it first)."""
    owed = {
        "recipient": bindparam("owe_recipient"),
        "replies": bindparam("owe_replies", type_=JSON),
        "reply_state": bindparam("owe_state"),
        "replies_sent": 0,
        "reply_lease_until": bindparam("owe_lease_until", type_=UTCDateTime),
        "payload": None,  # handled: what the citizen sent is not kept here any longer
    }
    statement = insert(_events).values(
        channel=bindparam("owe_channel"),
        external_id=bindparam("owe_delivery"),
        received_at=bindparam("owe_received_at", type_=UTCDateTime),
        **owed,
    )
    return statement.on_conflict_do_update(index_elements=["channel", "external_id"], set_=owed)


# Built once per dialect: every dialogue turn with replies runs it.
_OWE = {"postgresql": _owe(pg_insert), "sqlite": _owe(sqlite_insert)}


def reply_to_json(reply: Reply) -> dict[str, Any]:
    return {
        "text": reply.text,
        "buttons": [[[b.label, b.data] for b in row] for row in reply.buttons],
        "image_png": base64.b64encode(reply.image_png).decode() if reply.image_png else None,
        "ask_contact": reply.ask_contact,
        "ask_location": reply.ask_location,
    }


def reply_from_json(data: dict[str, Any]) -> Reply:
    image = data.get("image_png")
    return Reply(
        text=data["text"],
        buttons=tuple(tuple(Button(label, key) for label, key in row) for row in data["buttons"]),
        image_png=base64.b64decode(image) if image else None,
        ask_contact=bool(data.get("ask_contact")),
        ask_location=bool(data.get("ask_location")),
    )


def owe_replies(
    session: Session,
    channel: str,
    delivery_id: str,
    *,
    recipient: str,
    replies: list[Reply],
    answered: bool,
    lease_until: datetime,
) -> None:
    """Keep a turn's replies with its delivery, in the turn's transaction. `answered`: they go
    back in the webhook's own response, so only a redelivery says they did not arrive; otherwise
    they are being sent, and whoever finds the lease over finishes the job."""
    if not replies:
        return
    connection = session.connection()
    connection.execute(
        _OWE[connection.dialect.name],
        {
            "owe_channel": channel,
            "owe_delivery": delivery_id,
            "owe_received_at": utcnow(),
            "owe_recipient": recipient,
            "owe_replies": [reply_to_json(r) for r in replies],
            "owe_state": ANSWERED if answered else SENDING,
            "owe_lease_until": lease_until,
        },
    )


@dataclass(frozen=True)
class OwedReplies:
    """Replies this process now sends, from `replies[sent]` on, until `lease_until`."""

    channel: str
    delivery_id: str
    recipient: str
    replies: list[Reply]
    sent: int

    @property
    def unsent(self) -> list[Reply]:
        return self.replies[self.sent :]


def claim_owed_replies(
    connection: Connection, channel: str, delivery_id: str, now: datetime, lease_until: datetime
) -> OwedReplies | None:
    """Take over the replies still owed for a delivery: answered in a response that never
    arrived (the service delivers again), or being sent by a process whose lease is over.
    A conditional UPDATE, so of two processes only one gets them."""
    row = connection.execute(
        update(_events)
        .where(
            _events.c.channel == channel,
            _events.c.external_id == delivery_id,
            or_(
                _events.c.reply_state == ANSWERED,
                and_(_events.c.reply_state == SENDING, _events.c.reply_lease_until <= now),
            ),
        )
        .values(reply_state=SENDING, reply_lease_until=lease_until)
        .returning(_events.c.recipient, _events.c.replies, _events.c.replies_sent)
    ).first()
    if row is None or row.recipient is None:
        return None
    replies = [reply_from_json(r) for r in row.replies or []]
    return OwedReplies(channel, delivery_id, row.recipient, replies, row.replies_sent)


def replies_went_out(connection: Connection, owed: OwedReplies, sent: int) -> None:
    """`sent` replies of `owed` are out; the last one makes the delivery settled."""
    connection.execute(
        update(_events)
        .where(_events.c.channel == owed.channel, _events.c.external_id == owed.delivery_id)
        .values(replies_sent=sent, reply_state=SENT if sent >= len(owed.replies) else SENDING)
    )


def stored_replies(session: Session, channel: str, delivery_id: str) -> list[Reply] | None:
    """The replies a delivery was answered with (None: no such delivery), for a client that
    asks again with the same id because our first answer never reached it (the web chat)."""
    row = session.execute(
        select(_events.c.replies).where(
            _events.c.channel == channel, _events.c.external_id == delivery_id
        )
    ).first()
    if row is None:
        return None
    return [reply_from_json(r) for r in row.replies or []]


def accept_event(
    session: Session, channel: str, delivery_id: str, payload: dict[str, Any], lease_until: datetime
) -> bool:
    """Keep an event that is acknowledged before it is handled (Zalo wants its 200 within 2 s):
    False when it was seen before. The receiving process handles it at once; if it dies first,
    the dispatcher finds it once `lease_until` is over (`unhandled_events`)."""
    connection = session.connection()
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(_events)
        .values(
            channel=channel,
            external_id=delivery_id,
            received_at=utcnow(),
            payload=payload,
            reply_state=RECEIVED,
            reply_lease_until=lease_until,
        )
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        .returning(_events.c.external_id)
    )
    return connection.execute(statement).first() is not None


def claim_event(
    connection: Connection, channel: str, delivery_id: str, now: datetime, lease_until: datetime
) -> dict[str, Any] | None:
    """Take over an acknowledged event whose process went away before handling it."""
    row = connection.execute(
        update(_events)
        .where(
            _events.c.channel == channel,
            _events.c.external_id == delivery_id,
            _events.c.reply_state == RECEIVED,
            _events.c.reply_lease_until <= now,
        )
        .values(reply_lease_until=lease_until)
        .returning(_events.c.payload)
    ).first()
    return None if row is None else dict(row.payload or {})


def event_handled(session: Session, channel: str, delivery_id: str) -> None:
    """The event's turn ran and owed nothing (its replies, if any, were owed by `owe_replies`)."""
    session.execute(
        update(_events)
        .where(
            _events.c.channel == channel,
            _events.c.external_id == delivery_id,
            _events.c.reply_state == RECEIVED,
        )
        .values(reply_state=SENT, payload=None)
    )


# Replies older than this are not sent any more: after a day the citizen has moved on (and
# Telegram stops redelivering an update); their dossier is still listed under "my dossiers".
REPLY_GIVE_UP = timedelta(days=1)


def _left_behind(session: Session, state: str, now: datetime) -> list[tuple[str, str]]:
    """(channel, delivery id) of rows in `state` whose process's lease is over."""
    rows = session.execute(
        select(_events.c.channel, _events.c.external_id).where(
            _events.c.reply_state == state,
            _events.c.reply_lease_until <= now,
            _events.c.received_at >= now - REPLY_GIVE_UP,
        )
    ).all()
    return [(r[0], r[1]) for r in rows]


def unhandled_events(session: Session, now: datetime) -> list[tuple[str, str]]:
    """Acknowledged events whose process died before handling them."""
    return _left_behind(session, RECEIVED, now)


def abandoned_replies(session: Session, now: datetime) -> list[tuple[str, str]]:
    """Replies whose sending process went away before finishing."""
    return _left_behind(session, SENDING, now)


# Telegram gives up redelivering an update after about a day, an SMS gateway sooner: after a week
# a delivery id cannot come back, and its row only makes the table grow (one row per update).
REPLAY_WINDOW = timedelta(days=7)


def forget_deliveries(session: Session, before: datetime) -> int:
    """Drop the replay guard's rows received before `before`; how many went."""
    table = InboundEvent.__table__  # type: ignore[attr-defined]
    result = session.execute(delete(table).where(table.c.received_at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def park_album_part(
    session: Session,
    *,
    channel: str,
    external_id: str,
    media_group_id: str,
    update_id: int,
    data: bytes,
    caption: str,
) -> None:
    """Keep one photo of an album until the album is complete (see `take_album`)."""
    session.add(
        AlbumPart(
            channel=channel,
            external_id=external_id,
            media_group_id=media_group_id,
            update_id=update_id,
            data=data,
            caption=caption,
        )
    )


def take_album(
    session: Session, channel: str, external_id: str, media_group_id: str, last_update_id: int
) -> list[AlbumPart] | None:
    """The album's photos, removed, when `last_update_id` is still its latest part; None when a
    later photo arrived (its own turn will take the album) or another worker took it already."""
    parts = list(
        session.execute(
            select(AlbumPart)
            .where(
                col(AlbumPart.channel) == channel,
                col(AlbumPart.external_id) == external_id,
                col(AlbumPart.media_group_id) == media_group_id,
            )
            .order_by(col(AlbumPart.update_id))
        ).scalars()
    )
    if not parts or parts[-1].update_id != last_update_id:
        return None
    removed = session.execute(delete(AlbumPart).where(col(AlbumPart.id).in_([p.id for p in parts])))
    if removed.rowcount != len(parts):  # type: ignore[attr-defined]
        return None  # a concurrent turn took (some of) them: let it answer
    return parts


def stale_albums(session: Session, older_than: datetime) -> list[tuple[str, str, str, int]]:
    """Albums whose answering process went away: (channel, chat, group, latest update id) of
    parts all received before `older_than` — nobody is waiting to answer them any more."""
    rows = session.execute(
        select(
            col(AlbumPart.channel),
            col(AlbumPart.external_id),
            col(AlbumPart.media_group_id),
            func.max(col(AlbumPart.update_id)),
        )
        .group_by(col(AlbumPart.channel), col(AlbumPart.external_id), col(AlbumPart.media_group_id))
        .having(func.max(col(AlbumPart.received_at)) < older_than)
    ).all()
    return [(r[0], r[1], r[2], int(r[3])) for r in rows]


def unsent_reply_count(session: Session) -> int:
    """Replies still owed (being sent, or left by a process that went away)."""
    statement = select(func.count()).select_from(_events).where(_events.c.reply_state == SENDING)
    return int(session.execute(statement).scalar_one())
