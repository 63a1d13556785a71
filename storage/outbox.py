"""The transactional outbox: notices are rows written with the change that caused them, and a
message leaves the outbox only through these state changes.

    pending ──dispatch──▶ queued ──claim──▶ sending ──▶ sent
       ▲                                      │
       └──────── retry later (backoff) ◀──────┤──▶ dead (dead letter; "retry" puts it back)
                                              └──▶ rerouted (chat unreachable → a row on the
                                                   fallback channel: SMS, a Zalo template)

A claim is a conditional UPDATE, so when a job runs twice (a re-dispatch after a lost worker,
two workers) only one of them sends; a claim that is never finished (the worker was killed)
expires after its lease and the message is dispatched again.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import Session, col

from core.channels import Channel, Contact, sms_fallback
from core.zalo_templates import tracking_id_for
from storage.models import ChannelIdentity, Citizen, Dossier, OutboxMessage

MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=15)
BACKOFF_CAP = timedelta(hours=1)

_OUTBOX: Any = OutboxMessage.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Claimed:
    """A message this worker now owns until `lease_until`."""

    id: int
    idempotency_key: str
    channel: str
    recipient: str
    template: str
    values: dict[str, Any]
    attempts: int
    citizen_id: int | None
    dossier_id: int | None


def add_message(
    session: Session,
    *,
    key: str,
    channel: str,
    recipient: str,
    template: str,
    values: dict[str, Any],
    dossier_id: int | None = None,
    citizen_id: int | None = None,
    at: datetime,
) -> bool:
    """Queue one message in the caller's transaction; False when `key` was already queued."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(_OUTBOX)
        .values(
            idempotency_key=key,
            dossier_id=dossier_id,
            citizen_id=citizen_id,
            channel=channel,
            recipient=recipient,
            template=template,
            values=values,
            state="pending",
            attempts=0,
            next_attempt_at=at,
            created_at=at,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(_OUTBOX.c.id)
    )
    return session.execute(statement).first() is not None


def _due(now: datetime) -> Any:
    return and_(
        _OUTBOX.c.state.in_(("pending", "queued", "sending")), _OUTBOX.c.next_attempt_at <= now
    )


def take_due(session: Session, now: datetime, lease: timedelta, limit: int = 500) -> list[int]:
    """Mark up to `limit` due messages as queued for `lease` and return their ids (oldest first).

    Several dispatchers may run at once: PostgreSQL skips rows another one holds."""
    due = (
        select(_OUTBOX.c.id)
        .where(_due(now))
        .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = [row[0] for row in session.execute(due)]
    if ids:
        session.execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(ids), _due(now))
            .values(state="queued", next_attempt_at=now + lease)
        )
    return ids


def release(session: Session, ids: list[int], at: datetime) -> None:
    """Queued messages that could not be handed to the queue (Redis down) wait for `at`."""
    session.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id.in_(ids), _OUTBOX.c.state == "queued")
        .values(state="pending", next_attempt_at=at)
    )


def claim(
    session: Session | Connection, message_id: int, now: datetime, lease: timedelta
) -> Claimed | None:
    """Take the message for sending, or None when it is sent, dead, or another worker holds it."""
    claimable = or_(_OUTBOX.c.state == "queued", _due(now))
    row = session.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id == message_id, claimable)
        .values(state="sending", attempts=_OUTBOX.c.attempts + 1, next_attempt_at=now + lease)
        .returning(
            _OUTBOX.c.id,
            _OUTBOX.c.idempotency_key,
            _OUTBOX.c.channel,
            _OUTBOX.c.recipient,
            _OUTBOX.c.template,
            _OUTBOX.c["values"],
            _OUTBOX.c.attempts,
            _OUTBOX.c.citizen_id,
            _OUTBOX.c.dossier_id,
        )
    ).first()
    return Claimed(*row) if row is not None else None


def mark_sent(
    session: Session | Connection, message_id: int, now: datetime, sent_ref: str | None = None
) -> None:
    """Sent; `sent_ref` is the service's id of the message, when it gives one (receipts)."""
    session.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id == message_id, _OUTBOX.c.state == "sending")
        .values(state="sent", sent_at=now, last_error=None, sent_ref=sent_ref or None)
    )


def backoff(attempts: int) -> timedelta:
    """Exponential backoff with full jitter: 15 s, 30 s, 1 min, … capped at one hour."""
    ceiling = min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_CAP)
    return ceiling * random.uniform(0.5, 1.0)


def retry_later(
    session: Session,
    message: Claimed,
    now: datetime,
    error: str,
    *,
    wait: timedelta | None = None,
    counts: bool = True,
) -> str:
    """Back to pending after `wait` (or the backoff); a message out of attempts goes dead.

    A rate limit (`counts=False`) is not the message's fault and never kills it."""
    attempts = message.attempts if counts else message.attempts - 1
    if counts and attempts >= MAX_ATTEMPTS:
        mark_dead(session, message.id, error)
        return "dead"
    session.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id == message.id, _OUTBOX.c.state == "sending")
        .values(
            state="pending",
            attempts=attempts,
            next_attempt_at=now + (wait if wait is not None else backoff(attempts)),
            last_error=error[:500],
        )
    )
    return "pending"


def mark_dead(session: Session, message_id: int, error: str) -> None:
    session.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id == message_id)
        .values(state="dead", last_error=error[:500])
    )


def reroute(
    session: Session, message: Claimed, now: datetime, error: str, to: str = Channel.SMS
) -> str:
    """The chat cannot carry the notice (blocked bot, unfollowed OA, Zalo's 7-day window): send
    the same notice on the fallback channel `to` — SMS, or a Zalo template message — by the
    citizen's phone; without a phone (or a fallback for this notice) the message is dead.

    The new row's key derives from this one's, so rerouting twice queues it once. A template
    message's key is its own `tracking_id` (≤ 48 characters), so Zalo's receipt finds it."""
    phone = None
    if message.citizen_id is not None:
        citizen = session.get(Citizen, message.citizen_id)
        phone = citizen.phone if citizen is not None else None
    if to == Channel.ZALO_TEMPLATE:
        allowed = phone is not None and message.channel == Channel.ZALO
        key = tracking_id_for(f"{message.idempotency_key}:zalo_template")
    else:
        allowed = sms_fallback(message.channel, message.template, phone)
        key = f"{message.idempotency_key}:sms"
    if phone is None or not allowed:
        mark_dead(session, message.id, error)
        return "dead"
    session.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id == message.id)
        .values(state="rerouted", last_error=error[:500])
    )
    add_message(
        session,
        key=key,
        channel=to,
        recipient=phone,
        template=message.template,
        values=message.values,
        dossier_id=message.dossier_id,
        citizen_id=message.citizen_id,
        at=now,
    )
    return "rerouted"


def record_receipt(
    session: Session, *, at: datetime, tracking_id: str | None = None, msg_ids: Sequence[str] = ()
) -> int:
    """A delivery receipt (Zalo's `user_received_message` / `user_seen_message`): the sent
    messages it names — a template message by its `tracking_id` (its key), any message by the
    id the service gave when it was sent — get `receipt_at` (the first receipt counts); how
    many rows it named."""
    names = []
    if tracking_id:
        names.append(_OUTBOX.c.idempotency_key == tracking_id)
    ids = [i for i in msg_ids if i]
    if ids:
        names.append(_OUTBOX.c.sent_ref.in_(ids))
    if not names:
        return 0
    result = session.execute(
        update(_OUTBOX)
        .where(or_(*names), _OUTBOX.c.state == "sent")
        .values(receipt_at=func.coalesce(_OUTBOX.c.receipt_at, at))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def channel_contact(session: Session, channel: str, external_id: str) -> Contact | None:
    """The citizen's last interaction on a channel and whether they left it (None: unknown)."""
    row = session.execute(
        select(col(ChannelIdentity.last_seen_at), col(ChannelIdentity.unreachable_at)).where(
            col(ChannelIdentity.channel) == channel,
            col(ChannelIdentity.external_id) == external_id,
        )
    ).first()
    return None if row is None else Contact(row[0], row[1])


def mark_unreachable(session: Session, channel: str, external_id: str, at: datetime) -> bool:
    """The citizen left the channel (unfollowed the OA): notices go another way until
    `mark_reachable`. False when the channel does not know them."""
    return _set_unreachable(session, channel, external_id, at)


def mark_reachable(session: Session, channel: str, external_id: str) -> bool:
    """The citizen is back (followed again)."""
    return _set_unreachable(session, channel, external_id, None)


def _set_unreachable(session: Session, channel: str, external_id: str, at: datetime | None) -> bool:
    result = session.execute(
        update(ChannelIdentity)
        .where(
            col(ChannelIdentity.channel) == channel,
            col(ChannelIdentity.external_id) == external_id,
        )
        .values(unreachable_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def dead_letters(
    session: Session, agency_code: str | None, limit: int = 100
) -> list[OutboxMessage]:
    """Messages that gave up, newest first: one agency's dossiers, or all (`agency_code` None)."""
    query = (
        select(OutboxMessage)
        .where(col(OutboxMessage.state) == "dead")
        .order_by(col(OutboxMessage.id).desc())
        .limit(limit)
    )
    if agency_code is not None:
        query = query.join(Dossier, col(Dossier.id) == col(OutboxMessage.dossier_id)).where(
            col(Dossier.agency_code) == agency_code
        )
    return list(session.execute(query).scalars())


def retry_dead(session: Session, message_id: int, now: datetime) -> bool:
    """The panel's "retry": a dead letter gets a fresh set of attempts."""
    result = session.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id == message_id, _OUTBOX.c.state == "dead")
        .values(state="pending", attempts=0, next_attempt_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mailbox(session: Session, channel: str, recipient: str, after_id: int) -> list[OutboxMessage]:
    """Messages delivered to a mailbox channel (web chat) after `after_id`, oldest first."""
    return list(
        session.execute(
            select(OutboxMessage)
            .where(
                OutboxMessage.channel == channel,  # type: ignore[arg-type]
                OutboxMessage.recipient == recipient,  # type: ignore[arg-type]
                OutboxMessage.state == "sent",  # type: ignore[arg-type]
                OutboxMessage.id > after_id,  # type: ignore[operator,arg-type]
            )
            .order_by(OutboxMessage.id)  # type: ignore[arg-type]
            .limit(50)
        ).scalars()
    )


# States a message is still on its way in (sent, dead and rerouted are settled).
UNSETTLED = ("pending", "queued", "sending")


def outbox_depth(session: Session) -> list[tuple[str, str, int, datetime | None]]:
    """(channel, state, messages, oldest created_at) of unsettled and dead messages: what an
    operator watches (a growing queue, an old pending message, dead letters)."""
    rows = session.execute(
        select(
            col(OutboxMessage.channel),
            col(OutboxMessage.state),
            func.count(),
            func.min(col(OutboxMessage.created_at)),
        )
        .where(col(OutboxMessage.state).in_([*UNSETTLED, "dead"]))
        .group_by(col(OutboxMessage.channel), col(OutboxMessage.state))
    ).all()
    return [(r[0], r[1], int(r[2]), r[3]) for r in rows]
