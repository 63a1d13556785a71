"""SMS subscriptions: the phones that asked ("DK <code>") for a dossier's status pushes by SMS.

Stored with the dossier; `storage.flows` reads them when a change is recorded and queues one SMS
per phone through the outbox (core.flows: `Audience.SMS_SUBSCRIBERS`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlmodel import Session, col

from storage.models import Dossier, SmsSubscription


def dossier_id_by_code(session: Session, code: str) -> int | None:
    return session.execute(
        select(col(Dossier.id)).where(col(Dossier.code) == code)
    ).scalar_one_or_none()


def subscribe(session: Session, dossier_id: int, phone: str, at: datetime) -> None:
    """Idempotent: subscribing twice keeps one row (a gateway's retry, a citizen who forgot)."""
    if session.get(SmsSubscription, (dossier_id, phone)) is None:
        session.add(SmsSubscription(dossier_id=dossier_id, phone=phone, created_at=at))
        session.flush()


def unsubscribe(session: Session, dossier_id: int, phone: str) -> None:
    session.execute(
        delete(SmsSubscription).where(
            col(SmsSubscription.dossier_id) == dossier_id,
            col(SmsSubscription.phone) == phone,
        )
    )


def subscribed_phones(session: Session, dossier_id: int) -> list[str]:
    return list(
        session.execute(
            select(col(SmsSubscription.phone))
            .where(col(SmsSubscription.dossier_id) == dossier_id)
            .order_by(col(SmsSubscription.created_at))
        ).scalars()
    )
