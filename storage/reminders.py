"""Reminders queued in the outbox from what the database says now (core/reminders.py decides
when). Run on every dispatcher tick: a reminder's key makes it fire once, so ticking often, from
several workers, or after a restart never repeats one and never loses one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from core.calendar import WorkingCalendar, to_local
from core.catalog import Catalog
from core.channels import Channel
from core.dossier import RUNNING, Action, Status
from core.flows import ONESTOP_CREATE, FlowRules
from core.reminders import (
    Deadline,
    deadline_reminder_key,
    deadline_state,
    feedback_reminder_due,
    forward_due_at,
    supplement_reminder_due,
)
from storage.dossiers import feedback_agency
from storage.flows import notify_citizen, remind_desk
from storage.models import Dossier, Feedback, OutboxMessage, StatusEvent


def queue_reminders(
    session: Session,
    catalog: Catalog,
    calendar: WorkingCalendar,
    now: datetime,
    rules: FlowRules,
) -> int:
    """Queue every reminder due at `now`; returns how many were new."""
    return (
        _deadlines(session, catalog, calendar, now)
        + _supplements(session, catalog, calendar, now)
        + _feedback(session, catalog, calendar, now)
        + _forwarding(session, catalog, calendar, now, rules)
    )


def _procedure_name(catalog: Catalog, code: str) -> dict[str, str]:
    procedure = catalog.procedures.get(code)
    return {"vi": procedure.name.vi, "en": procedure.name.en} if procedure else {"vi": code}


def _deadlines(session: Session, catalog: Catalog, calendar: WorkingCalendar, now: datetime) -> int:
    today = to_local(now).date()
    horizon = calendar.add_working_days(today, 1)
    dossiers = session.execute(
        select(Dossier).where(
            Dossier.status.in_([s.value for s in RUNNING]),  # type: ignore[attr-defined]
            Dossier.appointment_date <= horizon,  # type: ignore[arg-type,operator]
        )
    ).scalars()
    queued = 0
    for dossier in dossiers:
        assert dossier.id is not None and dossier.appointment_date is not None
        state = deadline_state(calendar, dossier.appointment_date, now)
        if state is None or (state is Deadline.OVERDUE and not calendar.is_working_day(today)):
            continue
        queued += remind_desk(
            session,
            key=deadline_reminder_key(dossier.id, dossier.appointment_date, state, now),
            agency_code=dossier.agency_code,
            template=f"remind.{state.value}",
            values={
                "code": dossier.code,
                "procedure": _procedure_name(catalog, dossier.procedure_code),
                "appointment_date": dossier.appointment_date.isoformat(),
            },
            dossier_id=dossier.id,
            at=now,
        )
    return queued


def _supplements(
    session: Session, catalog: Catalog, calendar: WorkingCalendar, now: datetime
) -> int:
    latest_request = (
        select(col(StatusEvent.dossier_id), func.max(col(StatusEvent.id)).label("event_id"))
        .where(col(StatusEvent.action) == Action.REQUEST_SUPPLEMENT.value)
        .group_by(col(StatusEvent.dossier_id))
        .subquery()
    )
    rows = session.execute(
        select(Dossier, StatusEvent)
        .join(latest_request, latest_request.c.dossier_id == Dossier.id)
        .join(StatusEvent, col(StatusEvent.id) == latest_request.c.event_id)
        .where(Dossier.status == Status.SUPPLEMENT_REQUESTED.value)  # type: ignore[arg-type]
    ).all()
    queued = 0
    for dossier, request in rows:
        if not supplement_reminder_due(calendar, request.at, now):
            continue
        queued += notify_citizen(
            session,
            dossier,
            f"remind:supplement:{dossier.id}:{request.id}",
            "remind.supplement_missing",
            {"code": dossier.code, "procedure": _procedure_name(catalog, dossier.procedure_code)},
            now,
        )
    return queued


def _feedback(session: Session, catalog: Catalog, calendar: WorkingCalendar, now: datetime) -> int:
    waiting = session.execute(
        select(Feedback).where(
            Feedback.answered_at.is_(None),  # type: ignore[union-attr]
            Feedback.created_at <= now - timedelta(days=2),  # type: ignore[arg-type]
        )
    ).scalars()
    queued = 0
    for feedback in waiting:
        if not feedback_reminder_due(calendar, feedback.created_at, now):
            continue
        queued += remind_desk(
            session,
            key=f"remind:feedback:{feedback.id}",
            agency_code=feedback.agency_code
            or feedback_agency(session, catalog, feedback.citizen_id),
            template="remind.feedback_unanswered",
            values=_feedback_values(feedback),
            citizen_id=feedback.citizen_id,
            at=now,
        )
    return queued


def _feedback_values(feedback: Feedback) -> dict[str, Any]:
    return {
        "feedback_id": feedback.id,
        "received_date": to_local(feedback.created_at).date().isoformat(),
    }


# An accepted dossier is due in the one-stop system at least this long after its acceptance.
_FORWARD_AT_LEAST = timedelta(hours=4)


def _forwarding(
    session: Session, catalog: Catalog, calendar: WorkingCalendar, now: datetime, rules: FlowRules
) -> int:
    """Accepted dossiers not in the one-stop system half a working day later: the desk enters
    them by hand (no system) or sees why the connector has not delivered them."""
    waiting = session.execute(
        select(Dossier).where(
            Dossier.status == Status.ACCEPTED.value,  # type: ignore[arg-type]
            Dossier.received_at <= now - _FORWARD_AT_LEAST,  # type: ignore[arg-type,operator]
        )
    ).scalars()
    queued = 0
    for dossier in waiting:
        assert dossier.id is not None and dossier.received_at is not None
        if now < forward_due_at(calendar, dossier.received_at):
            continue
        if rules.forward_on(dossier.agency_code) is None:
            template = "remind.enter_by_hand"
        elif _reached_onestop(session, dossier.id):
            continue
        else:
            template = "remind.not_forwarded"
        queued += remind_desk(
            session,
            key=f"remind:forward:{dossier.id}:{dossier.received_at.isoformat()}",
            agency_code=dossier.agency_code,
            template=template,
            values={
                "code": dossier.code,
                "procedure": _procedure_name(catalog, dossier.procedure_code),
            },
            dossier_id=dossier.id,
            at=now,
        )
    return queued


def _reached_onestop(session: Session, dossier_id: int) -> bool:
    return (
        session.execute(
            select(col(OutboxMessage.id)).where(
                col(OutboxMessage.dossier_id) == dossier_id,
                col(OutboxMessage.channel) == Channel.ONESTOP,
                col(OutboxMessage.template) == ONESTOP_CREATE,
                col(OutboxMessage.state) == "sent",
            )
        ).first()
        is not None
    )
