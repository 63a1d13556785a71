"""Where a citizen's text turn spends its time on PostgreSQL: round trips, the thread hop, CPU.

    .venv/bin/python -m bench.profile_turn [--turns 2000] [--concurrency 16]

The real app, in this process, driven through its ASGI interface (no HTTP server: the
uvicorn cost is the same for the baseline). The same cheapest turn as bench/telegram_intake.py
("menu" in a chat that said /start), on a fresh PostgreSQL database. It reports:
- round trips per turn, read from libpq's own protocol trace (`PQtrace`) of every connection:
  each ReadyForQuery the server sends ends one; the time from the client's message to it is
  time spent waiting on PostgreSQL (wire and server);
- a timeline per turn from the request's start: until the turn's connection is checked out of
  the pool (parsing, aiogram's routing, the hop into a worker thread), while it is held
  (statements, commit and the dialogue between them), and after (the hop back, the answer);
- the thread hop alone: `anyio.to_thread.run_sync` of a no-op at the same concurrency;
- a cProfile of the event loop and of the worker threads together, by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import cProfile
import ctypes
import io
import json
import pstats
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
from pydantic import SecretStr
from sqlalchemy import event

from bench.baseline import WEB_ONLY
from bench.databases import POSTGRES_ADMIN, fresh_database, prepare
from bench.loadgen import free_port, serve
from tests.fakes.telegram import Updates
from webhook.app import create_app
from webhook.settings import Settings

TOKEN, SECRET = "1000:PROFILE", "profile-secret"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
WEBHOOK = "/webhook/telegram/citizen"

_turn: contextvars.ContextVar[dict[str, float]] = contextvars.ContextVar("turn")


class Timeline:
    """Pure ASGI middleware: a record per request, filled by pool events in the worker thread
    (anyio copies the context into it)."""

    def __init__(self, app: Any) -> None:
        self.app, self.records = app, list[dict[str, float]]()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        record = {"start": time.perf_counter()}
        _turn.set(record)
        await self.app(scope, receive, send)
        record["end"] = time.perf_counter()
        if scope["type"] == "http":
            self.records.append(record)


class Tracer:
    """libpq's protocol trace of the connections checked out while `on` (one turn at a time, so
    one connection), and the pool's new and closed connections."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.on, self.files = folder, False, dict[int, Any]()
        self.opened = self.closed = 0

    def checkout(self, dbapi_connection: Any, *_: Any) -> None:
        record = _turn.get(None)
        if record is not None:
            record.setdefault("checkout", time.perf_counter())
        if self.on and id(dbapi_connection) not in self.files:
            trace = open(self.folder / f"{len(self.files)}.txt", "w")  # noqa: SIM115
            self.files[id(dbapi_connection)] = (dbapi_connection, trace)
            dbapi_connection.pgconn.trace(trace.fileno())

    def checkin(self, *_: Any) -> None:
        record = _turn.get(None)
        if record is not None:
            record["checkin"] = time.perf_counter()

    def connect(self, *_: Any) -> None:
        self.opened += 1

    def close(self, *_: Any) -> None:
        self.closed += 1

    def stop(self) -> None:
        ctypes.CDLL(None).fflush(None)  # libpq writes through a C stream: flush it first
        for connection, trace in self.files.values():
            connection.pgconn.untrace()
            trace.close()
        self.on = False


def round_trips(folder: Path) -> dict[str, list[float]]:
    """Each round trip's wait (ms from the client's first message to the server's
    ReadyForQuery), by what it ran: BEGIN, COMMIT, or the statement's first word."""
    waits: dict[str, list[float]] = defaultdict(list)
    for path in folder.glob("*.txt"):
        sent_at, first = None, ""
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) < 4 or len(parts[0]) != 26:  # a multi-line SQL text goes on
                continue
            at = datetime.fromisoformat(parts[0]).timestamp()
            if parts[1] == "F" and sent_at is None:
                sent_at, first = at, parts[3]
                if parts[3] == "Query":
                    first = parts[4].strip(' "').split()[0].upper()
            elif parts[1] == "B" and parts[3] == "ReadyForQuery" and sent_at is not None:
                waits[first].append((at - sent_at) * 1000)
                sent_at = None
    return waits


def profile_threads(profiles: list[cProfile.Profile], active: threading.Event) -> None:
    """cProfile follows one thread; start one in every thread once `active` is set."""

    def hook(*_: Any) -> None:
        if active.is_set():
            profile = cProfile.Profile()
            profiles.append(profile)
            profile.enable()  # replaces this hook in the calling thread

    threading.setprofile(hook)


async def drive(app: Any, bodies: list[bytes], concurrency: int) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        waiting = iter(bodies)

        async def user() -> None:
            for body in waiting:
                response = await client.post(WEBHOOK, content=body, headers=HEADERS)
                assert response.status_code == 200, response.text

        await asyncio.gather(*(user() for _ in range(concurrency)))


async def hop(count: int, concurrency: int) -> float:
    """Median ms of a no-op `anyio.to_thread.run_sync`, `concurrency` at a time."""
    timings: list[float] = []

    async def one() -> None:
        for _ in range(count // concurrency):
            began = time.perf_counter()
            await anyio.to_thread.run_sync(lambda: None)
            timings.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*(one() for _ in range(concurrency)))
    return statistics.median(timings)


async def main_async(url: str, bot_api: str, turns: int, concurrency: int, folder: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        redis_url=WEB_ONLY,  # no dispatcher thread in this process: only the turns' traffic
        media_dir=folder / "media",
        load_demo_data=False,
        telegram_citizen_token=SecretStr(TOKEN),
        telegram_webhook_secret=SecretStr(SECRET),
        telegram_api_base=bot_api,  # /start's replies; "menu" answers in the response
    )
    product = create_app(settings)
    engine = product.state.runtime.engine
    tracer = Tracer(folder)
    event.listen(engine, "checkout", tracer.checkout)
    event.listen(engine, "checkin", tracer.checkin)
    event.listen(engine, "connect", tracer.connect)
    event.listen(engine, "close", tracer.close)
    app = Timeline(product)
    profiles: list[cProfile.Profile] = []
    active = threading.Event()
    profile_threads(profiles, active)  # before the first request starts anyio's worker threads
    chats = [Updates(chat_id=10_000 + i, first_update_id=(i + 1) * 100_000) for i in range(500)]

    def menu(count: int) -> list[bytes]:
        """`count` new "menu" updates (a replayed update id would be ignored, and cheaper)."""
        return [json.dumps(chats[i % 500].text("menu")).encode() for i in range(count)]

    async with product.router.lifespan_context(product):
        await drive(app, [json.dumps(c.text("/start")).encode() for c in chats], concurrency)
        for timed_concurrency in sorted({1, concurrency}):
            hop_ms = await hop(2000, timed_concurrency)
            app.records.clear()
            opened = tracer.opened
            part = menu(turns // 4 if timed_concurrency == 1 else turns // 2)
            began = time.perf_counter()
            await drive(app, part, timed_concurrency)
            rate = len(part) / (time.perf_counter() - began)
            records = [r for r in app.records if "checkin" in r]
            if not records:
                print(f"concurrency {timed_concurrency:>2}: {rate:6.0f} turns/s; every turn ran "
                      "on the asyncio pool (storage.quick_turn: two statements, no thread, "
                      f"round trips pinned by tests/storage/test_quick_turn.py); a no-op thread "
                      f"hop alone {hop_ms:.2f} ms")  # fmt: skip
                continue
            before = statistics.median((r["checkout"] - r["start"]) * 1000 for r in records)
            held = statistics.median((r["checkin"] - r["checkout"]) * 1000 for r in records)
            after = statistics.median((r["end"] - r["checkin"]) * 1000 for r in records)
            print(f"concurrency {timed_concurrency:>2}: {rate:6.0f} turns/s; median per turn "
                  f"{before:.2f} ms until the connection is taken (parse, routing, hop in), "
                  f"{held:.2f} ms holding it, {after:.2f} ms after (hop back, answer); a no-op "
                  f"thread hop alone {hop_ms:.2f} ms; {tracer.opened - opened} new database "
                  f"connections for {len(part)} turns")  # fmt: skip
        # Round trips: one turn at a time, traced.
        traced = menu(turns // 8)
        tracer.on = True
        await drive(app, traced, 1)
        tracer.stop()
        waits = round_trips(folder)
        count = len(traced)
        total = sum(len(w) for w in waits.values())
        print(f"round trips per turn through SQLAlchemy (one at a time): {total / count:.2f}")
        for kind, times in sorted(waits.items(), key=lambda item: -len(item[1])):
            median, mean = statistics.median(times), statistics.mean(times)
            print(f"  {kind:<8} {len(times) / count:4.2f} per turn, median wait {median:5.2f} ms, "
                  f"mean {mean:5.2f} ms")  # fmt: skip
        # CPU: the event loop and the worker threads, at the benchmark's concurrency.
        profiled = menu(turns // 4)
        main_profile = cProfile.Profile()
        active.set()
        main_profile.enable()
        began = time.perf_counter()
        await drive(app, profiled, concurrency)
        elapsed = time.perf_counter() - began
        main_profile.disable()
        active.clear()
        threading.setprofile(None)
    out = io.StringIO()
    stats = pstats.Stats(main_profile, stream=out)
    for profile in profiles:
        profile.disable()
        stats.add(profile)
    wall = elapsed / len(profiled) * 1000
    print(f"cProfile of {len(profiled)} turns at concurrency {concurrency} ({wall:.2f} ms wall "
          "per turn, profiled), loop and threads; find_spec/posix.stat rows are httpx's ASGI "
          "transport (this driver), not the app:")  # fmt: skip
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(r"(storage|bots|webhook|core)/|commit|execute", 25)
    print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--postgres", default=POSTGRES_ADMIN)
    args = parser.parse_args()
    port = free_port()
    with (
        tempfile.TemporaryDirectory() as folder,
        fresh_database("postgresql", args.postgres) as url,
        serve("tests.fakes.telegram:app_from_env", {"FAKE_TELEGRAM_TOKEN": TOKEN}, port),
    ):
        prepare(url)
        bot_api = f"http://127.0.0.1:{port}"
        asyncio.run(main_async(url, bot_api, args.turns, args.concurrency, Path(folder)))


if __name__ == "__main__":
    main()
