"""Status pushes: outbox → rq → one worker → a fake Telegram server, against trivial rq jobs.

    .venv/bin/python -m bench.notify [--notices 3000] [--quick]

Like for like, in 5 interleaved rounds (a shared VM's speed drifts by 2× over minutes):
- one notice per rq job vs one trivial item per rq job;
- `JOB_BATCH` (10) notices per job, as the product sends a burst, vs 10 trivial items per job.
All four use the same Redis, the same rq worker class (SimpleWorker, one worker, in this process)
and enqueue the same way (one pipeline per batch). The notice runs also include the dispatcher
reading due rows from PostgreSQL, each message's claim and "sent" updates, rendering, the
Redis-shared rate limiter and one HTTP call to the fake Bot API (its own process on loopback).
Telegram's 30 messages/s per bot limit is lifted (TELEGRAM_MAX_PER_SECOND=0): the fake has no
such limit and the benchmark measures our own cost. Each round's notices are written to the
outbox before it (not timed), one per chat. Target: ≥ 0.5 × the trivial jobs of the same size,
and exactly one delivery per notice.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import insert

from bench.baseline import verdict
from bench.databases import POSTGRES_ADMIN, fresh_database
from bench.loadgen import free_port, serve
from storage.db import make_engine, session_scope
from storage.migrate import upgrade
from storage.models import OutboxMessage
from webhook import jobs
from webhook.jobs import QUEUE, Dispatcher, _context

TOKEN = "1000:BENCH-NOTIFY"
ROUNDS = 5


def trivial_job(*numbers: int) -> int:
    return sum(numbers)


def run_trivial(queue: Queue, count: int, per_job: int) -> float:
    """`count` items in jobs of `per_job`, enqueued and run as the notices are."""
    redis = queue.connection
    began = time.perf_counter()
    jobs = [tuple(range(i, min(i + per_job, count))) for i in range(0, count, per_job)]
    for start in range(0, len(jobs), 500):
        queue.enqueue_many(
            [
                queue.prepare_data(trivial_job, job, result_ttl=0, failure_ttl=86400)
                for job in jobs[start : start + 500]
            ]
        )
    SimpleWorker([queue], connection=redis).work(burst=True, logging_level="WARNING")
    return time.perf_counter() - began


def seed_outbox(database_url: str, count: int, first: int) -> None:
    """`count` accepted-notices waiting in the outbox, one per citizen chat from `first` on."""
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
        for i in range(first, first + count)
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


def run_notices(dispatcher: Any, queue: Queue, count: int, per_job: int) -> float:
    """Dispatch `count` due notices to rq in jobs of `per_job`, then let one worker deliver
    them."""
    jobs.JOB_BATCH = per_job  # read by Dispatcher.dispatch at each pass
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
    parser.add_argument("--notices", type=int, default=3000, help="per measure")
    parser.add_argument("--quick", action="store_true", help="1,000 notices per measure")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN, help="admin URL to create a DB in")
    # A database of its own: the tests use 0, and this run empties the product queue.
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    if args.quick:
        args.notices = 1000
    batch = jobs.JOB_BATCH
    per_round = args.notices // ROUNDS
    total = per_round * ROUNDS
    seconds: dict[str, float] = defaultdict(float)
    port = free_port()
    with fresh_database("postgresql", args.postgres) as url:
        upgrade(url)
        with serve("tests.fakes.telegram:app_from_env", {"FAKE_TELEGRAM_TOKEN": TOKEN}, port):
            trivial_queue = Queue("bench-trivial", connection=Redis.from_url(args.redis))
            dispatcher, queue = notice_worker(url, args.redis, f"http://127.0.0.1:{port}")
            dispatcher.lease = timedelta(minutes=10)  # a round's backlog is not re-dispatched
            seeded = 0
            for _ in range(ROUNDS):  # interleaved: all four see the same machine
                for per_job in (1, batch):
                    seconds[f"trivial {per_job}"] += run_trivial(trivial_queue, per_round, per_job)
                    seed_outbox(url, per_round, seeded)
                    seeded += per_round
                    seconds[f"notices {per_job}"] += run_notices(
                        dispatcher, queue, per_round, per_job
                    )
            jobs.JOB_BATCH = batch
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_delivered") as response:
                chats = Counter(json.load(response))

    for per_job in (1, batch):
        trivial_rate = total / seconds[f"trivial {per_job}"]
        notice_rate = total / seconds[f"notices {per_job}"]
        ratio = notice_rate / trivial_rate
        print(f"{per_job:>2} per rq job: trivial items {trivial_rate:6.0f}/s, notices "
              f"{notice_rate:6.0f}/s → ratio {ratio:.2f} (target ≥ 0.5) "
              f"{verdict(ratio >= 0.5)}")  # fmt: skip
    print(f"the product sends bursts in jobs of JOB_BATCH = {batch} (webhook/jobs.py)")
    twice = sum(1 for n in chats.values() if n > 1)
    print(f"deliveries: {sum(chats.values())} to {len(chats)} distinct chats for {2 * total} "
          f"notices, {twice} twice")  # fmt: skip
    assert len(chats) == 2 * total and twice == 0, "a notice was lost or delivered twice"


if __name__ == "__main__":
    main()
