"""What the desk panel reads: queues with counts, the filtered list, one dossier with everything
around it. Every query is scoped to one agency by the caller (the panel passes the officer's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.engine import Connection
from sqlmodel import Session, col

from core.calendar import VN_TZ, WorkingCalendar, to_local
from core.codes import parse_code
from core.dossier import AWAITING_DESK, RUNNING, Status
from core.phone import normalize_phone
from storage.models import (
    Citizen,
    DocumentFile,
    Dossier,
    Feedback,
    OutboxMessage,
    StaffUser,
    StatusEvent,
    ThreadMessage,
)

PAGE_SIZE = 25
OPEN_STATUSES = (*AWAITING_DESK, Status.SUPPLEMENT_REQUESTED, *RUNNING, Status.RESULT_READY)
QUEUE_STATUSES: dict[str, tuple[Status, ...]] = {
    "new": tuple(AWAITING_DESK),
    "supplement": (Status.SUPPLEMENT_REQUESTED,),
    "in_progress": tuple(RUNNING),
    "due_soon": tuple(RUNNING),
    "overdue": tuple(RUNNING),
    "result_ready": (Status.RESULT_READY,),
    "all": tuple(Status),
}
QUEUES = (*QUEUE_STATUSES, "feedback")


def _values(statuses: tuple[Status, ...]) -> list[str]:
    return [s.value for s in statuses]


def _counts_query() -> Any:
    """Built once: the queue counts and the refresh stamp in one statement over the agency's open
    dossiers only (the index on agency and status), so its cost does not grow with history."""
    status, due = col(Dossier.status), col(Dossier.appointment_date)
    running = status.in_(_values(tuple(RUNNING)))

    def count_of(queue: str) -> Any:
        return func.count().filter(status.in_(_values(QUEUE_STATUSES[queue])))

    feedback = (
        select(func.count())
        .select_from(Feedback)
        .where(
            col(Feedback.agency_code) == bindparam("agency"), col(Feedback.answered_at).is_(None)
        )
        .scalar_subquery()
    )
    return select(
        count_of("new"),
        count_of("supplement"),
        count_of("in_progress"),
        func.count().filter(running, due >= bindparam("today"), due <= bindparam("tomorrow")),
        func.count().filter(running, due < bindparam("today")),
        count_of("result_ready"),
        feedback,
        func.max(col(Dossier.last_activity_at)),
        func.count(),
    ).where(col(Dossier.agency_code) == bindparam("agency"), status.in_(_values(OPEN_STATUSES)))


COUNTS_QUERY = _counts_query()
_COUNTED = ("new", "supplement", "in_progress", "due_soon", "overdue", "result_ready", "feedback")


def queue_counts(
    session: Session | Connection, agency_code: str, calendar: WorkingCalendar, now: datetime
) -> tuple[dict[str, int], str]:
    """How many dossiers wait in each queue, and a stamp that changes when any of them moves."""
    today = to_local(now).date()
    params = {
        "agency": agency_code,
        "today": today,
        "tomorrow": calendar.add_working_days(today, 1),
    }
    row = session.execute(COUNTS_QUERY, params).one()
    counts = {name: int(value) for name, value in zip(_COUNTED, row[:7], strict=True)}
    latest, total = row[7], row[8]
    return counts, f"{latest.isoformat() if latest else '-'}/{total}"


@dataclass(frozen=True)
class InboxFilter:
    queue: str = "new"
    procedure: str = ""
    status: str = ""
    since: date | None = None
    until: date | None = None
    search: str = ""
    page: int = 1


@dataclass(frozen=True)
class InboxRow:
    code: str
    procedure_code: str
    status: Status
    applicant: str
    phone: str
    submitted_at: datetime
    last_activity_at: datetime
    appointment_date: date | None
    channel: str


def inbox_page(
    session: Session | Connection,
    agency_code: str,
    wanted: InboxFilter,
    calendar: WorkingCalendar,
    now: datetime,
) -> tuple[list[InboxRow], bool]:
    """One page of the queue, newest activity first; True when there is a next page.

    The page is chosen on the dossier table alone (its indexes), then joined to the applicants,
    so a page costs 26 joins whatever the size of the queue."""
    ids = select(col(Dossier.id), col(Dossier.last_activity_at)).where(
        col(Dossier.agency_code) == agency_code
    )
    statuses = QUEUE_STATUSES.get(wanted.queue, QUEUE_STATUSES["all"])
    if wanted.status and wanted.status in Status.__members__.values():
        statuses = (Status(wanted.status),)
    if statuses != QUEUE_STATUSES["all"]:
        ids = ids.where(col(Dossier.status).in_(_values(statuses)))
    today = to_local(now).date()
    if wanted.queue == "due_soon":
        ids = ids.where(
            col(Dossier.appointment_date) >= today,
            col(Dossier.appointment_date) <= calendar.add_working_days(today, 1),
        )
    elif wanted.queue == "overdue":
        ids = ids.where(col(Dossier.appointment_date) < today)
    if wanted.procedure:
        ids = ids.where(col(Dossier.procedure_code) == wanted.procedure)
    if wanted.since:
        ids = ids.where(col(Dossier.submitted_at) >= _start_of(wanted.since))
    if wanted.until:
        ids = ids.where(col(Dossier.submitted_at) < _start_of(wanted.until + timedelta(days=1)))
    if wanted.search.strip():
        ids = ids.outerjoin(Citizen, col(Citizen.id) == col(Dossier.citizen_id)).where(
            _search(wanted.search.strip())
        )
    offset = (max(wanted.page, 1) - 1) * PAGE_SIZE
    chosen = (
        ids.order_by(col(Dossier.last_activity_at).desc(), col(Dossier.id).desc())
        .offset(offset)
        .limit(PAGE_SIZE + 1)
        .subquery()
    )
    rows = session.execute(
        select(
            col(Dossier.code),
            col(Dossier.procedure_code),
            col(Dossier.status),
            col(Citizen.full_name),
            col(Citizen.phone),
            col(Dossier.submitted_at),
            col(Dossier.last_activity_at),
            col(Dossier.appointment_date),
            col(Dossier.channel),
        )
        .select_from(chosen)
        .join(Dossier, col(Dossier.id) == chosen.c.id)
        .outerjoin(Citizen, col(Citizen.id) == col(Dossier.citizen_id))
        .order_by(chosen.c.last_activity_at.desc(), chosen.c.id.desc())
    ).all()
    page = [
        InboxRow(
            code=r[0],
            procedure_code=r[1],
            status=Status(r[2]),
            applicant=r[3] or "",
            phone=r[4] or "",
            submitted_at=r[5],
            last_activity_at=r[6],
            appointment_date=r[7],
            channel=r[8],
        )
        for r in rows[:PAGE_SIZE]
    ]
    return page, len(rows) > PAGE_SIZE


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=VN_TZ)


def _search(text: str) -> Any:
    """A code (ours or the one-stop system's), a phone number, or part of a name."""
    parsed = parse_code(text)
    if parsed is not None:
        return col(Dossier.code) == str(parsed)
    phone = normalize_phone(text)
    if phone is not None:
        return col(Citizen.phone) == phone
    return or_(
        col(Dossier.official_code) == text.upper(),
        col(Citizen.full_name).ilike(f"%{text}%"),
    )


@dataclass
class DossierView:
    dossier: Dossier
    citizen: Citizen | None
    files: dict[str, list[DocumentFile]] = field(default_factory=dict)
    events: list[tuple[StatusEvent, str]] = field(default_factory=list)  # event, officer name
    thread: list[tuple[ThreadMessage, str]] = field(default_factory=list)


def dossier_view(session: Session, dossier: Dossier) -> DossierView:
    assert dossier.id is not None
    citizen = session.get(Citizen, dossier.citizen_id) if dossier.citizen_id else None
    view = DossierView(dossier, citizen)
    for file in session.execute(
        select(DocumentFile)
        .where(col(DocumentFile.dossier_id) == dossier.id)
        .order_by(col(DocumentFile.id))
    ).scalars():
        view.files.setdefault(file.component_code, []).append(file)
    names = dict(session.execute(select(col(StaffUser.id), col(StaffUser.full_name))).all())
    for event in session.execute(
        select(StatusEvent)
        .where(col(StatusEvent.dossier_id) == dossier.id)
        .order_by(col(StatusEvent.id))
    ).scalars():
        view.events.append((event, names.get(event.staff_user_id, "")))
    for message in session.execute(
        select(ThreadMessage)
        .where(col(ThreadMessage.dossier_id) == dossier.id)
        .order_by(col(ThreadMessage.id))
    ).scalars():
        view.thread.append((message, names.get(message.staff_user_id, "")))
    return view


def agency_reminders(session: Session, agency_code: str, limit: int = 20) -> list[OutboxMessage]:
    """Reminders for the desk (due soon, overdue, feedback waiting), newest first."""
    return list(
        session.execute(
            select(OutboxMessage)
            .where(
                col(OutboxMessage.channel) == "panel",
                col(OutboxMessage.recipient) == agency_code,
            )
            .order_by(col(OutboxMessage.id).desc())
            .limit(limit)
        ).scalars()
    )
