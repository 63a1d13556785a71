"""Status pushes through the outbox, delivered inline (the embedded mode) to a fake Telegram Bot
API and a fake SMS gateway on 127.0.0.1, on SQLite and PostgreSQL. Time is injected."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlmodel import Session, col

from bots.channels import make_senders
from bots.delivery import MemoryThrottle
from core.dossier import Action
from core.replies import split_text
from core.sms import gsm_length, to_gsm7
from storage.db import session_scope
from storage.inbound import REPLAY_WINDOW, first_delivery
from storage.models import InboundEvent, OutboxMessage
from storage.outbox import MAX_ATTEMPTS, retry_dead
from tests.dossiers import MONDAY, act, citizen_dossier
from tests.fakes.sms_gateway import FakeSmsGateway
from tests.fakes.telegram import FakeTelegram
from tests.servers import live_server
from webhook.app import create_app
from webhook.jobs import Dispatcher
from webhook.runtime import Runtime, build_runtime
from webhook.settings import Settings

SMS_KEY = "sms-gateway-key"
CHAT = 555
NOW = datetime.now(UTC)  # for tests where the web process's own dispatcher runs on real time


@pytest.fixture
def gateway() -> Iterator[tuple[FakeSmsGateway, str]]:
    fake = FakeSmsGateway(SMS_KEY)
    with live_server(fake.app) as base:
        yield fake, base


@pytest.fixture
def configured(telegram_settings: Settings, gateway: tuple[FakeSmsGateway, str]) -> Settings:
    return telegram_settings.model_copy(
        update={
            "sms_gateway_url": f"{gateway[1]}/api/sms",
            "sms_gateway_auth_header": SecretStr(f"Authorization: Bearer {SMS_KEY}"),
            "sms_gateway_body": '{"to": "{phone}", "message": "{text}", "sender": "HCC"}',
        }
    )


@pytest.fixture
def runtime(configured: Settings) -> Iterator[Runtime]:
    runtime = build_runtime(configured)
    yield runtime
    runtime.engine.dispose()


@pytest.fixture
def dispatcher(runtime: Runtime) -> Dispatcher:
    return Dispatcher(runtime, make_senders(runtime, MemoryThrottle()))


def messages(fake: FakeTelegram) -> list[dict[str, Any]]:
    """Texts that reached the chat (refused attempts are not counted)."""
    return [call.params for call in fake.delivered if call.method == "sendMessage"]


def outbox(runtime: Runtime) -> list[OutboxMessage]:
    with Session(runtime.engine) as session:
        return list(session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())  # type: ignore[arg-type]


def accepted(runtime: Runtime, at: datetime = MONDAY, **citizen: Any) -> tuple[int, str]:
    engine, catalog, calendar = runtime.engine, runtime.catalog, runtime.calendar
    dossier_id, code = citizen_dossier(engine, catalog, calendar, at=at, **citizen)
    act(engine, catalog, calendar, dossier_id, Action.ACCEPT, at)
    return dossier_id, code


def test_a_transition_reaches_the_citizen_once(
    runtime: Runtime, dispatcher: Dispatcher, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    _, code = accepted(runtime, external_id=str(CHAT))
    [outcome] = dispatcher.dispatch(MONDAY)
    assert outcome.state == "sent"
    [sent] = messages(fake)
    assert sent["chat_id"] == str(CHAT)
    assert code in sent["text"] and "10/12/2026" in sent["text"]  # the appointment date
    # Dispatching again (another tick, another worker) sends nothing more.
    assert dispatcher.dispatch(MONDAY + timedelta(minutes=5)) == []
    assert len(messages(fake)) == 1
    [row] = outbox(runtime)
    assert row.state == "sent" and row.attempts == 1


def test_the_citizens_own_submission_is_not_pushed_back(
    runtime: Runtime, dispatcher: Dispatcher, telegram: tuple[FakeTelegram, str]
) -> None:
    citizen_dossier(runtime.engine, runtime.catalog, runtime.calendar)
    assert dispatcher.dispatch(MONDAY) == []
    assert telegram[0].calls == []


def test_telegram_429_is_retried_after_the_wait_it_asks_for(
    runtime: Runtime, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    elapsed = [0.0]  # the throttle's clock follows the injected time (the chat is held 30 s)
    throttle = MemoryThrottle(clock=lambda: elapsed[0])
    dispatcher = Dispatcher(runtime, make_senders(runtime, throttle))
    fake.rate_limited["sendMessage"] = [30]  # longer than a job may sleep: rescheduled
    accepted(runtime, external_id=str(CHAT))
    [outcome] = dispatcher.dispatch(MONDAY)
    assert outcome.state == "pending"
    assert dispatcher.dispatch(MONDAY + timedelta(seconds=29)) == []
    elapsed[0] = 30.0
    [outcome] = dispatcher.dispatch(MONDAY + timedelta(seconds=30))
    assert outcome.state == "sent"
    assert len(fake.sent("sendMessage")) == 2  # the refused try and the delivery
    [row] = outbox(runtime)
    assert row.state == "sent" and row.attempts == 1  # a rate limit is not the message's fault


def test_a_short_429_is_waited_out_inside_the_job(
    runtime: Runtime, dispatcher: Dispatcher, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    fake.rate_limited["sendMessage"] = [1]  # within MAX_INLINE_WAIT: slept, then sent again
    accepted(runtime, external_id=str(CHAT))
    started = time.monotonic()
    [outcome] = dispatcher.dispatch(MONDAY)
    assert outcome.state == "sent"  # in the same job, not rescheduled
    assert 1 <= time.monotonic() - started < 5
    assert len(fake.sent("sendMessage")) == 2 and len(messages(fake)) == 1
    [row] = outbox(runtime)
    assert row.state == "sent" and row.attempts == 1


def test_a_second_429_in_a_row_reschedules_the_message(
    runtime: Runtime, dispatcher: Dispatcher, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    fake.rate_limited["sendMessage"] = [1, 2]  # waited out once only: the job does not spin
    accepted(runtime, external_id=str(CHAT))
    [outcome] = dispatcher.dispatch(MONDAY)
    assert outcome.state == "pending"
    assert dispatcher.dispatch(MONDAY + timedelta(seconds=1)) == []
    assert [o.state for o in dispatcher.dispatch(MONDAY + timedelta(seconds=2))] == ["sent"]


def test_a_blocked_bot_falls_back_to_sms(
    runtime: Runtime,
    dispatcher: Dispatcher,
    telegram: tuple[FakeTelegram, str],
    gateway: tuple[FakeSmsGateway, str],
) -> None:
    fake, _ = telegram
    sms, _ = gateway
    fake.blocked.add(CHAT)
    _, code = accepted(runtime, external_id=str(CHAT), phone="+84912345678")
    [outcome] = dispatcher.dispatch(MONDAY)
    assert outcome.state == "rerouted"
    [outcome] = dispatcher.dispatch(MONDAY)
    assert outcome.state == "sent"
    assert sms.sent, "no SMS reached the gateway"
    assert {body["to"] for body in sms.sent} == {"+84912345678"}
    assert {body["sender"] for body in sms.sent} == {"HCC"}
    texts = [body["message"] for body in sms.sent]
    assert all(gsm_length(text) <= 160 and to_gsm7(text) == text for text in texts)
    joined = " ".join(texts)
    assert code in joined and "da duoc tiep nhan" in joined  # unaccented Vietnamese
    states = [row.state for row in outbox(runtime)]
    assert states == ["rerouted", "sent"]


def test_unreachable_without_a_phone_is_a_dead_letter_that_can_be_retried(
    runtime: Runtime, dispatcher: Dispatcher, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    fake.blocked.add(CHAT)
    accepted(runtime, external_id=str(CHAT), phone=None)
    assert [o.state for o in dispatcher.dispatch(MONDAY)] == ["dead"]
    [row] = outbox(runtime)
    assert row.state == "dead" and "blocked" in (row.last_error or "")
    fake.blocked.clear()  # the citizen unblocked the bot; staff press "retry"
    with session_scope(runtime.engine) as session:
        assert retry_dead(session, row.id or 0, MONDAY)
    assert [o.state for o in dispatcher.dispatch(MONDAY)] == ["sent"]
    assert len(messages(fake)) == 1


def test_server_errors_back_off_then_land_in_the_dead_letters(
    runtime: Runtime, dispatcher: Dispatcher, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    fake.failing["sendMessage"] = [502] * MAX_ATTEMPTS
    accepted(runtime, external_id=str(CHAT))
    now, waits = MONDAY, []
    for _ in range(MAX_ATTEMPTS - 1):
        [outcome] = dispatcher.dispatch(now)
        assert outcome.state == "pending"
        [row] = outbox(runtime)
        waits.append(row.next_attempt_at - now)
        assert dispatcher.dispatch(now + waits[-1] - timedelta(seconds=1)) == []  # not before
        now += waits[-1]
    [outcome] = dispatcher.dispatch(now)
    assert outcome.state == "dead"
    assert waits[-1] > waits[0] * 8  # exponential
    assert all(wait <= timedelta(hours=1) for wait in waits)


def test_a_refused_message_is_not_retried(
    runtime: Runtime, dispatcher: Dispatcher, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    fake.failing["sendMessage"] = [400]
    accepted(runtime, external_id=str(CHAT))
    assert [o.state for o in dispatcher.dispatch(MONDAY)] == ["dead"]
    assert dispatcher.dispatch(MONDAY + timedelta(days=1)) == []


def test_the_end_of_a_dossier_asks_for_a_rating_with_buttons(
    runtime: Runtime, dispatcher: Dispatcher, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    dossier_id, code = accepted(runtime, external_id=str(CHAT))
    for action in (Action.RESULT_READY, Action.RETURN_RESULT):
        act(runtime.engine, runtime.catalog, runtime.calendar, dossier_id, action, MONDAY)
    assert {o.state for o in dispatcher.dispatch(MONDAY)} == {"sent"}
    texts = [m["text"] for m in messages(fake)]
    assert len(texts) == 4  # accepted, result ready, returned, rating request
    rating = messages(fake)[-1]
    buttons = [b["callback_data"] for b in rating["reply_markup"]["inline_keyboard"][0]]
    assert buttons == [f"rate:{code}:{n}" for n in range(1, 6)]


def test_english_speakers_get_english_pushes(
    runtime: Runtime, dispatcher: Dispatcher, telegram: tuple[FakeTelegram, str]
) -> None:
    accepted(runtime, external_id=str(CHAT), language="en")
    dispatcher.dispatch(MONDAY)
    assert "has been accepted" in messages(telegram[0])[0]["text"]


def test_long_texts_are_split_at_line_breaks() -> None:
    text = "\n".join(f"dòng {i} " + "x" * 90 for i in range(100))
    chunks = split_text(text, 4096)
    assert len(chunks) == 3 and all(len(c) <= 4096 for c in chunks)
    assert "\n".join(chunks) == text


def test_the_web_chat_shows_pushes_to_its_own_session_only(
    configured: Settings, telegram: tuple[FakeTelegram, str]
) -> None:
    app = create_app(configured.model_copy(update={"dispatch_interval_seconds": 0.1}))
    runtime: Runtime = app.state.runtime
    # another browser (no second app lifespan)
    other = TestClient(app, base_url="https://testserver")
    with TestClient(app, base_url="https://testserver") as mine:
        mine.get("/chat")
        other.get("/chat")
        session_id = mine.cookies["hcc_chat"].split(".")[0]
        _, code = accepted(runtime, NOW, channel="web", external_id=session_id)
        deadline = time.time() + 10
        pushed: list[dict[str, Any]] = []
        while not pushed and time.time() < deadline:
            time.sleep(0.1)
            pushed = mine.get("/chat/api/updates", params={"after": 0}).json()["messages"]
        assert pushed and code in pushed[0]["text"]
        assert other.get("/chat/api/updates", params={"after": 0}).json()["messages"] == []
        after = pushed[-1]["id"]
        assert mine.get("/chat/api/updates", params={"after": after}).json()["messages"] == []
        forged = TestClient(
            app, base_url="https://testserver", cookies={"hcc_chat": f"{session_id}.forged"}
        )
        assert forged.get("/chat/api/updates").status_code == 401
    runtime.engine.dispose()


def test_the_embedded_mode_delivers_from_the_web_process_without_redis(
    configured: Settings, telegram: tuple[FakeTelegram, str]
) -> None:
    assert configured.redis_url is None
    fake, _ = telegram
    app = create_app(configured.model_copy(update={"dispatch_interval_seconds": 0.1}))
    runtime: Runtime = app.state.runtime
    with TestClient(app, base_url="https://testserver"):
        accepted(runtime, NOW, external_id=str(CHAT))
        deadline = time.time() + 10
        while not messages(fake) and time.time() < deadline:
            time.sleep(0.05)
    assert len(messages(fake)) == 1
    runtime.engine.dispose()


def test_an_album_left_by_a_dead_web_process_is_still_answered(
    runtime: Runtime, dispatcher: Dispatcher, telegram: tuple[FakeTelegram, str]
) -> None:
    """Photos parked for an album whose process died before answering: the dispatcher's tick
    runs the turn and answers the citizen, once."""
    from datetime import UTC, datetime

    from sqlalchemy import func

    from storage.inbound import park_album_part
    from storage.models import AlbumPart
    from tests import images

    fake, _ = telegram
    parked_at = datetime.now(UTC)
    with session_scope(runtime.engine) as session:
        for n in range(2):
            park_album_part(session, channel="telegram", external_id=str(CHAT),
                            media_group_id="lost-1", update_id=700 + n,
                            data=images.good_jpeg(30 + n), caption="")  # fmt: skip
    assert dispatcher.answer_stale_albums(parked_at + timedelta(seconds=5)) == 0  # still fresh
    assert dispatcher.answer_stale_albums(parked_at + timedelta(minutes=1)) == 1
    answers = messages(fake)
    # At the menu, photos are read as a receipt's QR code: one turn, its replies.
    assert answers and all(a["chat_id"] == str(CHAT) for a in answers)
    assert "Không tìm thấy mã QR" in answers[0]["text"]
    assert dispatcher.answer_stale_albums(parked_at + timedelta(minutes=2)) == 0  # once
    assert len(messages(fake)) == len(answers)
    with Session(runtime.engine) as session:
        assert session.execute(select(func.count()).select_from(AlbumPart)).scalar_one() == 0


def test_delivery_ids_too_old_to_be_redelivered_are_forgotten(
    runtime: Runtime, dispatcher: Dispatcher
) -> None:
    """The replay guard keeps a row per webhook delivery; the dispatcher's tick drops the ones
    past the replay window, and a recent update is still recognised when redelivered."""
    now = datetime.now(UTC)
    with session_scope(runtime.engine) as session:
        for update_id in ("old-1", "old-2", "recent"):
            assert first_delivery(session, "telegram", update_id)
        session.execute(
            update(InboundEvent)
            .where(col(InboundEvent.external_id).like("old-%"))
            .values(received_at=now - REPLAY_WINDOW - timedelta(hours=1))
        )
    dispatcher.tick(now)
    with session_scope(runtime.engine) as session:
        kept = session.execute(select(col(InboundEvent.external_id))).scalars().all()
        assert kept == ["recent"]
        assert not first_delivery(session, "telegram", "recent")  # still a redelivery
