"""Status pushes: outbox → rq → one worker → a fake Telegram server, against trivial rq jobs.

    .venv/bin/python -m bench.notify [--notices 5000]

Both runs use the same Redis, the same rq worker class (SimpleWorker, one worker, in this
process) and enqueue the same way (one pipeline per batch). The notice run also includes the
dispatcher reading due rows from PostgreSQL, each job's claim and "sent" updates, rendering, the
Redis-shared rate limiter and one HTTP call to the fake Bot API (its own process on loopback).
Telegram's 30 messages/s per bot limit is lifted (TELEGRAM_MAX_PER_SECOND=0): the fake has no
such limit and the benchmark measures our own cost. Target: ≥ 0.5 × the trivial jobs, and
exactly one delivery per notice.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime

from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from bench.loadgen import free_port, serve
from storage.db import make_engine, session_scope
from storage.migrate import upgrade
from storage.models import OutboxMessage

TOKEN = "1000:BENCH-NOTIFY"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def trivial_job(number: int) -> int:
    return number


def run_trivial(redis: Redis, count: int) -> float:
    queue = Queue(f"bench-trivial-{uuid.uuid4().hex[:6]}", connection=redis)
    began = time.perf_counter()
    for start in range(0, count, 500):
        queue.enqueue_many(
            [
                queue.prepare_data(trivial_job, (i,), result_ttl=0, failure_ttl=86400)
                for i in range(start, min(start + 500, count))
            ]
        )
    SimpleWorker([queue], connection=redis).work(burst=True, logging_level="WARNING")
    return time.perf_counter() - began


def seed_outbox(database_url: str, count: int) -> None:
    """`count` accepted-notices waiting in the outbox, one per citizen chat."""
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    values = {"code": "000.00.10.H53-261207-0001", "procedure": {"vi": "Đăng ký khai sinh"},
              "appointment_date": "2026-12-10", "fee_vnd": 0, "language": "vi"}  # fmt: skip
    rows = [
        {
            "idempotency_key": f"bench:{i}",
            "channel": "telegram",
            "recipient": str(100000 + i),
            "template": "notice.accepted",
            "values": values,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for i in range(count)
    ]
    with session_scope(engine) as session:
        session.execute(insert(OutboxMessage.__table__), rows)  # type: ignore[attr-defined]
    engine.dispose()


def run_notices(database_url: str, redis_url: str, telegram_base: str, count: int) -> float:
    os.environ.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        TELEGRAM_CITIZEN_TOKEN=TOKEN,
        TELEGRAM_API_BASE=telegram_base,
        TELEGRAM_MAX_PER_SECOND="0",
        LOAD_DEMO_DATA="false",
    )
    from webhook.jobs import QUEUE, Dispatcher, _context

    runtime, senders = _context()
    redis = Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=redis)
    queue.empty()
    dispatcher = Dispatcher(runtime, senders, queue)
    began = time.perf_counter()
    while dispatcher.dispatch():
        pass
    SimpleWorker([queue], connection=redis).work(burst=True, logging_level="WARNING")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notices", type=int, default=5000)
    parser.add_argument("--postgres", default=POSTGRES_ADMIN, help="admin URL to create a DB in")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    name = f"hcc_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    port = free_port()
    env = {"FAKE_TELEGRAM_TOKEN": TOKEN}
    try:
        url = make_url(args.postgres).set(database=name).render_as_string(False)
        upgrade(url)
        seed_outbox(url, args.notices)
        with serve("tests.fakes.telegram:app_from_env", env, port):
            redis = Redis.from_url(args.redis)
            trivial = run_trivial(redis, args.notices)
            notices = run_notices(url, args.redis, f"http://127.0.0.1:{port}", args.notices)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_delivered") as response:
                chats = Counter(json.load(response))
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    trivial_rate, notice_rate = args.notices / trivial, args.notices / notices
    print(f"trivial rq jobs : {trivial_rate:8.0f} jobs/s    ({trivial:.2f} s for {args.notices})")
    print(f"status notices  : {notice_rate:8.0f} notices/s ({notices:.2f} s for {args.notices})")
    print(f"ratio           : {notice_rate / trivial_rate:.2f}  (target ≥ 0.5)")
    twice = sum(1 for n in chats.values() if n > 1)
    print(f"deliveries      : {sum(chats.values())} to {len(chats)} distinct chats, {twice} twice")


if __name__ == "__main__":
    main()
