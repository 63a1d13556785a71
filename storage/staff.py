"""Staff accounts: argon2 password hashes, one-time first passwords, lockout after failures."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select
from sqlmodel import Session

from core.staff import (
    LOCKOUT_MINUTES,
    MAX_FAILED_LOGINS,
    Role,
    StaffMember,
    normal_username,
    password_problem,
    username_problem,
)
from storage.db import compiled_for_psycopg
from storage.models import Agency, StaffUser

_HASHER = PasswordHasher()
# Verified when the username is unknown, so both answers take as long (no user enumeration).
_DUMMY_HASH = _HASHER.hash("not-a-password-of-anyone")


class StaffError(ValueError):
    """A message key (templates/messages/admin.toml) for why an account change was refused."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class Login(StrEnum):
    OK = "ok"
    BAD = "bad"  # unknown name or wrong password: the same answer for both
    LOCKED = "locked"


def member(user: StaffUser) -> StaffMember:
    assert user.id is not None
    return StaffMember(user.id, user.username, user.full_name, user.agency_code, Role(user.role))


def create_staff(
    session: Session, *, username: str, full_name: str, agency_code: str, role: Role
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
        full_name=full_name.strip() or username,
        agency_code=agency_code,
        role=role.value,
        password_hash=_HASHER.hash(one_time),
        must_change_password=True,
    )
    session.add(user)
    session.flush()
    return user, one_time


def staff_by_username(session: Session, username: str) -> StaffUser | None:
    """The account of a name as typed (see `normal_username`)."""
    statement = select(StaffUser).where(StaffUser.username == normal_username(username))  # type: ignore[arg-type]
    return session.execute(statement).scalar_one_or_none()


def reset_password(session: Session, user: StaffUser) -> str:
    """A new one-time password (an admin's "reset"): unlocks, and forces a change at login."""
    one_time = secrets.token_urlsafe(12)
    user.password_hash = _HASHER.hash(one_time)
    user.must_change_password, user.failed_logins, user.locked_until = True, 0, None
    session.add(user)
    return one_time


def authenticate(
    session: Session, username: str, password: str, now: datetime
) -> tuple[Login, StaffUser | None]:
    """Check a login; repeated failures lock the account for a while, even for a good password."""
    user = staff_by_username(session, username)
    if user is None:
        _verify(_DUMMY_HASH, password)
        return Login.BAD, None
    if user.locked_until is not None and user.locked_until > now:
        return Login.LOCKED, None
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until, user.failed_logins = now + timedelta(minutes=LOCKOUT_MINUTES), 0
        session.add(user)
        return (Login.LOCKED if user.locked_until and user.locked_until > now else Login.BAD), None
    user.failed_logins, user.locked_until = 0, None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    session.add(user)
    return Login.OK, user


def change_password(session: Session, user: StaffUser, current: str, new: str) -> None:
    if not _verify(user.password_hash, current):
        raise StaffError("admin.error.current_password")
    if new == current:
        raise StaffError("admin.error.password_same")
    problem = password_problem(new, user.username)
    if problem:
        raise StaffError(problem)
    user.password_hash = _HASHER.hash(new)
    user.must_change_password = False
    session.add(user)


def session_fingerprint(user: StaffUser) -> str:
    """Part of the session cookie: a password change ends every other session of the account."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


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
