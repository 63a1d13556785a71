"""Replay guard for webhooks (each delivery id — update_id, msg_id, SMS id — is handled once),
and albums held back until their last photo arrives."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

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
