"""Telegram's sending limits, kept per chat and per bot: in memory (embedded mode) and in a real
Redis shared by every worker; and the waits a 429 asks for, against the fake Bot API."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from redis import Redis

from bots.delivery import MemoryThrottle, RedisThrottle, TelegramSender, Throttle, TryLater
from core.replies import Reply
from tests.fakes.telegram import TELEGRAM_TOKEN, Call, FakeTelegram


def _throttles(redis_url: str | None) -> Throttle:
    if redis_url is None:
        return MemoryThrottle()
    return RedisThrottle(Redis.from_url(redis_url))


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_one_message_per_second_per_chat_and_other_chats_unaffected(
    store: str, request: pytest.FixtureRequest
) -> None:
    redis_url = request.getfixturevalue("redis_url") if store == "redis" else None
    throttle = _throttles(redis_url)
    chat, other = f"chat-{uuid.uuid4()}", f"chat-{uuid.uuid4()}"
    waits = [throttle.reserve(chat, 1.0) for _ in range(3)]
    assert waits[0] == pytest.approx(0, abs=0.05)
    assert waits[1] == pytest.approx(1.0, abs=0.1)
    assert waits[2] == pytest.approx(2.0, abs=0.1)
    assert throttle.reserve(other, 1.0) == pytest.approx(0, abs=0.05)


def test_two_workers_share_the_redis_slots(redis_url: str) -> None:
    first, second = (
        RedisThrottle(Redis.from_url(redis_url)),
        RedisThrottle(Redis.from_url(redis_url)),
    )
    key = f"bot-{uuid.uuid4()}"
    waits = sorted(t.reserve(key, 1 / 30) for t in (first, second, first, second))
    assert waits[-1] == pytest.approx(3 / 30, abs=0.02)  # 30 per second across both workers


# --- Telegram's 429: the refused chat (and, when chats are refused together, the bot) waits ----


@pytest.fixture(params=["memory", "redis"])
def throttle(request: pytest.FixtureRequest) -> Throttle:
    if request.param == "memory":
        return MemoryThrottle()
    redis_url = request.getfixturevalue("redis_url")
    return RedisThrottle(Redis.from_url(redis_url), prefix=f"test:{uuid.uuid4().hex}:")


@pytest.fixture
def sender(throttle: Throttle, telegram: tuple[FakeTelegram, str]) -> Iterator[TelegramSender]:
    with httpx.Client(timeout=10) as client:
        # No per-chat spacing: only the hold can make a message to a chat wait.
        yield TelegramSender(client, TELEGRAM_TOKEN, telegram[1], throttle, per_chat_interval=0)


def _to(fake: FakeTelegram, chat: int) -> list[Call]:
    return [call for call in fake.delivered if str(call.params["chat_id"]) == str(chat)]


def test_a_429_holds_its_chat_until_retry_after_and_other_chats_still_receive(
    sender: TelegramSender, telegram: tuple[FakeTelegram, str]
) -> None:
    """A short 429 is waited out inside the job; meanwhile another worker's message to the same
    chat waits for the hold too, and messages to other chats go at once."""
    fake, _ = telegram
    fake.rate_limited["sendMessage"] = [3]
    first = threading.Thread(target=sender.send, args=("101", Reply("first")))
    first.start()
    deadline = time.time() + 10
    while not fake.calls and time.time() < deadline:
        time.sleep(0.01)
    refused_at = fake.calls[0].at
    sender.send("202", Reply("to another chat"))
    [other] = _to(fake, 202)
    assert other.at - refused_at < 1  # not held
    sender.send("101", Reply("second"))  # held: the wait is slept inside the job
    first.join(10)
    assert sorted(call.params["text"] for call in _to(fake, 101)) == ["first", "second"]
    assert all(call.at - refused_at >= 3 for call in _to(fake, 101))


def test_a_long_429_sends_nothing_more_to_that_chat_and_reschedules(
    sender: TelegramSender, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    fake.rate_limited["sendMessage"] = [30]
    with pytest.raises(TryLater):
        sender.send("303", Reply("first"))
    for text in ("second", "third"):
        with pytest.raises(TryLater) as later:
            sender.send("303", Reply(text))
        assert later.value.retry_after == pytest.approx(30, abs=1)
    assert len(fake.calls) == 1  # only the refused try reached Telegram
    sender.send("404", Reply("another chat"))
    assert len(_to(fake, 404)) == 1


def test_429s_of_two_chats_together_hold_the_whole_bot(
    sender: TelegramSender, telegram: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram
    fake.rate_limited["sendMessage"] = [20, 20]  # the bot's limit: every chat is refused
    for chat in ("505", "606"):
        with pytest.raises(TryLater):
            sender.send(chat, Reply("refused"))
    with pytest.raises(TryLater) as later:
        sender.send("707", Reply("a third chat waits too"))
    assert later.value.retry_after == pytest.approx(20, abs=1)
    assert len(fake.calls) == 2


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_held_key_books_no_slot_for_a_caller_that_will_not_wait(
    store: str, request: pytest.FixtureRequest
) -> None:
    """Messages rescheduled past a hold must not push each other further back."""
    redis_url = request.getfixturevalue("redis_url") if store == "redis" else None
    throttle = _throttles(redis_url)
    chat = f"chat-{uuid.uuid4()}"
    throttle.hold(chat, 30)
    waits = [throttle.reserve(chat, 1.0, limit=5) for _ in range(3)]
    assert waits == pytest.approx([30, 30, 30], abs=0.1)
    assert throttle.reserve(chat, 1.0) == pytest.approx(30, abs=0.1)  # one who waits books it
    assert throttle.reserve(chat, 1.0) == pytest.approx(31, abs=0.1)
