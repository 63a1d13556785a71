"""What the staff Telegram bot keeps: which Telegram user is which staff account, the one-time
links that bind them, and what each inline button means (its callback data is only a key).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session, col

from storage.models import StaffButton, StaffLinkToken, StaffTelegram, StaffUser

LINK_LIFETIME = timedelta(minutes=10)
MAX_TOKEN = 64  # Telegram's /start payload is at most 64 characters


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_link_token(session: Session, staff_user_id: int, at: datetime) -> str:
    """A one-time token for `t.me/<bot>?start=<token>`: single use, `LINK_LIFETIME`."""
    token = secrets.token_urlsafe(24)  # 32 characters of [A-Za-z0-9_-], as /start allows
    session.add(StaffLinkToken(token_hash=_hash(token), staff_user_id=staff_user_id,
                               expires_at=at + LINK_LIFETIME))  # fmt: skip
    session.flush()
    return token


def deep_link(bot_username: str, token: str) -> str:
    return f"https://t.me/{bot_username}?start={token}"


def redeem_link(
    session: Session, token: str, telegram_user_id: int, chat_id: int, at: datetime
) -> StaffUser | None:
    """Bind the Telegram user to the token's account; None when the token is unknown, expired
    or used (a conditional UPDATE: of two presses of one link, one wins)."""
    if not token or len(token) > MAX_TOKEN:
        return None
    used = session.execute(
        update(StaffLinkToken)
        .where(
            col(StaffLinkToken.token_hash) == _hash(token),
            col(StaffLinkToken.used_at).is_(None),
            col(StaffLinkToken.expires_at) > at,
        )
        .values(used_at=at)
        .returning(col(StaffLinkToken.staff_user_id))
    ).scalar_one_or_none()
    if used is None:
        return None
    user = session.get(StaffUser, used)
    if user is None:
        return None
    for old in session.execute(  # one Telegram user, one account; one account, one user
        select(StaffTelegram).where(
            (col(StaffTelegram.telegram_user_id) == telegram_user_id)
            | (col(StaffTelegram.staff_user_id) == used)
        )
    ).scalars():
        session.delete(old)
    session.flush()
    session.add(StaffTelegram(staff_user_id=used, telegram_user_id=telegram_user_id,
                              chat_id=chat_id, linked_at=at))  # fmt: skip
    session.flush()
    return user


def unlink(session: Session, staff_user_id: int) -> bool:
    link = session.get(StaffTelegram, staff_user_id)
    if link is None:
        return False
    session.delete(link)
    return True


def linked_staff(session: Session, telegram_user_id: int) -> tuple[StaffUser, StaffTelegram] | None:
    """The account bound to this Telegram user, if any."""
    row = session.execute(
        select(StaffUser, StaffTelegram)
        .join(StaffTelegram, col(StaffTelegram.staff_user_id) == col(StaffUser.id))
        .where(col(StaffTelegram.telegram_user_id) == telegram_user_id)
    ).first()
    return (row[0], row[1]) if row else None


def is_linked(session: Session, staff_user_id: int) -> bool:
    return session.get(StaffTelegram, staff_user_id) is not None


def linked_officers(session: Session, agency_code: str) -> list[tuple[StaffUser, int]]:
    """The agency's accounts with a linked chat: (account, chat id). Whether each may receive a
    dossier's alert is `core.staff.can`'s to say (the caller asks)."""
    rows = session.execute(
        select(StaffUser, col(StaffTelegram.chat_id))
        .join(StaffTelegram, col(StaffTelegram.staff_user_id) == col(StaffUser.id))
        .where(col(StaffUser.agency_code) == agency_code)
        .order_by(col(StaffUser.id))
    ).all()
    return [(user, int(chat)) for user, chat in rows]


def new_button(
    session: Session, staff_user_id: int, dossier_id: int, action: str, at: datetime
) -> str:
    """A button's callback data: a random key naming (officer, dossier, action) on the server."""
    key = secrets.token_urlsafe(12)
    session.add(StaffButton(key=key, staff_user_id=staff_user_id, dossier_id=dossier_id,
                            action=action, created_at=at))  # fmt: skip
    session.flush()
    return key


def pressed(session: Session, key: str, staff_user_id: int) -> StaffButton | None:
    """The button behind `key`, only when it was made for this officer."""
    if not key or len(key) > 24:
        return None
    button = session.get(StaffButton, key)
    if button is None or button.staff_user_id != staff_user_id:
        return None
    return button


def wait_for_text(session: Session, link: StaffTelegram, what: dict[str, Any] | None) -> None:
    """Remember (or forget, with None) that the officer's next text answers a button."""
    link.waiting = what
    session.add(link)
