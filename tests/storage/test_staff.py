"""Staff accounts in the database: argon2 hashes, lockout for a while (time injected)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from core.staff import LOCKOUT_MINUTES, MAX_FAILED_LOGINS, Role
from storage.db import session_scope
from storage.staff import Login, StaffError, authenticate, change_password, create_staff

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def test_lockout_lasts_its_time_then_the_right_password_works(engine: Engine) -> None:
    with session_scope(engine) as session:
        _, password = create_staff(
            session,
            username="lan.ttphcc",
            full_name="Lan",
            agency_code="000.00.10.H53",
            role=Role.DESK_OFFICER,
        )
    for attempt in range(MAX_FAILED_LOGINS):
        with session_scope(engine) as session:
            result, _ = authenticate(session, "lan.ttphcc", "wrong", NOW)
        assert result is (Login.LOCKED if attempt == MAX_FAILED_LOGINS - 1 else Login.BAD)
    with session_scope(engine) as session:
        assert (
            authenticate(session, "lan.ttphcc", password, NOW + timedelta(minutes=1))[0]
            is Login.LOCKED
        )
    later = NOW + timedelta(minutes=LOCKOUT_MINUTES, seconds=1)
    with session_scope(engine) as session:
        result, user = authenticate(session, "LAN.ttphcc ", password, later)
        assert result is Login.OK and user is not None and user.failed_logins == 0


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
        assert not user.must_change_password
    with session_scope(engine) as session:
        assert authenticate(session, "lan.ttphcc", one_time, NOW)[0] is Login.BAD
    with session_scope(engine) as session:
        assert authenticate(session, "lan.ttphcc", "Một-cửa-2026!", NOW)[0] is Login.OK
