"""Telegram's sending limits, kept per chat and per bot: in memory (embedded mode) and in a real
Redis shared by every worker."""

from __future__ import annotations

import uuid

import pytest
from redis import Redis

from bots.delivery import MemoryThrottle, RedisThrottle, Throttle


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
