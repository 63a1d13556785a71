"""A database blip right after a send: PostgreSQL of the test's own is stopped while the fake
Telegram holds its answer, and started again a moment later. A delivered notice must be marked
sent — not sent again when its lease runs out — and a refused one must get its retry recorded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlmodel import Session

from bots.delivery import MemoryThrottle
from core.dossier import Action
from storage.models import OutboxMessage
from tests.dossiers import act, citizen_dossier
from tests.fakes.telegram import TELEGRAM_TOKEN, Call, FakeTelegram
from tests.servers import PostgresServer
from webhook.jobs import Dispatcher, make_senders
from webhook.runtime import Runtime, build_runtime
from webhook.settings import Settings

CHAT = 909
OUTAGE_SECONDS = 2.0


@pytest.fixture
def runtime(
    own_postgres: tuple[PostgresServer, str], telegram: tuple[FakeTelegram, str], tmp_path: Path
) -> Iterator[Runtime]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=own_postgres[1],
        media_dir=tmp_path / "media",
        load_demo_data=False,
        telegram_citizen_token=SecretStr(TELEGRAM_TOKEN),
        telegram_api_base=telegram[1],
        telegram_per_chat_interval=0.0,
        outbox_lease_seconds=30.0,
    )
    runtime = build_runtime(settings)
    yield runtime
    runtime.engine.dispose()


@pytest.mark.parametrize(
    ("telegram_says", "state", "delivered"),
    [("ok", "sent", 1), ("502", "pending", 0)],  # after a failure: its retry is recorded
)
def test_postgres_restarted_between_send_and_record_keeps_the_outcome(
    runtime: Runtime,
    own_postgres: tuple[PostgresServer, str],
    telegram: tuple[FakeTelegram, str],
    telegram_says: str,
    state: str,
    delivered: int,
) -> None:
    server, _ = own_postgres
    fake, _ = telegram
    if telegram_says != "ok":
        fake.failing["sendMessage"] = [int(telegram_says)]
    now = datetime.now(UTC)
    dossier_id, code = citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, external_id=str(CHAT), at=now
    )
    act(runtime.engine, runtime.catalog, runtime.calendar, dossier_id, Action.ACCEPT, now)
    restart = threading.Timer(OUTAGE_SECONDS, server.start)

    def stop_postgres(_: Call) -> None:  # Telegram has decided; its answer is on its way
        fake.before_answer = None
        server.stop()
        restart.start()

    fake.before_answer = stop_postgres
    dispatcher = Dispatcher(runtime, make_senders(runtime, MemoryThrottle()))
    try:
        [outcome] = dispatcher.dispatch(now)
    finally:
        restart.join()
    assert outcome.state == state
    assert len(fake.delivered) == delivered
    with Session(runtime.engine) as session:
        [row] = session.execute(select(OutboxMessage)).scalars()
    assert row.state == state and row.attempts == 1
    if state == "sent":
        assert fake.delivered[0].params["chat_id"] == str(CHAT)
        assert code in fake.delivered[0].params["text"]
        # Past the lease, another pass (another worker) finds nothing to send.
        assert dispatcher.dispatch(now + timedelta(minutes=5)) == []
        assert len(fake.calls) == 1
    else:
        assert row.last_error and "502" in row.last_error
        assert row.next_attempt_at is not None
