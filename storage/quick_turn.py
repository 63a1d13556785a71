"""The common dialogue turn on PostgreSQL, on the event loop, in two statements.

Most turns (the menu, a button, the name, the phone) ask nothing of the back office: they need
the citizen's state, the replay guard, the new state and the replies owed. Here that is a read
of the state, the dialogue in Python, then **one** statement that records the delivery with its
owed replies and saves the new state — atomic as every statement is, so no BEGIN/COMMIT round
trips, no worker thread, no ORM session (bench/profile_turn.py measured five round trips, a
thread hop each way and the session as what bounded the turn).

The write is optimistic: it happens only if the state is still the one read. A turn of the same
chat that committed meanwhile (it holds the row until then: `storage.intake` reads it FOR
UPDATE) makes this one write nothing. That turn, a redelivery, a first contact and a turn whose
dialogue calls the back office all go back to the caller's full path (`storage.intake.converse`),
which runs the same turn from the start, in order after the other one.

A channel that sends its replies itself (Zalo) records each one out with `replies_went_out`,
one prepared statement on the same pool: the sends stay on the event loop too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from psycopg.types.json import Json
from psycopg_pool import AsyncConnectionPool

from core.catalog import Catalog
from core.conversation import Conversation, Incoming, handle
from core.replies import Reply
from storage.inbound import ANSWERED, SENDING, SENT, OwedReplies, reply_to_json

_READ_STATE = """
SELECT id, conversation::text FROM channelidentity
WHERE channel = %(channel)s AND external_id = %(external_id)s
"""

# The delivery's row as the full path leaves it: the replay guard's INSERT then
# `storage.inbound.owe_replies`'s upsert (JSON null in `payload`), here in one INSERT.
_RECORD_AND_SAVE = """
WITH unchanged AS (
    SELECT id FROM channelidentity
    WHERE id = %(identity_id)s AND conversation::text = %(read_conversation)s
    FOR UPDATE
), recorded AS (
    INSERT INTO inboundevent (channel, external_id, received_at, recipient, payload, replies,
                              reply_state, replies_sent, reply_lease_until)
    SELECT %(channel)s::varchar, %(delivery_id)s::varchar, %(now)s::timestamptz,
           %(recipient)s::varchar, %(payload)s::json, %(replies)s::json,
           %(reply_state)s::varchar, 0, %(lease_until)s::timestamptz
    FROM unchanged
    ON CONFLICT (channel, external_id) DO NOTHING
    RETURNING 1
), saved AS (
    UPDATE channelidentity
    SET conversation = %(conversation)s::json, language = %(language)s::varchar,
        last_seen_at = %(now)s::timestamptz
    WHERE id = %(identity_id)s AND EXISTS (SELECT FROM recorded)
    RETURNING 1
)
SELECT count(*) FROM saved
"""


class _NeedsBackoffice(Exception):
    """The dialogue asked the back office for something: this turn takes the full path."""


class _NoBackoffice:
    """core.conversation.Backoffice for the quick turn: any call sends the turn the full way."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def refuse(*_: Any, **__: Any) -> Any:
            raise _NeedsBackoffice(name)

        return refuse


_NO_BACKOFFICE: Any = _NoBackoffice()


async def quick_turn(
    pool: AsyncConnectionPool,
    *,
    channel: str,
    delivery_id: str,
    external_id: str,
    recipient: str,
    incoming: Incoming,
    catalog: Catalog,
    in_answer: Callable[[list[Reply]], bool],
    now: datetime,
    lease_until: datetime,
) -> tuple[list[Reply], bool] | None:
    """Run one turn without files, its delivery and owed replies written with the new state:
    the replies and whether they go in the webhook's answer (`in_answer` decides, as the full
    path does). None when nothing was written and the turn must take the full path."""
    assert not incoming.files, "a file is checked and stored: the full path"
    async with pool.connection() as connection:
        cursor = await connection.execute(
            _READ_STATE, {"channel": channel, "external_id": external_id}, prepare=True
        )
        row = await cursor.fetchone()
        if row is None:  # first contact: the citizen is created the full way
            return None
        identity_id, read_conversation = row
        conversation = Conversation.from_json(json.loads(read_conversation or "null") or {})
        try:
            replies = handle(conversation, incoming, catalog=catalog, backoffice=_NO_BACKOFFICE)
        except _NeedsBackoffice:
            return None
        answered = in_answer(replies)
        owed = bool(replies)
        cursor = await connection.execute(
            _RECORD_AND_SAVE,
            {
                "identity_id": identity_id,
                "read_conversation": read_conversation,
                "channel": channel,
                "delivery_id": delivery_id,
                "now": now,
                "recipient": recipient if owed else None,
                "payload": Json(None) if owed else None,
                "replies": Json([reply_to_json(r) for r in replies]) if owed else None,
                "reply_state": (ANSWERED if answered else SENDING) if owed else None,
                "lease_until": lease_until if owed else None,
                "conversation": Json(conversation.to_json()),
                "language": conversation.lang,
            },
            prepare=True,
        )
        written = await cursor.fetchone()
    if written is None or written[0] != 1:  # a redelivery, or the chat's state moved on
        return None
    return replies, answered


_WENT_OUT = """
UPDATE inboundevent SET replies_sent = %(sent)s, reply_state = %(state)s
WHERE channel = %(channel)s AND external_id = %(delivery_id)s
"""


async def replies_went_out(pool: AsyncConnectionPool, owed: OwedReplies, sent: int) -> None:
    """`storage.inbound.replies_went_out` through the asyncio pool: one statement, its own
    transaction (autocommit), no thread hop."""
    state = SENT if sent >= len(owed.replies) else SENDING
    values = {"sent": sent, "state": state, "channel": owed.channel,
              "delivery_id": owed.delivery_id}  # fmt: skip
    async with pool.connection() as connection:
        await connection.execute(_WENT_OUT, values, prepare=True)
