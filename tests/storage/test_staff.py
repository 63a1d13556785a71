"""Staff accounts in the database: argon2 hashes, sign-in limits that fade (time injected)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.staff import ACCOUNT_THROTTLE, Role
from storage.db import session_scope
from storage.models import AccountEvent
from storage.staff import Login, SignIn, StaffError, authenticate, change_password, create_staff

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def _lan(engine: Engine) -> str:
    with session_scope(engine) as session:
        _, password = create_staff(
            session,
            username="lan.ttphcc",
            full_name="Lan",
            agency_code="000.00.10.H53",
            role=Role.DESK_OFFICER,
        )
    return password


def _try(engine: Engine, name: str, password: str, at: datetime, address: str = "10.0.0.9",
         per_minute: int = 10) -> SignIn:  # fmt: skip
    with session_scope(engine) as session:
        return authenticate(session, name, password, at, address=address, per_minute=per_minute)


def _kinds(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.execute(select(AccountEvent.kind).order_by(AccountEvent.id)).scalars())  # type: ignore[call-overload]


def test_failures_from_one_address_slow_only_that_address_and_fade(engine: Engine) -> None:
    """Guessing from one address makes it wait longer and longer; the officer, from their own
    address, signs in at once; the waits end by themselves (no lock)."""
    password = _lan(engine)
    free = int(ACCOUNT_THROTTLE.free)
    for _ in range(free - 1):
        assert _try(engine, "lan.ttphcc", "wrong", NOW).result is Login.BAD
    assert _kinds(engine) == ["created"]
    assert _try(engine, "lan.ttphcc", "wrong", NOW).result is Login.BAD  # the 5th: waits begin
    assert _kinds(engine) == ["created", "limited"]
    refused = _try(engine, "lan.ttphcc", password, NOW + timedelta(milliseconds=500))
    assert refused.result is Login.LIMITED and 4 < refused.wait_seconds <= 5
    assert _try(engine, "LAN.ttphcc ", password, NOW, address="10.0.0.7").result is Login.OK
    waits = []
    at = NOW
    for _ in range(4):  # each failure after its wait doubles the next one (less what faded)
        at += timedelta(seconds=_try(engine, "lan.ttphcc", password, at).wait_seconds or 0.001)
        assert _try(engine, "lan.ttphcc", "wrong", at).result is Login.BAD
        waits.append(_try(engine, "lan.ttphcc", password, at).wait_seconds)
    assert all(later > 1.5 * earlier for earlier, later in itertools.pairwise(waits)), waits
    # An hour later the count has faded: the right password works, and so do 4 more mistakes.
    later = at + timedelta(hours=1)
    assert _try(engine, "lan.ttphcc", password, later).result is Login.OK
    for _ in range(free - 1):
        assert _try(engine, "lan.ttphcc", "wrong", later).wait_seconds == 0
    assert _try(engine, "lan.ttphcc", password, later).result is Login.OK


def test_one_address_guessing_many_names_is_slowed_for_every_name(engine: Engine) -> None:
    password = _lan(engine)
    for number in range(6):  # 3 a minute: a first burst of 6 (3 / (1 - 1/e) + 1) starts the waits
        assert _try(engine, f"x{number}.ttphcc", "wrong", NOW, per_minute=3).result is Login.BAD
    limited = _try(engine, "lan.ttphcc", password, NOW, per_minute=3)
    assert limited.result is Login.LIMITED  # also for a name it never tried
    assert _try(engine, "lan.ttphcc", password, NOW, "10.0.0.7", per_minute=3).result is Login.OK
    # Three a minute, all at once, go on unhindered for good: the count fades by e each minute.
    at = NOW + timedelta(minutes=30)
    for minute in range(5):
        for number in range(3):
            when = at + timedelta(minutes=minute, seconds=number)
            name = f"y{minute}{number}.ttphcc"  # other names: the per-account limit is not hit
            assert _try(engine, name, "wrong", when, per_minute=3).wait_seconds == 0
    for name in ("z1.ttphcc", "z2.ttphcc"):  # more in that minute: the slack, then waits
        assert _try(engine, name, "wrong", when, per_minute=3).result is Login.BAD
    assert _try(engine, "z3.ttphcc", "wrong", when, per_minute=3).result is Login.LIMITED


def test_no_limit_when_the_setting_is_zero(engine: Engine) -> None:
    password = _lan(engine)
    for _ in range(30):
        assert _try(engine, "lan.ttphcc", "wrong", NOW, per_minute=0).result is Login.BAD
    assert _try(engine, "lan.ttphcc", password, NOW, per_minute=0).result is Login.OK


def test_accounts_are_unique_and_belong_to_a_known_agency(engine: Engine) -> None:
    with session_scope(engine) as session:
        create_staff(
            session,
            username="lan.ttphcc",
            full_name="Lan",
            agency_code="000.00.10.H53",
            role=Role.DESK_OFFICER,
        )
    for username, agency, key in [
        ("lan.ttphcc", "000.00.10.H53", "admin.error.username_taken"),
        ("mai.ttphcc", "999.99.99.H99", "admin.error.unknown_agency"),
    ]:
        with pytest.raises(StaffError) as raised, session_scope(engine) as session:
            create_staff(
                session,
                username=username,
                full_name="x",
                agency_code=agency,
                role=Role.DESK_OFFICER,
            )
        assert raised.value.key == key


def test_a_changed_password_replaces_the_one_time_one(engine: Engine) -> None:
    with session_scope(engine) as session:
        user, one_time = create_staff(
            session,
            username="lan.ttphcc",
            full_name="Lan",
            agency_code="000.00.10.H53",
            role=Role.DESK_OFFICER,
        )
        change_password(session, user, one_time, "Một-cửa-2026!")
        assert not user.must_change_password and user.session_generation == 1
    assert _try(engine, "lan.ttphcc", one_time, NOW).result is Login.BAD
    assert _try(engine, "lan.ttphcc", "Một-cửa-2026!", NOW).result is Login.OK
