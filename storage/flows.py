"""A dossier's change recorded with everything it causes, in the caller's transaction.

`record_transition` writes the audit entry, then each effect `core.flows.transition_effects`
lists as an outbox row (the citizen on their channel, the desk in the panel and on the linked
officers' phones, the agency's one-stop system, one SMS per phone subscribed with "DK <code>"),
so the change and its effects commit together or not at all. Each row's key names the change
and the effect: recording the same change twice queues nothing twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from core.channels import Channel
from core.dossier import Decision
from core.flows import (
    Audience,
    Effect,
    FlowRules,
    citizen_message_effects,
    transfer_effects,
    transition_effects,
)
from core.staff import Permission, can
from storage.models import ChannelIdentity, Dossier, StatusEvent, ThreadMessage
from storage.outbox import add_message
from storage.sms import subscribed_phones
from storage.staff import member
from storage.staff_bot import linked_officers, new_button


def record_transition(
    session: Session,
    dossier: Dossier,
    decision: Decision,
    *,
    rules: FlowRules,
    staff_user_id: int | None,
) -> StatusEvent:
    """The audit entry of `decision` and its effects in the outbox."""
    assert dossier.id is not None
    event = StatusEvent(
        dossier_id=dossier.id,
        action=decision.transition.action.value,
        from_status=decision.before.status.value,
        to_status=decision.after.status.value,
        actor_kind=decision.command.actor.value,
        staff_user_id=staff_user_id,
        note=decision.audit_note,
        details=decision.notice.values if decision.notice else {},
        at=decision.command.at,
    )
    session.add(event)
    session.flush()
    identity = reply_identity(session, dossier)
    phones = subscribed_phones(session, dossier.id)
    effects = transition_effects(
        decision,
        agency_code=dossier.agency_code,
        citizen_reachable=identity is not None,
        forwarded=dossier.onestop_queued_at is not None,
        rules=rules,
        sms_subscribed=bool(phones),
    )
    assert event.id is not None
    for effect in effects:
        _queue(session, dossier, identity, phones, effect, event.id, decision.command.at)
    return event


def record_transfer(
    session: Session, dossier: Dossier, event: StatusEvent, agency: dict[str, str]
) -> None:
    """The effects of handing a dossier to another desk (its audit entry is `event`)."""
    identity = reply_identity(session, dossier)
    assert dossier.id is not None and event.id is not None
    phones = subscribed_phones(session, dossier.id)
    for effect in transfer_effects(dossier.code, agency, identity is not None, bool(phones)):
        _queue(session, dossier, identity, phones, effect, event.id, event.at)


def _queue(
    session: Session,
    dossier: Dossier,
    identity: ChannelIdentity | None,
    phones: list[str],
    effect: Effect,
    event_id: int,
    at: datetime,
) -> None:
    key = f"{effect.name}:{dossier.id}:{event_id}"
    match effect.audience:
        case Audience.CITIZEN:
            assert identity is not None
            queue_for_citizen(session, dossier, identity, key, effect.template,
                              effect.values, at)  # fmt: skip
        case Audience.DESK:
            add_message(session, key=key, channel=Channel.PANEL, recipient=dossier.agency_code,
                        template=effect.template, values=effect.values, dossier_id=dossier.id,
                        at=at)  # fmt: skip
        case Audience.OFFICERS:
            queue_for_officers(session, dossier, key, effect, at)
        case Audience.ONESTOP:
            values = {**effect.values, "event_id": event_id}  # who took the step (NguoiXuLy)
            add_message(session, key=key, channel=Channel.ONESTOP, recipient=dossier.agency_code,
                        template=effect.template, values=values, dossier_id=dossier.id,
                        at=at)  # fmt: skip
            if dossier.onestop_queued_at is None:
                dossier.onestop_queued_at = at
                session.add(dossier)
        case Audience.SMS_SUBSCRIBERS:  # SMS is written unaccented from the Vietnamese text
            for phone in phones:
                add_message(session, key=f"{key}:{phone}", channel=Channel.SMS, recipient=phone,
                            template=effect.template, values={**effect.values, "language": "vi"},
                            dossier_id=dossier.id, at=at)  # fmt: skip


def queue_for_officers(
    session: Session, dossier: Dossier, key: str, effect: Effect, at: datetime
) -> None:
    """One staff-bot message per linked officer who may act on the dossier (core.staff), each
    with its own buttons: a key per quick step, made for that officer."""
    assert dossier.id is not None
    for user, chat_id in linked_officers(session, dossier.agency_code):
        if not can(member(user), Permission.ACT_ON_DOSSIERS, dossier.agency_code):
            continue
        assert user.id is not None
        buttons = {action: new_button(session, user.id, dossier.id, action, at)
                   for action in effect.values.get("actions", [])}  # fmt: skip
        add_message(session, key=f"{key}:{user.id}", channel=Channel.STAFF,
                    recipient=str(chat_id), template=effect.template,
                    values={**effect.values, "buttons": buttons}, dossier_id=dossier.id,
                    at=at)  # fmt: skip


def record_citizen_message(session: Session, dossier: Dossier, message: ThreadMessage) -> None:
    """The effects of a citizen's message in the dossier's thread (core.flows)."""
    assert message.id is not None
    for effect in citizen_message_effects(dossier.code, message.text):
        queue_for_officers(session, dossier, f"{effect.name}:{dossier.id}:{message.id}", effect,
                           message.created_at)  # fmt: skip


def remind_desk(
    session: Session,
    *,
    key: str,
    agency_code: str,
    template: str,
    values: dict[str, Any],
    at: datetime,
    dossier_id: int | None = None,
    citizen_id: int | None = None,
) -> bool:
    """A staff reminder: listed in the agency's panel and sent to each of its officers linked to
    the staff bot who may act on the agency's dossiers; False when `key` was queued already."""
    if not add_message(session, key=key, channel=Channel.PANEL, recipient=agency_code,
                       template=template, values=values, dossier_id=dossier_id,
                       citizen_id=citizen_id, at=at):  # fmt: skip
        return False
    for user, chat_id in linked_officers(session, agency_code):
        if can(member(user), Permission.ACT_ON_DOSSIERS, agency_code):
            add_message(session, key=f"{key}:staff:{user.id}", channel=Channel.STAFF,
                        recipient=str(chat_id), template=template, values=values,
                        dossier_id=dossier_id, citizen_id=citizen_id, at=at)  # fmt: skip
    return True


def notify_citizen(
    session: Session,
    dossier: Dossier,
    key: str,
    template: str,
    values: dict[str, Any],
    at: datetime,
) -> bool:
    """Queue a message to the dossier's citizen on the channel they used, in their language;
    False when there is nobody to tell (no citizen, no channel) or `key` was queued already."""
    identity = reply_identity(session, dossier)
    if identity is None:
        return False
    return queue_for_citizen(session, dossier, identity, key, template, values, at)


def queue_for_citizen(
    session: Session,
    dossier: Dossier,
    identity: ChannelIdentity,
    key: str,
    template: str,
    values: dict[str, Any],
    at: datetime,
) -> bool:
    return add_message(
        session,
        key=key,
        channel=identity.channel,
        recipient=identity.external_id,
        template=template,
        values={**values, "language": identity.language},
        dossier_id=dossier.id,
        citizen_id=dossier.citizen_id,
        at=at,
    )


def reply_identity(session: Session, dossier: Dossier) -> ChannelIdentity | None:
    """Where the citizen is told about this dossier: the channel it was submitted on."""
    if dossier.citizen_id is None:
        return None
    return session.execute(
        select(ChannelIdentity).where(
            ChannelIdentity.citizen_id == dossier.citizen_id,  # type: ignore[arg-type]
            ChannelIdentity.channel == dossier.channel,  # type: ignore[arg-type]
        )
    ).scalar_one_or_none()
