"""`hcc worker` for real: PostgreSQL, a Redis server of the test's own (so it can be stopped and
started again), rq, and the fake Telegram Bot API on 127.0.0.1. Nothing here is simulated
in-process: the worker is a separate process that the tests kill."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session

from core.calendar import WorkingCalendar
from core.catalog import Catalog
from core.dossier import Action
from storage.db import make_engine
from storage.models import OutboxMessage
from tests.conftest import unavailable
from tests.dossiers import act, citizen_dossier
from tests.fakes.telegram import TELEGRAM_TOKEN, FakeTelegram
from tests.servers import wait_until
from webhook.jobs import JOB_BATCH, QUEUE
from webhook.settings import REPO_ROOT

TOKEN = TELEGRAM_TOKEN
CHAT = 777


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._answers, "redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = RedisServer(port, tmp_path)
    server.start()
    yield server
    server.stop()


class Workers:
    """`hcc worker` processes, started and killed like an operator (or a crash) would."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "webhook.cli", "worker"],
            cwd=REPO_ROOT,
            env=self.env,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        os.killpg(process.pid, signal.SIGKILL)  # no goodbye: the job is cut mid-way
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def workers(
    postgres_url: str, redis_server: RedisServer, telegram: tuple[FakeTelegram, str], tmp_path: Path
) -> Iterator[Workers]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_server.url,
        "TELEGRAM_CITIZEN_TOKEN": TOKEN,
        "TELEGRAM_API_BASE": telegram[1],
        "TELEGRAM_PER_CHAT_INTERVAL": "0",
        "OUTBOX_LEASE_SECONDS": "2",
        "DISPATCH_INTERVAL_SECONDS": "0.2",
        "MEDIA_DIR": str(tmp_path / "media"),
        "LOAD_DEMO_DATA": "false",
    }
    pool = Workers(env)
    yield pool
    pool.stop_all()


def accept_a_dossier(postgres_url: str, catalog: Catalog, calendar: WorkingCalendar) -> str:
    engine = make_engine(postgres_url)
    now = datetime.now(UTC)
    dossier_id, code = citizen_dossier(engine, catalog, calendar, external_id=str(CHAT), at=now)
    act(engine, catalog, calendar, dossier_id, Action.ACCEPT, now)
    engine.dispose()
    return code


def outbox(postgres_url: str) -> list[OutboxMessage]:
    engine = make_engine(postgres_url)
    with Session(engine) as session:
        rows = list(session.execute(select(OutboxMessage)).scalars())
    engine.dispose()
    return rows


def delivered(fake: FakeTelegram) -> list[str]:
    return [call.params["text"] for call in fake.delivered if call.method == "sendMessage"]


def test_a_worker_delivers_a_transition_through_rq(
    workers: Workers,
    postgres_url: str,
    catalog: Catalog,
    calendar: WorkingCalendar,
    telegram: tuple[FakeTelegram, str],
) -> None:
    fake, _ = telegram
    workers.start()
    code = accept_a_dossier(postgres_url, catalog, calendar)
    wait_until(lambda: bool(delivered(fake)), "the worker delivered nothing")
    time.sleep(1)  # long enough for a duplicate to show up, if there were one
    [text] = delivered(fake)
    assert code in text
    assert [row.state for row in outbox(postgres_url)] == ["sent"]


def test_a_notice_waits_while_redis_is_down_and_goes_out_when_it_returns(
    workers: Workers,
    redis_server: RedisServer,
    postgres_url: str,
    catalog: Catalog,
    calendar: WorkingCalendar,
    telegram: tuple[FakeTelegram, str],
) -> None:
    fake, _ = telegram
    workers.start()
    redis_server.stop()
    code = accept_a_dossier(postgres_url, catalog, calendar)  # the desk is not blocked by Redis
    time.sleep(2)
    assert delivered(fake) == []
    assert [row.state for row in outbox(postgres_url)] in (["pending"], ["queued"])
    redis_server.start()
    wait_until(lambda: bool(delivered(fake)), "not delivered after Redis came back", timeout=30)
    time.sleep(1)
    [text] = delivered(fake)
    assert code in text


def test_a_worker_killed_mid_job_is_replaced_and_the_citizen_gets_one_message(
    workers: Workers,
    postgres_url: str,
    catalog: Catalog,
    calendar: WorkingCalendar,
    telegram: tuple[FakeTelegram, str],
) -> None:
    fake, _ = telegram
    fake.hold.clear()  # Telegram does not answer: the job is stuck inside sendMessage
    first = workers.start()
    code = accept_a_dossier(postgres_url, catalog, calendar)
    wait_until(fake.waiting.is_set, "the job never reached Telegram")
    workers.kill(first)
    wait_until(lambda: bool(fake.aborted), "the killed worker's request is still open")
    fake.hold.set()
    workers.start()
    wait_until(lambda: bool(delivered(fake)), "the message was not retried", timeout=30)
    time.sleep(1)
    [text] = delivered(fake)
    assert code in text
    [row] = outbox(postgres_url)
    assert row.state == "sent" and row.attempts == 2


def jobs_in_redis(redis_url: str) -> list[tuple[int, ...]]:
    """The outbox ids each rq job carries: jobs waiting in the queue and the one running."""
    from redis import Redis
    from rq import Queue
    from rq.job import Job
    from rq.registry import StartedJobRegistry

    redis = Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=redis)
    ids = StartedJobRegistry(queue=queue).get_job_ids() + queue.get_job_ids()
    return [tuple(Job.fetch(job_id, connection=redis).args) for job_id in ids]


def test_a_burst_goes_out_in_batched_jobs_and_a_killed_batch_is_finished_by_another_worker(
    workers: Workers,
    redis_server: RedisServer,
    postgres_url: str,
    catalog: Catalog,
    calendar: WorkingCalendar,
    telegram: tuple[FakeTelegram, str],
) -> None:
    """Twelve dossiers accepted at once: more than one job's batch. The worker dies on the first
    message of its first batch; the next worker delivers all twelve, each exactly once."""
    fake, _ = telegram
    engine = make_engine(postgres_url)
    now = datetime.now(UTC)
    chats = [CHAT + n for n in range(12)]
    assert len(chats) > JOB_BATCH  # more than one job
    for chat in chats:
        dossier_id, _ = citizen_dossier(engine, catalog, calendar, external_id=str(chat), at=now)
        act(engine, catalog, calendar, dossier_id, Action.ACCEPT, now)
    engine.dispose()
    fake.hold.clear()
    first = workers.start()
    wait_until(fake.waiting.is_set, "the first job never reached Telegram")
    # One job per JOB_BATCH messages, not one per message: a full batch running, the rest queued.
    batches = jobs_in_redis(redis_server.url)
    assert [len(batch) for batch in batches] == [JOB_BATCH, len(chats) - JOB_BATCH]
    assert len({i for batch in batches for i in batch}) == len(chats)
    workers.kill(first)
    wait_until(lambda: bool(fake.aborted), "the killed worker's request is still open")
    fake.hold.set()
    workers.start()
    wait_until(lambda: len(fake.delivered) >= len(chats), "not every notice went out", timeout=30)
    time.sleep(1)
    assert sorted(int(call.params["chat_id"]) for call in fake.delivered) == chats
    assert {row.state for row in outbox(postgres_url)} == {"sent"}
