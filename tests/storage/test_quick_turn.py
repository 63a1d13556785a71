"""The quick dialogue turn on PostgreSQL (storage.quick_turn) writes what the full path writes,
in two round trips, hands every other turn back untouched, and serialises turns of one chat."""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import tempfile
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from core.catalog import Catalog
from core.conversation import Incoming
from core.flows import NO_ONESTOP
from core.replies import Reply
from storage.db import make_async_reader, session_scope
from storage.inbound import first_delivery, owe_replies
from storage.intake import converse
from storage.media import DiskMediaStore
from storage.models import InboundEvent, utcnow
from storage.quick_turn import quick_turn

CHANNEL = "telegram"


def full_turn(engine: Engine, catalog: Catalog, chat: str, delivery: str, incoming: Incoming,
              tmp: Path) -> list[Reply]:  # fmt: skip
    """The turn as bots.telegram_citizen runs it the full way (the sync path)."""
    now = utcnow()
    with session_scope(engine) as session:
        assert first_delivery(session, CHANNEL, delivery)
        replies = converse(session, channel=CHANNEL, external_id=chat, incoming=incoming,
                           catalog=catalog, calendar=None, media=DiskMediaStore(tmp),  # type: ignore[arg-type]
                           rules=NO_ONESTOP,
                           public_base_url="https://hcc.example.vn", now=now)  # fmt: skip
        owe_replies(session, CHANNEL, delivery, recipient=chat, replies=replies,
                    answered=True, lease_until=now + timedelta(seconds=30))  # fmt: skip
    return replies


def in_pool(
    postgres_url: str, work: Callable[[AsyncConnectionPool], Awaitable[Any]], size: int = 20
) -> Any:
    async def run() -> Any:
        pool = make_async_reader(postgres_url, max_size=size)
        assert pool is not None
        await pool.open()
        try:
            return await work(pool)
        finally:
            await pool.close()

    return asyncio.run(run())


async def quick(pool: AsyncConnectionPool, catalog: Catalog, chat: str, delivery: str,
                incoming: Incoming) -> tuple[list[Reply], bool] | None:  # fmt: skip
    now = utcnow()
    return await quick_turn(pool, channel=CHANNEL, delivery_id=delivery, external_id=chat,
                            recipient=chat, incoming=incoming, catalog=catalog,
                            in_answer=lambda replies: len(replies) == 1, now=now,
                            lease_until=now + timedelta(seconds=30))  # fmt: skip


def rows(engine: Engine, chat: str, delivery: str) -> tuple[Any, Any]:
    with engine.connect() as connection:
        identity = connection.execute(
            text("SELECT conversation::text, language FROM channelidentity "
                 "WHERE channel = :c AND external_id = :e"), {"c": CHANNEL, "e": chat}
        ).one()  # fmt: skip
        event = connection.execute(
            text("SELECT recipient, replies::text, reply_state, replies_sent, payload IS NULL, "
                 "reply_lease_until - received_at > interval '29 seconds' FROM inboundevent "
                 "WHERE channel = :c AND external_id = :e"), {"c": CHANNEL, "e": delivery}
        ).one()  # fmt: skip
    return tuple(identity), tuple(event)


def test_a_quick_turn_writes_the_rows_the_full_path_writes(
    engine: Engine, postgres_url: str, catalog: Catalog, tmp_path: Path
) -> None:
    if engine.dialect.name != "postgresql":
        return
    for chat in ("1", "2"):
        full_turn(engine, catalog, chat, f"start-{chat}", Incoming(text="/start"), tmp_path)
    full_turn(engine, catalog, "1", "menu-1", Incoming(text="menu"), tmp_path)
    menu = Incoming(text="menu")
    outcome = in_pool(postgres_url, lambda pool: quick(pool, catalog, "2", "menu-2", menu))

    assert outcome is not None and outcome[1] is True
    full, fast = rows(engine, "1", "menu-1"), rows(engine, "2", "menu-2")
    assert fast[0] == full[0]
    assert fast[1][1:] == full[1][1:] and fast[1][0] == "2"


def test_other_turns_are_handed_back_with_nothing_written(
    engine: Engine, postgres_url: str, catalog: Catalog, tmp_path: Path
) -> None:
    if engine.dialect.name != "postgresql":
        return
    full_turn(engine, catalog, "1", "start", Incoming(text="/start"), tmp_path)

    async def attempts(pool: AsyncConnectionPool) -> list[Any]:
        return [
            await quick(pool, catalog, "9", "first-contact", Incoming(text="/start")),
            await quick(pool, catalog, "1", "start", Incoming(text="menu")),  # a redelivery
            await quick(pool, catalog, "1", "mine", Incoming(button="menu:mine")),  # back office
        ]

    assert in_pool(postgres_url, attempts) == [None, None, None]
    with engine.connect() as connection:
        ids = connection.execute(select(InboundEvent.external_id)).scalars().all()  # type: ignore[call-overload]
        identities = connection.execute(text("SELECT count(*) FROM channelidentity")).scalar()
    assert sorted(ids) == ["start"] and identities == 1


def test_a_quick_turn_takes_two_round_trips(
    engine: Engine, postgres_url: str, catalog: Catalog, tmp_path: Path
) -> None:
    if engine.dialect.name != "postgresql":
        return
    full_turn(engine, catalog, "1", "start", Incoming(text="/start"), tmp_path)
    trace = Path(tempfile.mkdtemp()) / "trace"

    async def traced(pool: AsyncConnectionPool) -> None:
        await quick(pool, catalog, "1", "warm", Incoming(text="menu"))  # statements prepared
        with trace.open("w") as out:
            async with pool.connection() as connection:
                connection.pgconn.trace(out.fileno())
            await quick(pool, catalog, "1", "menu", Incoming(text="menu"))
            ctypes.CDLL(None).fflush(None)  # libpq writes through a C stream
            async with pool.connection() as connection:
                connection.pgconn.untrace()

    in_pool(postgres_url, traced, size=1)  # one connection: the one traced
    # A round trip: the client sends (F), then waits for what the server sends back (B).
    lines = [line.split("\t") for line in trace.read_text().splitlines()]
    directions = [parts[1] for parts in lines if len(parts) > 3]  # (an SQL text's lines go on)
    assert sum(1 for sent, got in itertools.pairwise(directions) if (sent, got) == ("F", "B")) == 2


def test_a_turn_that_raced_another_of_the_same_chat_writes_nothing(
    engine: Engine, postgres_url: str, catalog: Catalog, tmp_path: Path
) -> None:
    """Both read the same state; had the later one saved, it would drop the earlier one's
    change. It writes nothing and takes the full path, which reads the new state."""
    if engine.dialect.name != "postgresql":
        return
    full_turn(engine, catalog, "1", "start", Incoming(text="/start"), tmp_path)

    async def race(pool: AsyncConnectionPool) -> Any:
        async with await psycopg.AsyncConnection.connect(postgres_url) as first:
            await first.execute("SELECT 1 FROM channelidentity WHERE external_id = '1' FOR UPDATE")
            second = asyncio.create_task(quick(pool, catalog, "1", "second", Incoming(text="menu")))
            await asyncio.sleep(0.5)
            assert not second.done()  # waiting for the first turn's lock
            await first.execute(
                "UPDATE channelidentity SET conversation = "
                "jsonb_set(conversation::jsonb, '{lang}', '\"en\"')::json WHERE external_id = '1'"
            )
            await first.commit()
            return await second

    assert in_pool(postgres_url, race) is None
    with engine.connect() as connection:
        saved = "SELECT conversation::json->>'lang' FROM channelidentity"
        language = connection.execute(text(saved)).scalar()
        ids = connection.execute(select(InboundEvent.external_id)).scalars().all()  # type: ignore[call-overload]
    assert language == "en" and sorted(ids) == ["start"]


def test_the_full_path_waits_for_a_turn_of_the_same_chat_and_reads_its_state(
    engine: Engine, catalog: Catalog, tmp_path: Path
) -> None:
    """storage.intake reads the state FOR UPDATE: without it, the later turn saves over the
    earlier one's change (both read the same state)."""
    if engine.dialect.name != "postgresql":
        return
    full_turn(engine, catalog, "1", "start", Incoming(text="/start"), tmp_path)
    with engine.connect() as first:
        first.execute(text("SELECT 1 FROM channelidentity WHERE external_id = '1' FOR UPDATE"))
        second = threading.Thread(
            target=full_turn, args=(engine, catalog, "1", "second", Incoming(text="menu"), tmp_path)
        )
        second.start()
        second.join(0.5)
        assert second.is_alive()  # waiting for the first turn's lock
        first.execute(text(
            "UPDATE channelidentity SET conversation = "
            "jsonb_set(conversation::jsonb, '{lang}', '\"en\"')::json WHERE external_id = '1'"
        ))  # fmt: skip
        first.commit()
    second.join(10)
    identity, _ = rows(engine, "1", "second")
    assert identity[1] == "en"  # the second turn saved on top of the first, not over it
