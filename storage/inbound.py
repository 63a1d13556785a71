"""Replay guard for webhooks: each delivery id (update_id, msg_id, SMS id) is handled once."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from storage.models import InboundEvent, utcnow


def first_delivery(session: Session, channel: str, external_id: str) -> bool:
    """Record the delivery; False when it was seen before (a redelivery to acknowledge and drop)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = InboundEvent.__table__  # type: ignore[attr-defined]
    statement = (
        insert(table)
        .values(channel=channel, external_id=external_id, received_at=utcnow())
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        .returning(table.c.external_id)
    )
    return session.execute(statement).scalar_one_or_none() is not None
