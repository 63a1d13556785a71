"""Engines and sessions for SQLite (embedded default) and PostgreSQL (at scale)."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session, create_engine


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long one wait on the database may last, in seconds, so that an outage is answered
    ("try again later") instead of hanging: opening a connection and one statement (PostgreSQL;
    0 = no limit), and waiting for a free connection of the pool."""

    connect: float = 3.0
    statement: float = 15.0
    pool: float = 2.0

    def postgres_parameters(self, url_options: str | None = None) -> dict[str, Any]:
        """libpq connection parameters; `url_options` are the URL's own `options`, kept."""
        parameters: dict[str, Any] = {}
        if self.connect > 0:  # libpq counts whole seconds, at least 2
            parameters["connect_timeout"] = max(2, math.ceil(self.connect))
        if self.statement > 0:
            limit = f"-c statement_timeout={math.ceil(self.statement * 1000)}"
            parameters["options"] = f"{url_options} {limit}" if url_options else limit
        return parameters


DEFAULT_POOL_SIZE = 20


def make_engine(
    database_url: str,
    timeouts: DatabaseTimeouts = DatabaseTimeouts(),
    pool_size: int = DEFAULT_POOL_SIZE,
    **kwargs: Any,
) -> Engine:
    """An engine for the URL; SQLite gets WAL, a busy timeout and its parent directory,
    PostgreSQL the `timeouts` and `pool_size` connections kept open.

    The pool must hold the turns in flight: a connection beyond it (an "overflow") is closed on
    return, so each one past the size is a connect, an authentication and its statements
    prepared again (bench/profile_turn.py counted 73–110 per 1,000 turns with 10 kept for 16)."""
    url = make_url(database_url)
    kwargs.setdefault("pool_timeout", timeouts.pool)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            _private_database_file(Path(url.database))
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("", "psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    options = url.query.get("options")
    kwargs.setdefault(
        "connect_args", timeouts.postgres_parameters(options if isinstance(options, str) else None)
    )
    # No pre-ping: it would double the round trips of every short query; stale connections are
    # recycled instead, and a dropped one fails a single request and is discarded by the pool.
    kwargs.setdefault("pool_recycle", 1800)
    kwargs.setdefault("pool_size", pool_size)
    kwargs.setdefault("max_overflow", pool_size // 2)  # a burst waits less, then they close
    return create_engine(url, **kwargs)


def _private_database_file(path: Path) -> None:
    """The embedded database holds personal data: its folder is created 0700 and the file 0600
    (SQLite gives its -wal and -shm files the database file's mode), an older, wider file is
    narrowed."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # an empty file is an empty DB
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)


def make_async_reader(
    database_url: str,
    timeouts: DatabaseTimeouts = DatabaseTimeouts(),
    max_size: int = DEFAULT_POOL_SIZE,
) -> AsyncConnectionPool | None:
    """A psycopg asyncio pool for hot reads on PostgreSQL; None on SQLite.

    The public lookup is the hottest query: through this pool its round trip does not stall the
    event loop, and no ORM or transaction wrapping is paid (bench/lookup.py measured ~3× the
    rate of the same query through SQLAlchemy). Opened and closed by the web app's lifespan.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    options = url.query.get("options")
    url = url.difference_update_query(["options"])
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    parameters = timeouts.postgres_parameters(options if isinstance(options, str) else None)
    return AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=max_size,
        timeout=timeouts.pool,
        kwargs={"autocommit": True, **parameters},
        open=False,
    )


def database_unavailable(error: BaseException) -> bool:
    """True when `error` says the database cannot answer now — down, restarting, a connection
    cut, a timeout (connect, statement, pool) — rather than that the statement is wrong: the
    same work may succeed later."""
    if isinstance(error, exc.DBAPIError):
        return error.connection_invalidated or isinstance(
            error, (exc.OperationalError, exc.InterfaceError)
        )
    return isinstance(error, (exc.TimeoutError, psycopg.OperationalError, psycopg.InterfaceError))


def compiled_for_psycopg(statement: Any) -> str:
    """A SQLAlchemy statement as psycopg SQL with `%(name)s` parameters, compiled once."""
    return str(statement.compile(dialect=postgresql.dialect(paramstyle="pyformat")))


def autocommit(engine: Engine) -> Engine:
    """The same pool for single-statement reads: no BEGIN/ROLLBACK round trips around them."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


T = TypeVar("T")
_SQLITE_WRITERS: WeakKeyDictionary[Engine, threading.RLock] = WeakKeyDictionary()


def _writer_lock(engine: Engine) -> AbstractContextManager[Any]:
    """SQLite lets one transaction write at a time, and a waiting connection polls in sleeps of
    up to 100 ms; units of work of one process queue on a lock instead (bench/telegram_intake.py
    measured the sleeps as the limit). PostgreSQL needs no such thing."""
    return _sqlite_writer(engine) if engine.dialect.name == "sqlite" else nullcontext()


def _sqlite_writer(engine: Engine) -> threading.RLock:
    lock = _SQLITE_WRITERS.get(engine)
    if lock is None:
        lock = _SQLITE_WRITERS.setdefault(engine, threading.RLock())
    return lock


async def run_db(engine: Engine, work: Callable[[], T], *, quick: bool) -> T:
    """Database work called from async code. On SQLite a quick unit (a few statements, no image
    work) runs right on the event loop: the thread hop cost more than the work (measured by
    bench/telegram_intake.py) and SQLite runs one writer at a time anyway. Anything else, and
    everything on PostgreSQL, runs in a worker thread so the loop keeps serving — as does a quick
    unit while another one (a photo being checked) holds SQLite's writer lock."""
    if quick and engine.dialect.name == "sqlite":
        writer = _sqlite_writer(engine)
        if writer.acquire(blocking=False):
            try:
                return work()
            finally:
                writer.release()
    return await anyio.to_thread.run_sync(work)


@contextmanager
def single_statements(engine: Engine) -> Iterator[Connection]:
    """A connection whose statements each commit on their own (no BEGIN/COMMIT round trips on
    PostgreSQL), for writes of one statement; on SQLite it queues with the units of work."""
    with _writer_lock(engine), autocommit(engine).connect() as connection:
        yield connection


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    with _writer_lock(engine), Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
