"""What the desk panel reads: queues with counts, the filtered list, one dossier with everything
around it. Every query is scoped to one agency by the caller (the panel passes the officer's)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlmodel import Session, col

from core.calendar import VN_TZ, WorkingCalendar, to_local
from core.channels import Channel
from core.codes import parse_code
from core.dossier import AWAITING_DESK, RUNNING, Status
from core.phone import normalize_phone
from core.zalo_templates import tracking_id_for
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


def _param(name: str) -> Any:
    """A named parameter given at execution (not required at compile time: see `_psycopg`)."""
    return bindparam(name, required=False)


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
        .where(col(Feedback.agency_code) == _param("agency"), col(Feedback.answered_at).is_(None))
        .scalar_subquery()
    )
    return select(
        count_of("new"),
        count_of("supplement"),
        count_of("in_progress"),
        func.count().filter(running, due >= _param("today"), due <= _param("tomorrow")),
        func.count().filter(running, due < _param("today")),
        count_of("result_ready"),
        feedback,
        func.max(col(Dossier.last_activity_at)),
        func.count(),
    ).where(col(Dossier.agency_code) == _param("agency"), status.in_(_values(OPEN_STATUSES)))


COUNTS_QUERY = _counts_query()
_COUNTED = ("new", "supplement", "in_progress", "due_soon", "overdue", "result_ready", "feedback")


def queue_counts(
    session: Session | Connection, agency_code: str, calendar: WorkingCalendar, now: datetime
) -> tuple[dict[str, int], str]:
    """How many dossiers wait in each queue, and a stamp that changes when any of them moves."""
    return _counts_from_row(
        session.execute(COUNTS_QUERY, _counts_params(agency_code, calendar, now)).one()
    )


def _counts_params(agency_code: str, calendar: WorkingCalendar, now: datetime) -> dict[str, Any]:
    today = to_local(now).date()
    return {"agency": agency_code, "today": today, "tomorrow": calendar.add_working_days(today, 1)}


def _counts_from_row(row: Any) -> tuple[dict[str, int], str]:
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


@dataclass(frozen=True)
class _Shape:
    """What decides the page statement's SQL (values are parameters): cached per shape."""

    statuses: tuple[Status, ...]
    due: str  # "", "due_soon", "overdue"
    procedure: bool
    since: bool
    until: bool
    search: str  # "", "code", "phone", "name"


def _shape_and_params(
    agency_code: str, wanted: InboxFilter, calendar: WorkingCalendar, now: datetime
) -> tuple[_Shape, dict[str, Any]]:
    statuses = QUEUE_STATUSES.get(wanted.queue, QUEUE_STATUSES["all"])
    if wanted.status and wanted.status in Status.__members__.values():
        statuses = (Status(wanted.status),)
    today = to_local(now).date()
    params: dict[str, Any] = {
        "agency": agency_code,
        "today": today,
        "tomorrow": calendar.add_working_days(today, 1),
        "offset": (max(wanted.page, 1) - 1) * PAGE_SIZE,
        "procedure": wanted.procedure,
        "since": _start_of(wanted.since) if wanted.since else None,
        "until": _start_of(wanted.until + timedelta(days=1)) if wanted.until else None,
    }
    text, search = wanted.search.strip(), ""
    if text:
        parsed, phone = parse_code(text), normalize_phone(text)
        if parsed is not None:
            search, params["search"] = "code", str(parsed)
        elif phone is not None:
            search, params["search"] = "phone", phone
        else:
            search, params["search"] = "name", f"%{text}%"
            params["official"] = text.upper()
    due = wanted.queue if wanted.queue in ("due_soon", "overdue") else ""
    shape = _Shape(statuses, due, bool(wanted.procedure), bool(wanted.since), bool(wanted.until),
                   search)  # fmt: skip
    return shape, params


@lru_cache(maxsize=512)
def _page_statement(shape: _Shape) -> Any:
    """The page is chosen on the dossier table alone (its indexes), then joined to the
    applicants, so a page costs 26 joins whatever the size of the queue."""
    dossier = col(Dossier.agency_code)
    ids = select(col(Dossier.id), col(Dossier.last_activity_at)).where(dossier == _param("agency"))
    if shape.statuses != QUEUE_STATUSES["all"]:
        ids = ids.where(col(Dossier.status).in_(_values(shape.statuses)))
    due = col(Dossier.appointment_date)
    if shape.due == "due_soon":
        ids = ids.where(due >= _param("today"), due <= _param("tomorrow"))
    elif shape.due == "overdue":
        ids = ids.where(due < _param("today"))
    if shape.procedure:
        ids = ids.where(col(Dossier.procedure_code) == _param("procedure"))
    if shape.since:
        ids = ids.where(col(Dossier.submitted_at) >= _param("since"))
    if shape.until:
        ids = ids.where(col(Dossier.submitted_at) < _param("until"))
    if shape.search:
        ids = ids.outerjoin(Citizen, col(Citizen.id) == col(Dossier.citizen_id))
        if shape.search == "code":
            ids = ids.where(col(Dossier.code) == _param("search"))
        elif shape.search == "phone":
            ids = ids.where(col(Citizen.phone) == _param("search"))
        else:
            ids = ids.where(
                or_(
                    col(Dossier.official_code) == _param("official"),
                    col(Citizen.full_name).ilike(_param("search")),
                )
            )
    chosen = (
        ids.order_by(col(Dossier.last_activity_at).desc(), col(Dossier.id).desc())
        .offset(_param("offset"))
        .limit(PAGE_SIZE + 1)
        .subquery()
    )
    return (
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
    )


def _page_rows(rows: Any) -> tuple[list[InboxRow], bool]:
    rows = list(rows)
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


def inbox_page(
    session: Session | Connection,
    agency_code: str,
    wanted: InboxFilter,
    calendar: WorkingCalendar,
    now: datetime,
) -> tuple[list[InboxRow], bool]:
    """One page of the queue, newest activity first; True when there is a next page."""
    shape, params = _shape_and_params(agency_code, wanted, calendar, now)
    return _page_rows(session.execute(_page_statement(shape), params).all())


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=VN_TZ)


REMINDERS_QUERY = (
    select(col(OutboxMessage.template), col(OutboxMessage.values))
    .where(
        col(OutboxMessage.channel) == Channel.PANEL,
        col(OutboxMessage.recipient) == _param("agency"),
    )
    .order_by(col(OutboxMessage.id).desc())
    .limit(10)
)


@dataclass(frozen=True)
class Reminder:
    template: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Inbox:
    """Everything the inbox page shows, read in one go."""

    counts: dict[str, int]
    stamp: str
    rows: list[InboxRow]
    more: bool
    reminders: list[Reminder]


def read_inbox(
    session: Session | Connection,
    agency_code: str,
    wanted: InboxFilter,
    calendar: WorkingCalendar,
    now: datetime,
) -> Inbox:
    counts, stamp = queue_counts(session, agency_code, calendar, now)
    rows, more = inbox_page(session, agency_code, wanted, calendar, now)
    reminders = [Reminder(*r) for r in session.execute(REMINDERS_QUERY, {"agency": agency_code})]
    return Inbox(counts, stamp, rows, more, reminders)


@lru_cache(maxsize=512)
def _psycopg(statement: Any) -> tuple[str, dict[str, Any]]:
    """A statement as psycopg SQL (IN lists spelled out) and its constant parameters."""
    compiled = statement.compile(
        dialect=postgresql.dialect(paramstyle="pyformat"),
        compile_kwargs={"render_postcompile": True},
    )
    constants = compiled.construct_params(_check=False)  # the values given later are left out
    return str(compiled), {k: v for k, v in constants.items() if v is not None}


async def _fetch(connection: Any, statement: Any, params: dict[str, Any]) -> list[Any]:
    sql, constants = _psycopg(statement)
    cursor = await connection.execute(sql, {**constants, **params}, prepare=True)
    return list(await cursor.fetchall())


async def read_inbox_async(
    pool: Any,
    agency_code: str,
    wanted: InboxFilter,
    calendar: WorkingCalendar,
    now: datetime,
) -> Inbox:
    """`read_inbox` over a psycopg async pool (PostgreSQL): prepared statements, no ORM, no
    thread hop, the three reads side by side — the inbox is the page a desk reloads all day."""
    shape, params = _shape_and_params(agency_code, wanted, calendar, now)

    async def fetch(statement: Any, values: dict[str, Any]) -> list[Any]:
        async with pool.connection() as connection:
            return await _fetch(connection, statement, values)

    [row], page, reminders = await asyncio.gather(
        fetch(COUNTS_QUERY, _counts_params(agency_code, calendar, now)),
        fetch(_page_statement(shape), params),
        fetch(REMINDERS_QUERY, {"agency": agency_code}),
    )
    counts, stamp = _counts_from_row(row)
    rows, more = _page_rows(page)
    return Inbox(counts, stamp, rows, more, [Reminder(*r) for r in reminders])


@dataclass
class DossierView:
    dossier: Dossier
    citizen: Citizen | None
    files: dict[str, list[DocumentFile]] = field(default_factory=dict)
    events: list[tuple[StatusEvent, str]] = field(default_factory=list)  # event, officer name
    thread: list[tuple[ThreadMessage, str]] = field(default_factory=list)
    # How each reply to the citizen went out: thread message id → (channel, outbox state) of the
    # last leg (a chat message rerouted to a Zalo template message or an SMS shows that leg).
    delivery: dict[int, tuple[str, str]] = field(default_factory=dict)


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
    view.delivery = _reply_deliveries(session, dossier.id, [m.id for m, _ in view.thread if m.id])
    return view


def _reply_deliveries(
    session: Session, dossier_id: int, message_ids: list[int]
) -> dict[int, tuple[str, str]]:
    rows = {
        key: (channel, state)
        for key, channel, state in session.execute(
            select(
                col(OutboxMessage.idempotency_key),
                col(OutboxMessage.channel),
                col(OutboxMessage.state),
            ).where(col(OutboxMessage.dossier_id) == dossier_id)
        ).all()
    }
    found = {}
    for message_id in message_ids:
        key = f"reply:{message_id}"  # storage.desk.reply_to_citizen
        leg = rows.get(key)
        while leg is not None and leg[1] == "rerouted":  # storage.outbox.reroute's keys
            sms, template = f"{key}:sms", tracking_id_for(f"{key}:zalo_template")
            key = sms if sms in rows else template
            leg = rows.get(key)
        if leg is not None:
            found[message_id] = leg
    return found
