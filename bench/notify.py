"""Status pushes: outbox → rq → one worker → a fake Telegram server, against trivial rq jobs.

    .venv/bin/python -m bench.notify [--notices 5000]

Both runs use the same Redis, the same rq worker class (SimpleWorker, one worker, in this
process) and enqueue the same way (one pipeline per batch), in 5 interleaved rounds of 1,000 so
both see the same machine (a shared VM's speed drifts by 2× over minutes). The notice run also
includes the dispatcher reading due rows from PostgreSQL, each job's claim and "sent" updates,
rendering, the Redis-shared rate limiter and one HTTP call to the fake Bot API (its own process
on loopback). Telegram's 30 messages/s per bot limit is lifted (TELEGRAM_MAX_PER_SECOND=0): the
fake has no such limit and the benchmark measures our own cost. Notices travel as the product
sends them: a burst in rq jobs of up to `JOB_BATCH` messages, each message claimed and marked on
its own; the trivial jobs are one rq job each. Target: ≥ 0.5 × the trivial jobs, and exactly
one delivery per notice.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from bench.loadgen import free_port, serve
from storage.db import make_engine, session_scope
from storage.migrate import upgrade
from storage.models import OutboxMessage
from webhook.jobs import JOB_BATCH, QUEUE, Dispatcher, _context

TOKEN = "1000:BENCH-NOTIFY"
ROUNDS = 5
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def trivial_job(number: int) -> int:
    return number


def run_trivial(queue: Queue, count: int) -> float:
    redis = queue.connection
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


def notice_worker(database_url: str, redis_url: str, telegram_base: str) -> tuple[Any, Queue]:
    """The dispatcher and queue an `hcc worker` would use, configured for the fake Bot API."""
    os.environ.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        TELEGRAM_CITIZEN_TOKEN=TOKEN,
        TELEGRAM_API_BASE=telegram_base,
        TELEGRAM_MAX_PER_SECOND="0",
        LOAD_DEMO_DATA="false",
    )
    runtime, senders = _context()  # reads the settings just set
    queue = Queue(QUEUE, connection=Redis.from_url(redis_url))
    queue.empty()
    return Dispatcher(runtime, senders, queue), queue


def run_notices(dispatcher: Any, queue: Queue, count: int) -> float:
    """Dispatch `count` due notices to rq, then let one worker deliver them."""
    began = time.perf_counter()
    taken = 0
    while taken < count:
        batch = dispatcher.dispatch()
        if not batch:
            break
        taken += len(batch)
    SimpleWorker([queue], connection=queue.connection).work(burst=True, logging_level="WARNING")
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
            trivial_queue = Queue("bench-trivial", connection=Redis.from_url(args.redis))
            dispatcher, queue = notice_worker(url, args.redis, f"http://127.0.0.1:{port}")
            dispatcher.lease = timedelta(minutes=10)  # a round's backlog is not re-dispatched
            trivial = notices = 0.0
            per_round = args.notices // ROUNDS
            for _ in range(ROUNDS):  # interleaved: both see the same machine
                trivial += run_trivial(trivial_queue, per_round)
                notices += run_notices(dispatcher, queue, per_round)
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
    print(f"notice jobs     : up to {JOB_BATCH} messages each")
    twice = sum(1 for n in chats.values() if n > 1)
    print(f"deliveries      : {sum(chats.values())} to {len(chats)} distinct chats, {twice} twice")


if __name__ == "__main__":
    main()
