"""The Zalo Official Account's OAuth pair, kept in the database (not env, not a file).

Zalo's refresh tokens are single-use and rotate: two processes spending the same one would leave
one of them — and then everyone — with a refused token. `lock_token` holds the row for the rest
of the transaction (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite a write first, so the single
writer lock is taken before the row is read), and the new pair is committed before it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.models import ZaloToken


@dataclass(frozen=True)
class StoredToken:
    oa_id: str
    access_token: str
    refresh_token: str
    expires_at: datetime
    refreshed_at: datetime
    broken_reason: str | None

    def valid_at(self, moment: datetime, margin: timedelta = timedelta(0)) -> bool:
        return self.broken_reason is None and self.expires_at - margin > moment


def _stored(row: ZaloToken) -> StoredToken:
    return StoredToken(
        row.oa_id,
        row.access_token,
        row.refresh_token,
        row.expires_at,
        row.refreshed_at,
        row.broken_reason,
    )


def get_token(session: Session, oa_id: str) -> StoredToken | None:
    row = session.get(ZaloToken, oa_id)
    return None if row is None else _stored(row)


def lock_token(session: Session, oa_id: str) -> StoredToken | None:
    """The OA's pair, locked against other processes until this session's transaction ends."""
    if session.connection().dialect.name == "sqlite":
        # A no-op write takes SQLite's writer lock before anything is read, so a second process
        # waits here (busy timeout) and then reads the pair the first one committed.
        claim = update(ZaloToken).where(col(ZaloToken.oa_id) == oa_id).values(oa_id=oa_id)
        session.execute(claim)
        statement = select(ZaloToken).where(ZaloToken.oa_id == oa_id)
    else:
        statement = select(ZaloToken).where(ZaloToken.oa_id == oa_id).with_for_update()
    row = session.exec(statement.execution_options(populate_existing=True)).first()
    return None if row is None else _stored(row)


def save_tokens(
    session: Session,
    *,
    oa_id: str,
    access_token: str,
    refresh_token: str,
    expires_at: datetime,
    now: datetime,
) -> None:
    """Store a fresh pair (from the consent exchange, a refresh, or `hcc zalo token`)."""
    row = session.get(ZaloToken, oa_id) or ZaloToken(
        oa_id=oa_id, access_token="", refresh_token="", expires_at=expires_at
    )
    row.access_token, row.refresh_token = access_token, refresh_token
    row.expires_at, row.refreshed_at, row.broken_reason = expires_at, now, None
    session.add(row)
    session.flush()


def mark_broken(session: Session, oa_id: str, reason: str) -> None:
    """Zalo refused the refresh token: nothing can be sent until the OA admin reconnects."""
    row = session.get(ZaloToken, oa_id)
    if row is not None:
        row.broken_reason = reason
        session.add(row)
        session.flush()


def token_state(session: Session, oa_id: str, now: datetime) -> str:
    """For /healthz and the panel: the token's state, never the token itself."""
    token = get_token(session, oa_id)
    if token is None:
        return "not connected"
    if token.broken_reason is not None:
        return f"broken: {token.broken_reason}"
    until = token.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    if token.expires_at <= now:
        return f"expired at {until}, refreshed on the next send"
    return f"valid until {until}"
