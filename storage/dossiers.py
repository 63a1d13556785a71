"""Dossier persistence: codes, submission, transitions (recorded with their effects by
storage.flows), lookups.

Every function takes the session it works in, so the status change, the audit entry and what it
causes commit together or not at all (transactional outbox).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, exc, func, or_, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col

from core.calendar import WorkingCalendar, to_local
from core.catalog import Agency as Agency_
from core.catalog import Catalog, Text
from core.catalog import Procedure as Procedure_
from core.codes import format_code, parse_code
from core.conversation import SupplementRequest
from core.dossier import Action, Actor, Command, Decision, DossierFacts, Status, decide
from core.flows import NO_ONESTOP, FlowRules
from core.lookup import PublicStatus, timeline
from storage.flows import record_transition
from storage.models import (
    Agency,
    CodeCounter,
    Dossier,
    Procedure,
    StatusEvent,
)


def sync_catalog(session: Session, catalog: Catalog) -> None:
    """Upsert agencies and procedures so dossiers can reference them; never deletes history."""
    for agency in catalog.agencies.values():
        session.merge(
            Agency(
                code=agency.code,
                name_vi=agency.name.vi,
                name_en=agency.name.en,
                kind=agency.kind,
                parent_code=agency.parent,
            )
        )
    for procedure in catalog.procedures.values():
        session.merge(
            Procedure(
                code=procedure.code,
                slug=procedure.slug,
                name_vi=procedure.name.vi,
                name_en=procedure.name.en,
                agency_kind=procedure.agency_kind,
                processing_days=procedure.processing_days,
                same_day=procedure.same_day,
                fee_vnd=procedure.fee_vnd,
            )
        )
    session.flush()


def next_code(session: Session, agency_code: str, day: date) -> str:
    """Issue the next dossier code of this agency for this day, atomically (one upsert)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = CodeCounter.__table__  # type: ignore[attr-defined]
    statement = (
        insert(table)
        .values(agency_code=agency_code, day=day, last_sequence=1)
        .on_conflict_do_update(
            index_elements=["agency_code", "day"],
            set_={"last_sequence": table.c.last_sequence + 1},
        )
        .returning(table.c.last_sequence)
    )
    sequence = session.execute(statement).scalar_one()
    return format_code(agency_code, day, sequence)


def facts_of(dossier: Dossier) -> DossierFacts:
    return DossierFacts(
        code=dossier.code,
        status=Status(dossier.status),
        received_at=dossier.received_at,
        appointment_date=dossier.appointment_date,
        extended=dossier.extended,
    )


def submit_dossier(
    session: Session,
    *,
    catalog: Catalog,
    calendar: WorkingCalendar,
    procedure_code: str,
    agency_code: str,
    citizen_id: int | None,
    channel: str,
    at: datetime,
    rules: FlowRules = NO_ONESTOP,
) -> tuple[Dossier, Decision]:
    """A draft becomes a dossier: it gets its code (under the receiving desk) and a first event."""
    procedure = catalog.procedure(procedure_code)
    catalog.agency(agency_code)
    code = next_code(session, agency_code, to_local(at).date())
    draft = DossierFacts(code=code, status=Status.DRAFT)
    decision = decide(
        draft,
        Command(Action.SUBMIT, Actor.CITIZEN, at),
        procedure=procedure,
        calendar=calendar,
    )
    dossier = Dossier(
        code=code,
        procedure_code=procedure_code,
        agency_code=agency_code,
        citizen_id=citizen_id,
        channel=channel,
        status=decision.after.status.value,
        submitted_at=at,
        last_activity_at=at,
    )
    session.add(dossier)
    session.flush()
    record_transition(session, dossier, decision, rules=rules, staff_user_id=None)
    return dossier, decision


def apply_command(
    session: Session,
    dossier_id: int,
    command: Command,
    *,
    catalog: Catalog,
    calendar: WorkingCalendar,
    rules: FlowRules,
    staff_user_id: int | None = None,
) -> Decision:
    """Apply a command under a row lock, with its audit entry and effects (storage.flows);
    raises core.dossier.DossierRuleError when refused."""
    dossier = session.execute(
        select(Dossier).where(Dossier.id == dossier_id).with_for_update()  # type: ignore[arg-type]
    ).scalar_one()
    procedure = catalog.procedure(dossier.procedure_code)
    decision = decide(facts_of(dossier), command, procedure=procedure, calendar=calendar)
    after = decision.after
    dossier.status = after.status.value
    dossier.received_at = after.received_at
    dossier.appointment_date = after.appointment_date
    dossier.extended = after.extended
    dossier.last_activity_at = command.at
    session.add(dossier)
    record_transition(session, dossier, decision, rules=rules, staff_user_id=staff_user_id)
    return decision


def feedback_agency(session: Session, catalog: Catalog, citizen_id: int) -> str:
    """The desk that last handled this citizen, else the province's root agency."""
    agency = session.execute(
        select(col(Dossier.agency_code))
        .where(col(Dossier.citizen_id) == citizen_id)
        .order_by(Dossier.last_activity_at.desc())  # type: ignore[attr-defined]
        .limit(1)
    ).scalar_one_or_none()
    return agency or catalog.province.code


def find_by_code(session: Session, text: str) -> Dossier | None:
    """The dossier a person means by `text` (our code or the one-stop system's), or None."""
    parsed = parse_code(text)
    if parsed is not None:
        found = session.execute(
            select(Dossier).where(Dossier.code == str(parsed))  # type: ignore[arg-type]
        ).scalar_one_or_none()
        if found is not None:
            return found
    cleaned = text.strip().upper()
    if not cleaned:
        return None
    return session.execute(
        select(Dossier).where(Dossier.official_code == cleaned)  # type: ignore[arg-type]
    ).scalar_one_or_none()


def count_dossiers(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(Dossier)).scalar_one())


_DOSSIER: Any = Dossier.__table__  # type: ignore[attr-defined]
_PUBLIC_COLUMNS = [
    _DOSSIER.c[name]
    for name in (
        "code",
        "procedure_code",
        "agency_code",
        "status",
        "submitted_at",
        "appointment_date",
        "official_code",  # the one-stop system's code: public, like ours
    )
]


# One query for the dossier a person names: our code, or the one-stop system's official code.
# Both columns are unique, so at most two rows; the first is taken.
PUBLIC_STATUS_QUERY = select(*_PUBLIC_COLUMNS).where(
    or_(
        _DOSSIER.c.code == bindparam("code"),
        _DOSSIER.c.official_code == bindparam("official"),
    )
)


def public_status_params(text: str) -> dict[str, str] | None:
    """Parameters of PUBLIC_STATUS_QUERY for what was typed; None when nothing can match."""
    parsed = parse_code(text)
    official = text.strip().upper()[:64]
    if parsed is None and not official:
        return None
    return {"code": str(parsed) if parsed else "", "official": official}


def public_status_from_row(row: Any, catalog: Catalog) -> PublicStatus:
    """Only public columns go in, so only public facts can come out."""
    code, procedure_code, agency_code, status, submitted_at, appointment_date, official = row
    return PublicStatus(
        code=code,
        procedure=_name(catalog.procedures, procedure_code),
        agency=_name(catalog.agencies, agency_code),
        status=Status(status),
        submitted_on=to_local(submitted_at).date(),
        appointment_date=appointment_date,
        official_code=official,
    )


def lookup_public_status(
    session: Session | Connection, text: str, catalog: Catalog
) -> PublicStatus | None:
    """Status by code for anyone: reads only the public columns, never personal data (no
    timeline: the chats and SMS answer with the status; the lookup page adds the steps)."""
    params = public_status_params(text)
    row = session.execute(PUBLIC_STATUS_QUERY, params).first() if params is not None else None
    return public_status_from_row(row, catalog) if row is not None else None


# The same query for the sqlite3 driver itself, and SQLAlchemy's own conversion of each column
# (UTC datetimes, dates), both prepared once: the lookup page pays no Connection, compiled-cache
# or Result around its one query (bench/lookup.py).
_SQLITE = sqlite.dialect(paramstyle="named")
_PUBLIC_STATUS_SQLITE = str(PUBLIC_STATUS_QUERY.compile(dialect=_SQLITE))
_PUBLIC_COLUMN_CONVERSIONS = [
    column.type.dialect_impl(_SQLITE).result_processor(_SQLITE, None) for column in _PUBLIC_COLUMNS
]


def lookup_public_status_sqlite(engine: Engine, text: str, catalog: Catalog) -> PublicStatus | None:
    """`lookup_public_status` on a SQLite engine's driver connection, for the hot lookup page,
    with its timeline (a second small query, only when the dossier exists).

    sqlite3 keeps the statements prepared per connection. Every row is fetched, so the statement
    ends and no read snapshot outlives the call: the next lookup sees the latest status.
    """
    params = public_status_params(text)
    if params is None:
        return None
    try:
        connection = engine.raw_connection()
        try:
            driver: sqlite3.Connection = connection.driver_connection  # type: ignore[assignment]
            rows = driver.execute(_PUBLIC_STATUS_SQLITE, params).fetchall()
            if not rows:
                return None
            row = [
                value if convert is None else convert(value)
                for convert, value in zip(_PUBLIC_COLUMN_CONVERSIONS, rows[0], strict=True)
            ]
            status = public_status_from_row(row, catalog)
            params = {**_STEPS_SQLITE_CONSTANTS, **steps_params(status)}
            changes = driver.execute(_PUBLIC_STEPS_SQLITE, params).fetchall()
        finally:
            connection.close()
    except sqlite3.Error as error:  # the error layer knows SQLAlchemy's errors (503 when busy)
        raise exc.DBAPIError.instance(
            _PUBLIC_STATUS_SQLITE, params, error, sqlite3.Error
        ) from error
    return with_steps(status, [(to, _AT_CONVERSION(at)) for to, at in changes])


_EVENT: Any = StatusEvent.__table__  # type: ignore[attr-defined]
MAX_STEPS = 64  # a dossier changes status a handful of times; the read stays bounded anyway
# The timeline's facts: which status a dossier reached and when — never a note, a reason or who.
# (An event that keeps the status, a transfer to another desk, is no step.)
PUBLIC_STEPS_QUERY = (
    select(_EVENT.c.to_status, _EVENT.c.at)
    .join(_DOSSIER, _DOSSIER.c.id == _EVENT.c.dossier_id)
    .where(_DOSSIER.c.code == bindparam("code"), _EVENT.c.from_status != _EVENT.c.to_status)
    .order_by(_EVENT.c.at, _EVENT.c.id)
    .limit(bindparam("most"))
)
_STEPS_COMPILED = PUBLIC_STEPS_QUERY.compile(dialect=_SQLITE)
_PUBLIC_STEPS_SQLITE = str(_STEPS_COMPILED)
# The constants SQLite's compiler adds as parameters (its `OFFSET 0`).
_STEPS_SQLITE_CONSTANTS = {k: v for k, v in _STEPS_COMPILED.params.items() if v is not None}
_AT_CONVERSION = _EVENT.c.at.type.dialect_impl(_SQLITE).result_processor(_SQLITE, None) or (
    lambda value: value
)


def steps_params(status: PublicStatus) -> dict[str, Any]:
    return {"code": status.code, "most": MAX_STEPS}


def with_steps(status: PublicStatus, changes: Iterable[Sequence[Any]]) -> PublicStatus:
    """`status` with its timeline, from (status reached, UTC moment) rows of PUBLIC_STEPS_QUERY."""
    days = [(Status(to), to_local(at).date()) for to, at in changes]
    return replace(status, steps=timeline(status.status, status.submitted_on, days))


def _name(entries: Mapping[str, Agency_ | Procedure_], code: str) -> Text:
    """A catalog entry's name; the bare code when the catalog no longer has it."""
    entry = entries.get(code)
    return entry.name if entry is not None else Text(code, code)


def citizen_public_statuses(
    session: Session, citizen_id: int, catalog: Catalog, limit: int = 20
) -> list[PublicStatus]:
    """A citizen's own dossiers ("my dossiers"), newest first."""
    rows = session.execute(
        select(*_PUBLIC_COLUMNS)
        .where(_DOSSIER.c.citizen_id == citizen_id)
        .order_by(_DOSSIER.c.submitted_at.desc(), _DOSSIER.c.id.desc())
        .limit(limit)
    )
    return [public_status_from_row(row, catalog) for row in rows]


def open_supplement(session: Session, citizen_id: int) -> SupplementRequest | None:
    """The citizen's latest dossier waiting for a supplement, with what the desk asked for."""
    dossier = (
        session.execute(
            select(Dossier)
            .where(
                Dossier.citizen_id == citizen_id,  # type: ignore[arg-type]
                Dossier.status == Status.SUPPLEMENT_REQUESTED.value,  # type: ignore[arg-type]
            )
            .order_by(Dossier.last_activity_at.desc())  # type: ignore[attr-defined]
        )
        .scalars()
        .first()
    )
    if dossier is None:
        return None
    request = (
        session.execute(
            select(StatusEvent)
            .where(
                StatusEvent.dossier_id == dossier.id,
                StatusEvent.action == Action.REQUEST_SUPPLEMENT.value,  # type: ignore[arg-type]
            )
            .order_by(StatusEvent.id.desc())  # type: ignore[union-attr]
        )
        .scalars()
        .first()
    )
    items = tuple(
        (item["code"], item["reason"])
        for item in (request.details if request else {}).get("missing", [])
    )
    return SupplementRequest(code=dossier.code, procedure=dossier.procedure_code, items=items)
