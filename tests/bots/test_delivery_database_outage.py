"""A database blip right after a send: PostgreSQL of the test's own is stopped while the fake
Telegram holds its "ok", and started again a moment later. The notice must reach the chat once
and be marked sent — not be sent again when its lease runs out."""

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


def test_postgres_restarted_between_send_and_mark_delivers_once_and_marks_sent(
    runtime: Runtime, own_postgres: tuple[PostgresServer, str], telegram: tuple[FakeTelegram, str]
) -> None:
    server, _ = own_postgres
    fake, _ = telegram
    now = datetime.now(UTC)
    dossier_id, code = citizen_dossier(
        runtime.engine, runtime.catalog, runtime.calendar, external_id=str(CHAT), at=now
    )
    act(runtime.engine, runtime.catalog, runtime.calendar, dossier_id, Action.ACCEPT, now)
    restart = threading.Timer(OUTAGE_SECONDS, server.start)

    def stop_postgres(_: Call) -> None:  # Telegram has the message; its "ok" is on its way
        fake.before_ok = None
        server.stop()
        restart.start()

    fake.before_ok = stop_postgres
    dispatcher = Dispatcher(runtime, make_senders(runtime.settings, MemoryThrottle()))
    try:
        [outcome] = dispatcher.dispatch(now)
    finally:
        restart.join()
    assert outcome.state == "sent"
    # Past the lease, another pass (another worker) finds nothing to send.
    assert dispatcher.dispatch(now + timedelta(minutes=5)) == []
    [call] = fake.delivered
    assert call.params["chat_id"] == str(CHAT) and code in call.params["text"]
    with Session(runtime.engine) as session:
        [row] = session.execute(select(OutboxMessage)).scalars()
    assert row.state == "sent" and row.attempts == 1
