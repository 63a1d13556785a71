"""What a desk officer writes besides status changes: replies in the citizen's thread, transfers
to another agency, canned replies, answers to feedback. Each notice to the citizen goes into the
outbox in the same transaction."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from core.catalog import Catalog
from core.dossier import Status
from core.flows import transfer_refusal
from core.messages import render
from core.staff import StaffMember
from storage.flows import notify_citizen, record_transfer
from storage.models import (
    CannedReply,
    ChannelIdentity,
    Dossier,
    Feedback,
    StatusEvent,
    ThreadMessage,
)
from storage.outbox import add_message
from storage.staff import StaffError

MAX_REPLY = 3000


def reply_to_citizen(
    session: Session, dossier: Dossier, staff: StaffMember, text: str, at: datetime
) -> ThreadMessage:
    """A message in the dossier's thread, pushed to the citizen on their channel."""
    text = text.strip()
    if not text:
        raise StaffError("admin.error.reply_empty")
    assert dossier.id is not None
    message = ThreadMessage(
        dossier_id=dossier.id, direction="out", staff_user_id=staff.id, text=text[:MAX_REPLY]
    )
    session.add(message)
    dossier.last_activity_at = at
    session.add(dossier)
    session.flush()
    notify_citizen(session, dossier, f"reply:{message.id}", "notice.reply",
                   {"code": dossier.code, "text": message.text}, at)  # fmt: skip
    return message


def transfer(
    session: Session,
    dossier: Dossier,
    to_agency: str,
    staff: StaffMember,
    catalog: Catalog,
    at: datetime,
    reason: str,
) -> None:
    """Hand an open dossier to another receiving desk for the same procedure (whatever the
    citizen's residence); the code stays, the audit trail records who and why."""
    procedure = catalog.procedure(dossier.procedure_code)
    refusal = transfer_refusal(
        catalog, procedure, Status(dossier.status), dossier.agency_code, to_agency, reason
    )
    if refusal is not None:
        raise StaffError(refusal)
    assert dossier.id is not None
    source = dossier.agency_code
    dossier.agency_code, dossier.last_activity_at = to_agency, at
    session.add(dossier)
    agency = catalog.agency(to_agency)
    event = StatusEvent(
        dossier_id=dossier.id,
        action="transfer",
        from_status=dossier.status,
        to_status=dossier.status,
        actor_kind="desk_officer",
        staff_user_id=staff.id,
        note=render(
            "audit.transferred",
            "vi",
            source=source,
            target=agency.name.vi,
            reason=reason.strip(),
        ),
        details={"from": source, "to": to_agency, "reason": reason.strip()},
        at=at,
    )
    session.add(event)
    session.flush()
    record_transfer(session, dossier, event, {"vi": agency.name.vi, "en": agency.name.en})


def canned_replies(session: Session, agency_code: str) -> list[CannedReply]:
    return list(
        session.execute(
            select(CannedReply)
            .where(col(CannedReply.agency_code) == agency_code)
            .order_by(col(CannedReply.title))
        ).scalars()
    )


PLACEHOLDERS = ("code", "name", "procedure", "appointment_date")
MAX_CANNED_REPLY = 2000  # filled, it still fits one reply (MAX_REPLY)
_BRACED = re.compile(r"\{([^{}]*)\}")


def add_canned_reply(session: Session, agency_code: str, title: str, text: str) -> CannedReply:
    """A canned reply of the agency; its `{...}` must each be a known placeholder, as typed."""
    text = text.strip()
    if not title.strip() or not text:
        raise StaffError("admin.error.canned_empty")
    if len(text) > MAX_CANNED_REPLY:
        raise StaffError("admin.error.canned_too_long")
    if not set(_BRACED.findall(text)) <= set(PLACEHOLDERS):
        raise StaffError("admin.error.canned_placeholder")
    reply = CannedReply(agency_code=agency_code, title=title.strip()[:120], text=text)
    session.add(reply)
    session.flush()
    return reply


def fill_canned_reply(text: str, values: dict[str, Any]) -> str:
    """`{code}`, `{name}`, `{procedure}` and `{appointment_date}` replaced by the dossier's
    values, as plain text; anything else in braces (a reply stored before the check at save)
    is left as typed — no format spec is ever interpreted, so no stored reply can break or
    bloat the dossier page."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(values.get(name, "")) if name in PLACEHOLDERS else match.group(0)

    return _BRACED.sub(value, text)[:MAX_REPLY]


def answer_feedback(
    session: Session, feedback: Feedback, staff: StaffMember, text: str, at: datetime
) -> None:
    """Trả lời phản ánh: the answer goes to the citizen on the channel the feedback came from."""
    if not text.strip():
        raise StaffError("admin.error.reply_empty")
    identity = session.execute(
        select(ChannelIdentity).where(
            col(ChannelIdentity.citizen_id) == feedback.citizen_id,
            col(ChannelIdentity.channel) == feedback.channel,
        )
    ).scalar_one_or_none()
    feedback.answered_at = at
    session.add(feedback)
    if identity is not None:
        add_message(
            session,
            key=f"feedback:{feedback.id}",
            channel=identity.channel,
            recipient=identity.external_id,
            template="notice.feedback_answer",
            values={"text": text.strip()[:MAX_REPLY], "language": identity.language},
            citizen_id=feedback.citizen_id,
            at=at,
        )
