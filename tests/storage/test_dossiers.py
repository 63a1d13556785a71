"""Dossier storage on SQLite and PostgreSQL: codes, transitions, audit trail, outbox, lookups."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from threading import Barrier

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.calendar import WorkingCalendar
from core.catalog import Catalog
from core.codes import parse_code
from core.dossier import Action, Actor, Command, DossierRuleError, MissingItem, Status
from core.flows import NO_ONESTOP, FlowRules, ForwardOn
from storage.db import make_engine, session_scope
from storage.dossiers import apply_command, find_by_code, submit_dossier
from storage.inbound import first_delivery
from storage.models import (
    ChannelIdentity,
    Citizen,
    Dossier,
    OutboxMessage,
    StatusEvent,
)

# 10:00 local on Monday 7 December 2026.
MONDAY = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def _procedure_and_agency(catalog: Catalog, slug: str = "ho-kinh-doanh") -> tuple[str, str]:
    procedure = next(p for p in catalog.procedures.values() if p.slug == slug)
    return procedure.code, catalog.receiving_agencies(procedure)[0].code


def _citizen_on_telegram(session: Session) -> int:
    citizen = Citizen(full_name="Nguyễn Văn An", phone="+84912345678")
    session.add(citizen)
    session.flush()
    assert citizen.id is not None
    chat_id = str(citizen.id + 554)  # the first citizen chats as 555
    session.add(ChannelIdentity(citizen_id=citizen.id, channel="telegram", external_id=chat_id))
    session.flush()
    return citizen.id


def _submit(
    engine: Engine,
    catalog: Catalog,
    calendar: WorkingCalendar,
    *,
    at: datetime = MONDAY,
    slug: str = "ho-kinh-doanh",
    with_citizen: bool = True,
) -> Dossier:
    procedure_code, agency_code = _procedure_and_agency(catalog, slug)
    with session_scope(engine) as session:
        citizen_id = _citizen_on_telegram(session) if with_citizen else None
        dossier, _ = submit_dossier(
            session,
            catalog=catalog,
            calendar=calendar,
            procedure_code=procedure_code,
            agency_code=agency_code,
            citizen_id=citizen_id,
            channel="telegram",
            at=at,
        )
    return dossier


def test_codes_follow_the_national_format_and_count_per_agency_per_day(
    engine: Engine, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    first = _submit(engine, catalog, calendar)
    second = _submit(engine, catalog, calendar)
    _, agency = _procedure_and_agency(catalog)
    assert first.code == f"{agency}-261207-0001"
    assert second.code == f"{agency}-261207-0002"
    # Another receiving agency has its own sequence.
    other = _submit(engine, catalog, calendar, slug="ly-lich-tu-phap")
    assert other.code.endswith("-261207-0001") and not other.code.startswith(agency)
    # The next local day starts again at 1 — 17:30 UTC Monday is already Tuesday in Vietnam.
    tuesday = _submit(engine, catalog, calendar, at=datetime(2026, 12, 7, 17, 30, tzinfo=UTC))
    assert tuesday.code == f"{agency}-261208-0001"


def _parallel_submissions(
    database_url: str, catalog: Catalog, calendar: WorkingCalendar, count: int
) -> list[str]:
    """`count` submitters at once, each with its own engine as separate processes (web and rq
    workers) have: one engine's SQLite writer lock would serialise them and hide a race."""
    engines = [make_engine(database_url) for _ in range(count)]
    start = Barrier(count)

    def submit_one(engine: Engine) -> str:
        start.wait()
        return _submit(engine, catalog, calendar, with_citizen=False).code

    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(submit_one, engines))
    finally:
        for engine in engines:
            engine.dispose()


def test_twenty_parallel_submitters_on_postgresql_never_share_a_code(
    postgres_url: str, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    codes = _parallel_submissions(postgres_url, catalog, calendar, 20)
    assert len(set(codes)) == 20
    sequences = sorted(parse_code(code).sequence for code in codes)  # type: ignore[union-attr]
    assert sequences == list(range(1, 21))


def test_parallel_submitters_on_sqlite_never_share_a_code(
    sqlite_url: str, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    codes = _parallel_submissions(sqlite_url, catalog, calendar, 8)
    sequences = sorted(parse_code(code).sequence for code in codes)  # type: ignore[union-attr]
    assert sequences == list(range(1, 9))


def test_transition_commits_status_audit_and_notice_together(
    engine: Engine, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    dossier = _submit(engine, catalog, calendar)
    assert dossier.id is not None
    with session_scope(engine) as session:
        apply_command(
            session,
            dossier.id,
            Command(Action.ACCEPT, Actor.DESK_OFFICER, MONDAY + timedelta(hours=1)),
            catalog=catalog,
            calendar=calendar,
            rules=NO_ONESTOP,
        )
    with Session(engine) as session:
        stored = session.get(Dossier, dossier.id)
        assert stored is not None
        assert stored.status == Status.ACCEPTED
        assert stored.appointment_date == date(2026, 12, 10)  # 3 working days
        assert stored.received_at == MONDAY + timedelta(hours=1)  # aware UTC on both databases
        events = (
            session.execute(
                select(StatusEvent)
                .where(StatusEvent.dossier_id == dossier.id)
                .order_by(StatusEvent.id)  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
        assert [(e.from_status, e.to_status) for e in events] == [
            ("draft", "submitted"),
            ("submitted", "accepted"),
        ]
        assert "10/12/2026" in events[1].note
        notices = (
            session.execute(
                select(OutboxMessage).where(OutboxMessage.dossier_id == dossier.id)  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
        # The submission was answered in the chat; only the desk's step is pushed.
        assert [(n.channel, n.recipient, n.template) for n in notices] == [
            ("telegram", "555", "notice.accepted"),
        ]


def test_refused_transition_changes_nothing(
    engine: Engine, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    dossier = _submit(engine, catalog, calendar)
    assert dossier.id is not None
    with pytest.raises(DossierRuleError), session_scope(engine) as session:
        apply_command(
            session,
            dossier.id,
            Command(Action.RESULT_READY, Actor.DESK_OFFICER, MONDAY),
            catalog=catalog,
            calendar=calendar,
            rules=NO_ONESTOP,
        )
    with pytest.raises(DossierRuleError), session_scope(engine) as session:
        apply_command(
            session,
            dossier.id,
            Command(Action.REQUEST_SUPPLEMENT, Actor.DESK_OFFICER, MONDAY, missing=()),
            catalog=catalog,
            calendar=calendar,
            rules=NO_ONESTOP,
        )
    with Session(engine) as session:
        assert session.get(Dossier, dossier.id).status == Status.SUBMITTED  # type: ignore[union-attr]
        assert len(session.execute(select(StatusEvent)).scalars().all()) == 1
        assert len(session.execute(select(OutboxMessage)).scalars().all()) == 0


def test_supplement_round_keeps_the_code(
    engine: Engine, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    dossier = _submit(engine, catalog, calendar)
    assert dossier.id is not None
    procedure = catalog.procedure(dossier.procedure_code)
    steps = [
        Command(
            Action.REQUEST_SUPPLEMENT,
            Actor.DESK_OFFICER,
            MONDAY,
            missing=(MissingItem(procedure.components[0].code, "Ảnh bị mờ"),),
        ),
        Command(Action.RESUBMIT, Actor.CITIZEN, MONDAY + timedelta(days=1)),
        Command(Action.ACCEPT, Actor.DESK_OFFICER, MONDAY + timedelta(days=1)),
    ]
    for step in steps:
        with session_scope(engine) as session:
            apply_command(
                session, dossier.id, step, catalog=catalog, calendar=calendar, rules=NO_ONESTOP
            )
    with Session(engine) as session:
        stored = session.get(Dossier, dossier.id)
        assert stored is not None and stored.code == dossier.code
        assert stored.appointment_date == date(2026, 12, 11)  # counted from the resubmission


def test_find_by_code_accepts_what_people_type(
    engine: Engine, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    dossier = _submit(engine, catalog, calendar)
    sloppy = dossier.code.lower().replace(".", " ").replace("-0001", "-1")
    with Session(engine) as session:
        found = find_by_code(session, sloppy)
        assert found is not None and found.id == dossier.id
        assert find_by_code(session, dossier.code.replace("0001", "0099")) is None
        assert find_by_code(session, "không phải mã") is None
        stored = session.get(Dossier, dossier.id)
        assert stored is not None
        stored.official_code = "H53.99-261207-0042"
        session.add(stored)
        session.commit()
        by_official = find_by_code(session, " h53.99-261207-0042 ")
        assert by_official is not None and by_official.id == dossier.id


def test_each_webhook_delivery_is_handled_once(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert first_delivery(session, "telegram", "1001")
        assert not first_delivery(session, "telegram", "1001")
        assert first_delivery(session, "sms", "1001")  # ids are per channel


def test_a_transition_and_its_onestop_effect_commit_together_or_not_at_all(
    engine: Engine, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    dossier = _submit(engine, catalog, calendar)
    assert dossier.id is not None
    rules = FlowRules({dossier.agency_code: ForwardOn.ACCEPT})
    accept = Command(Action.ACCEPT, Actor.DESK_OFFICER, MONDAY + timedelta(hours=1))
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        apply_command(session, dossier.id, accept, catalog=catalog, calendar=calendar, rules=rules)
        raise RuntimeError("the process died before the commit")
    with Session(engine) as session:
        assert session.execute(select(OutboxMessage)).scalars().all() == []
        assert session.get(Dossier, dossier.id).onestop_queued_at is None  # type: ignore[union-attr]
    with session_scope(engine) as session:
        apply_command(session, dossier.id, accept, catalog=catalog, calendar=calendar, rules=rules)
    forward = Command(Action.FORWARD, Actor.DESK_OFFICER, MONDAY + timedelta(hours=2))
    with session_scope(engine) as session:
        apply_command(session, dossier.id, forward, catalog=catalog, calendar=calendar, rules=rules)
    with Session(engine) as session:
        rows = session.execute(
            select(OutboxMessage).where(OutboxMessage.channel == "onestop")  # type: ignore[arg-type]
            .order_by(OutboxMessage.id)  # type: ignore[arg-type]
        ).scalars().all()  # fmt: skip
        assert [(r.template, r.recipient, r.values["step"]["status"]) for r in rows] == [
            ("onestop.create", dossier.agency_code, 2),
            ("onestop.update", dossier.agency_code, 4),
        ]
        assert len({r.idempotency_key for r in rows}) == 2
        stored = session.get(Dossier, dossier.id)
        assert stored is not None and stored.onestop_queued_at == MONDAY + timedelta(hours=1)
