"""The Zalo OA's token pair in the database: one refresh at a time across processes (refresh
tokens are single-use), the state /healthz shows, the PKCE consent exchange."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy.engine import Engine

from bots.zalo import TokenBroken, ZaloTokens
from storage.db import make_engine, session_scope
from storage.zalo import get_token, mark_broken, save_tokens, token_state
from tests.fakes.zalo import ZALO_APP_ID, ZALO_APP_SECRET, ZALO_OA_ID, FakeZalo
from tests.servers import live_server

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def zalo() -> Iterator[tuple[FakeZalo, str]]:
    fake = FakeZalo()
    with live_server(fake.app) as base:
        yield fake, base


def make_tokens(engine: Engine, client: httpx.Client, base: str, **kwargs: Any) -> ZaloTokens:
    return ZaloTokens(
        engine,
        client,
        oauth_base=base,
        app_id=ZALO_APP_ID,
        app_secret=ZALO_APP_SECRET,
        oa_id=ZALO_OA_ID,
        **kwargs,
    )


def seed(engine: Engine, access: str, refresh: str, expires_at: datetime) -> None:
    with session_scope(engine) as session:
        save_tokens(
            session,
            oa_id=ZALO_OA_ID,
            access_token=access,
            refresh_token=refresh,
            expires_at=expires_at,
            now=NOW,
        )


def test_token_state_tells_valid_or_broken_and_never_shows_the_token(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert token_state(session, ZALO_OA_ID, NOW) == "not connected"
    seed(engine, "at-secret-value", "rt-secret-value", NOW + timedelta(hours=25))
    with session_scope(engine) as session:
        state = token_state(session, ZALO_OA_ID, NOW)
        assert state == "valid until 2026-12-02 10:00 UTC"
        assert token_state(session, ZALO_OA_ID, NOW + timedelta(days=2)).startswith("expired")
        mark_broken(session, ZALO_OA_ID, "zalo refused the refresh token")
    with session_scope(engine) as session:
        state = token_state(session, ZALO_OA_ID, NOW)
    assert state == "broken: zalo refused the refresh token"
    assert "secret-value" not in state


def _refresh_in_a_process(
    database_url: str, base: str, stale: str, barrier: Any, results: Any
) -> None:
    engine = make_engine(database_url)
    with httpx.Client(timeout=30) as client:
        tokens = make_tokens(engine, client, base)
        barrier.wait()
        try:
            results.put(tokens.refresh(stale))
        except Exception as error:  # reported to the test, which fails on it
            results.put(f"error: {type(error).__name__}: {error}")
    engine.dispose()


def test_two_workers_refreshing_at_the_same_moment_spend_the_refresh_token_once(
    database_url: str, zalo: tuple[FakeZalo, str]
) -> None:
    """Two processes find the token refused at once; one refreshes, the other waits on the row
    lock and takes the pair the first committed. Without the lock both spend the single-use
    refresh token: Zalo refuses the second, and the pair is lost."""
    fake, base = zalo
    fake.refresh_delay = 0.5  # both are inside refresh() while Zalo answers the first
    engine = make_engine(database_url)
    access, refresh = fake.issue_pair()
    seed(engine, access, refresh, NOW - timedelta(minutes=1))
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(
            target=_refresh_in_a_process, args=(database_url, base, access, barrier, results)
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert fake.calls.count("/v4/oa/access_token") == 1
    assert (fake.refresh_calls, fake.refused_refreshes) == (1, 0)
    with session_scope(engine) as session:
        stored = get_token(session, ZALO_OA_ID)
    assert stored is not None and stored.broken_reason is None
    assert answers == [stored.access_token, stored.access_token]
    assert stored.access_token in fake.access_tokens and stored.refresh_token in fake.refresh_tokens
    engine.dispose()


def test_a_spent_refresh_token_is_refused_and_the_pair_shows_as_broken(
    sqlite_url: str, zalo: tuple[FakeZalo, str]
) -> None:
    fake, base = zalo
    engine = make_engine(sqlite_url)
    access, refresh = fake.issue_pair()
    seed(engine, access, refresh, NOW - timedelta(minutes=1))
    with httpx.Client() as client:
        spend = {"app_id": ZALO_APP_ID, "grant_type": "refresh_token", "refresh_token": refresh}
        first = client.post(
            f"{base}/v4/oa/access_token", data=spend, headers={"secret_key": ZALO_APP_SECRET}
        )
        assert first.json()["expires_in"] == "90000"  # a string, as Zalo sends it
        again = client.post(
            f"{base}/v4/oa/access_token", data=spend, headers={"secret_key": ZALO_APP_SECRET}
        )
        assert again.status_code == 200 and again.json()["error"] == -14014
        tokens = make_tokens(engine, client, base, clock=lambda: NOW)
        with pytest.raises(TokenBroken):
            tokens.refresh(access)
        with pytest.raises(TokenBroken):  # and no second attempt with the spent token
            tokens.access_token()
    assert fake.refused_refreshes == 2
    with session_scope(engine) as session:
        assert token_state(session, ZALO_OA_ID, NOW).startswith("broken: zalo refused")
    engine.dispose()


def test_a_token_expiring_within_the_margin_is_refreshed_before_use_then_reused(
    sqlite_url: str, zalo: tuple[FakeZalo, str]
) -> None:
    fake, base = zalo
    engine = make_engine(sqlite_url)
    access, refresh = fake.issue_pair()
    seed(engine, access, refresh, NOW + timedelta(minutes=5))
    with httpx.Client() as client:
        tokens = make_tokens(engine, client, base, margin=timedelta(minutes=10), clock=lambda: NOW)
        fresh = tokens.access_token()
        assert fresh != access and fresh in fake.access_tokens
        assert tokens.access_token() == fresh
    assert fake.refresh_calls == 1
    with session_scope(engine) as session:
        stored = get_token(session, ZALO_OA_ID)
    assert stored is not None and stored.expires_at == NOW + timedelta(seconds=90000)
    engine.dispose()


def test_the_consent_link_uses_pkce_and_the_callback_exchanges_the_code(
    sqlite_url: str, zalo: tuple[FakeZalo, str]
) -> None:
    fake, base = zalo
    engine = make_engine(sqlite_url)
    with httpx.Client() as client:
        tokens = make_tokens(engine, client, base, clock=lambda: NOW)
        url, verifier = tokens.consent_url("https://hcc.example.vn/zalo/oauth/callback", "st-1")
        query = parse_qs(urlsplit(url).query)
        assert url.startswith(f"{base}/v4/oa/permission?") and len(verifier) == 43
        assert query["app_id"] == [ZALO_APP_ID] and query["state"] == ["st-1"]
        with pytest.raises(TokenBroken):  # a code granted for another challenge
            tokens.exchange_code(fake.grant_code("not-our-challenge"), verifier)
        code = fake.grant_code(query["code_challenge"][0])
        tokens.exchange_code(code, tokens.verifier("st-1"))  # recomputed from the state alone
        assert tokens.access_token() in fake.access_tokens
    engine.dispose()


def test_a_pair_seeded_by_hand_is_used_until_it_expires(
    sqlite_url: str, zalo: tuple[FakeZalo, str]
) -> None:
    fake, base = zalo
    engine = make_engine(sqlite_url)
    access, refresh = fake.issue_pair()
    with httpx.Client() as client:
        make_tokens(engine, client, base, clock=lambda: NOW).store_pair(access, refresh, 3600)
        later = make_tokens(engine, client, base, clock=lambda: NOW + timedelta(minutes=55))
        assert make_tokens(engine, client, base, clock=lambda: NOW).access_token() == access
        assert later.access_token() not in (access, "")  # within the margin: refreshed
    assert fake.refresh_calls == 1
    engine.dispose()
