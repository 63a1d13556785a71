"""Staff accounts: argon2 password hashes, one-time first passwords, sign-in limits that fade,
session generations (sign-out ends a session) and the account audit log.

Every change to an account writes its `AccountEvent` in the same transaction as the change.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from core.staff import (
    ACCOUNT_THROTTLE,
    AccountEventKind,
    Role,
    StaffMember,
    Throttle,
    address_throttle,
    normal_username,
    password_problem,
    username_problem,
)
from storage.db import compiled_for_psycopg
from storage.models import AccountEvent, Agency, LoginThrottle, StaffUser, utcnow

_HASHER = PasswordHasher()
# Verified when the username is unknown, so both answers take as long (no user enumeration).
_DUMMY_HASH = _HASHER.hash("not-a-password-of-anyone")
_THROTTLE_KEPT = timedelta(days=1)  # a count this old has faded to nothing: the row goes


class StaffError(ValueError):
    """A message key (templates/messages/admin.toml) for why an account change was refused."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class Login(StrEnum):
    OK = "ok"
    BAD = "bad"  # unknown name or wrong password: the same answer for both
    LIMITED = "limited"  # too many failures from this address (for this name): wait, same for all


@dataclass(frozen=True)
class SignIn:
    result: Login
    user: StaffUser | None = None
    wait_seconds: float = 0.0


def member(user: StaffUser) -> StaffMember:
    assert user.id is not None
    return StaffMember(user.id, user.username, user.full_name, user.agency_code, Role(user.role))


def record_event(
    session: Session,
    kind: AccountEventKind,
    user: StaffUser,
    *,
    by: StaffUser | None,
    address: str = "",
    details: str = "",
    at: datetime | None = None,
) -> None:
    """One line of the account audit log; `by` None is the server's command line (`hcc staff`)."""
    session.add(
        AccountEvent(
            at=at or utcnow(),
            kind=kind.value,
            agency_code=user.agency_code,
            staff_id=user.id,
            username=user.username,
            actor_username=by.username if by is not None else None,
            address=address[:64],
            details=details[:200],
        )
    )


def create_staff(
    session: Session,
    *,
    username: str,
    full_name: str,
    agency_code: str,
    role: Role,
    by: StaffUser | None = None,
    address: str = "",
) -> tuple[StaffUser, str]:
    """A new account and its one-time password (to be changed at the first login)."""
    username = normal_username(username)
    problem = username_problem(username)
    if problem:
        raise StaffError(problem)
    if session.get(Agency, agency_code) is None:
        raise StaffError("admin.error.unknown_agency")
    if staff_by_username(session, username) is not None:
        raise StaffError("admin.error.username_taken")
    one_time = secrets.token_urlsafe(12)
    user = StaffUser(
        username=username,
        full_name=full_name.strip()[:200] or username,
        agency_code=agency_code,
        role=role.value,
        password_hash=_HASHER.hash(one_time),
        must_change_password=True,
    )
    session.add(user)
    session.flush()
    record_event(session, AccountEventKind.CREATED, user, by=by, address=address, details=role)
    return user, one_time


def staff_by_username(session: Session, username: str) -> StaffUser | None:
    """The account of a name as typed (see `normal_username`)."""
    statement = select(StaffUser).where(StaffUser.username == normal_username(username))  # type: ignore[arg-type]
    return session.execute(statement).scalar_one_or_none()


def reset_password(
    session: Session, user: StaffUser, *, by: StaffUser | None = None, address: str = ""
) -> str:
    """A new one-time password (an admin's "reset"): ends the account's sessions, lifts its
    sign-in limits, and forces a change at the next sign-in."""
    one_time = secrets.token_urlsafe(12)
    user.password_hash = _HASHER.hash(one_time)
    user.must_change_password = True
    user.session_generation += 1
    session.add(user)
    _lift_limits(session, user.username)
    record_event(session, AccountEventKind.RESET, user, by=by, address=address)
    return one_time


def unlock(session: Session, user: StaffUser, *, by: StaffUser, address: str) -> None:
    """Lift the sign-in limits on this account name (every address), e.g. for an officer who
    mistyped their password too often."""
    _lift_limits(session, user.username)
    record_event(session, AccountEventKind.UNLOCKED, user, by=by, address=address)


def change_role(
    session: Session, user: StaffUser, role: Role, *, by: StaffUser, address: str
) -> None:
    if user.role == role.value:
        return
    old, user.role = user.role, role.value
    session.add(user)
    record_event(session, AccountEventKind.ROLE_CHANGED, user, by=by, address=address,
                 details=f"{old} → {role.value}")  # fmt: skip


def sign_out(session: Session, user: StaffUser, *, address: str) -> None:
    """End this session — and every other session of the account (one generation for all)."""
    user.session_generation += 1
    session.add(user)
    record_event(session, AccountEventKind.SIGNED_OUT, user, by=user, address=address)


def authenticate(
    session: Session,
    username: str,
    password: str,
    now: datetime,
    *,
    address: str,
    per_minute: int,
) -> SignIn:
    """Check a sign-in. Failures are counted per address and per address + account name (typed,
    whether it exists or not), fade with time and, beyond a few, make the next try wait longer
    each time (`core.staff.Throttle`; `per_minute` 0 = no limits). A waiting try is refused before
    any lookup, the same for every name; an unknown name costs the same argon2 time as a wrong
    password."""
    name = normal_username(username)[:64]
    keys = {
        f"ip:{address}": address_throttle(per_minute),
        f"account:{address}:{name}": ACCOUNT_THROTTLE,
    }
    if per_minute > 0:
        wait = _waiting(session, list(keys), now)
        if wait > 0:
            return SignIn(Login.LIMITED, wait_seconds=wait)
    user = staff_by_username(session, name)
    if user is None or not _verify(user.password_hash, password):
        if user is None:
            _verify(_DUMMY_HASH, password)
        if per_minute > 0:
            started = [_count_failure(session, key, rule, now) for key, rule in keys.items()]
            if user is not None and started[1]:
                record_event(
                    session, AccountEventKind.LIMITED, user, by=None, address=address, at=now
                )
        return SignIn(Login.BAD)
    session.execute(
        delete(LoginThrottle).where(col(LoginThrottle.key) == f"account:{address}:{name}")
    )
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    session.add(user)
    record_event(session, AccountEventKind.SIGNED_IN, user, by=user, address=address, at=now)
    return SignIn(Login.OK, user)


def limited_usernames(session: Session, now: datetime) -> set[str]:
    """Account names that must wait before their next sign-in from some address."""
    keys = session.execute(
        select(LoginThrottle.key).where(  # type: ignore[call-overload]
            col(LoginThrottle.key).startswith("account:"), col(LoginThrottle.wait_until) > now
        )
    ).scalars()
    return {key.rsplit(":", 1)[1] for key in keys}


def _waiting(session: Session, keys: list[str], now: datetime) -> float:
    until = session.execute(
        select(func.max(LoginThrottle.wait_until)).where(col(LoginThrottle.key).in_(keys))
    ).scalar()
    return max((until - now).total_seconds(), 0.0) if until is not None else 0.0


def _count_failure(session: Session, key: str, rule: Throttle, now: datetime) -> bool:
    """Add one failure to the fading count of `key`; True when this one starts the waits."""
    connection = session.connection()
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    table: Any = LoginThrottle.__table__  # type: ignore[attr-defined]
    connection.execute(
        insert(table)
        .values(key=key, score=0.0, updated_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    row = session.execute(
        select(LoginThrottle).where(col(LoginThrottle.key) == key).with_for_update()
    ).scalar_one()
    before = rule.faded(row.score, (now - row.updated_at).total_seconds())
    wait = rule.wait_seconds(before + 1)
    row.score, row.updated_at = before + 1, now
    row.wait_until = now + timedelta(seconds=wait) if wait else None
    session.add(row)
    session.execute(
        delete(LoginThrottle).where(col(LoginThrottle.updated_at) < now - _THROTTLE_KEPT)
    )
    return wait > 0 and rule.wait_seconds(before) == 0


def _lift_limits(session: Session, username: str) -> None:
    session.execute(
        delete(LoginThrottle).where(
            col(LoginThrottle.key).startswith("account:"),
            col(LoginThrottle.key).endswith(f":{username}"),
        )
    )


def change_password(
    session: Session, user: StaffUser, current: str, new: str, *, address: str = ""
) -> None:
    """The officer's own new password; ends their other sessions (a new generation)."""
    if not _verify(user.password_hash, current):
        raise StaffError("admin.error.current_password")
    if new == current:
        raise StaffError("admin.error.password_same")
    problem = password_problem(new, user.username)
    if problem:
        raise StaffError(problem)
    user.password_hash = _HASHER.hash(new)
    user.must_change_password = False
    user.session_generation += 1
    session.add(user)
    record_event(session, AccountEventKind.PASSWORD_CHANGED, user, by=user, address=address)


def account_events(
    session: Session, agency_code: str | None, page: int, per_page: int = 50
) -> tuple[list[AccountEvent], bool]:
    """A page of the account audit log, newest first; `agency_code` None = every agency.
    The second value says whether older entries follow."""
    query = select(AccountEvent).order_by(col(AccountEvent.id).desc())
    if agency_code is not None:
        query = query.where(col(AccountEvent.agency_code) == agency_code)
    found = list(session.execute(query.offset((page - 1) * per_page).limit(per_page + 1)).scalars())
    return found[:per_page], len(found) > per_page


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_STAFF: Any = StaffUser.__table__  # type: ignore[attr-defined]
_STAFF_BY_ID = compiled_for_psycopg(select(_STAFF).where(_STAFF.c.id == bindparam("id")))


async def load_staff_async(connection: Any, user_id: int) -> StaffUser | None:
    """The account behind a session cookie, over a psycopg async connection (PostgreSQL)."""
    cursor = await connection.execute(_STAFF_BY_ID, {"id": user_id}, prepare=True)
    row = await cursor.fetchone()
    if row is None:
        return None
    names = [column.name for column in cursor.description]
    return StaffUser(**dict(zip(names, row, strict=True)))
