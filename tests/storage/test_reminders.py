"""Reminders fire at the right working-day moment, once, recomputed from the database (so a
restart loses none). Time is injected: nothing sleeps. Dates: December 2026 (no holidays)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.calendar import WorkingCalendar
from core.catalog import Catalog
from core.dossier import Action, Actor, MissingItem
from core.flows import NO_ONESTOP
from storage.db import session_scope
from storage.models import Feedback, OutboxMessage
from storage.reminders import queue_reminders
from tests.dossiers import MONDAY, act, citizen_dossier


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in Vietnam (UTC+7) in December 2026."""
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC) - timedelta(hours=7)


def tick(engine: Engine, catalog: Catalog, calendar: WorkingCalendar, now: datetime) -> int:
    with session_scope(engine) as session:
        return queue_reminders(session, catalog, calendar, now, NO_ONESTOP)


def reminders(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        rows = session.execute(
            select(OutboxMessage)
            .where(OutboxMessage.template.startswith("remind."))  # type: ignore[attr-defined]
            .order_by(OutboxMessage.id)  # type: ignore[arg-type]
        )
        return list(rows.scalars())


def _one_missing(catalog: Catalog) -> tuple[MissingItem, ...]:
    procedure = catalog.procedure_by_slug("ho-kinh-doanh")
    return (MissingItem(procedure.components[0].code, "Ảnh bị mờ"),)


def test_a_missing_supplement_is_recalled_after_three_working_days(
    engine: Engine, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    dossier_id, code = citizen_dossier(engine, catalog, calendar, at=local(11, 9))
    missing = _one_missing(catalog)
    # Requested on Friday 11 December at 10:00: three working days later is Wednesday 10:00.
    act(engine, catalog, calendar, dossier_id, Action.REQUEST_SUPPLEMENT, local(11, 10),
        missing=missing)  # fmt: skip
    for moment in (local(14, 10), local(15, 10), local(16, 9, 59)):
        assert tick(engine, catalog, calendar, moment) == 0, moment
    assert tick(engine, catalog, calendar, local(16, 10)) == 1
    assert tick(engine, catalog, calendar, local(16, 11)) == 0  # once
    [reminder] = reminders(engine)
    assert reminder.channel == "telegram" and reminder.recipient == "555"
    assert reminder.template == "remind.supplement_missing" and reminder.values["code"] == code


def test_no_supplement_reminder_once_the_citizen_has_sent_it(
    engine: Engine, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    dossier_id, _ = citizen_dossier(engine, catalog, calendar)
    act(engine, catalog, calendar, dossier_id, Action.REQUEST_SUPPLEMENT, MONDAY,
        missing=_one_missing(catalog))  # fmt: skip
    act(engine, catalog, calendar, dossier_id, Action.RESUBMIT, MONDAY, actor=Actor.CITIZEN)
    assert tick(engine, catalog, calendar, MONDAY + timedelta(days=10)) == 0


def test_the_desk_is_warned_the_day_before_the_due_date_then_every_overdue_working_day(
    engine: Engine, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    dossier_id, code = citizen_dossier(engine, catalog, calendar)
    decision = act(engine, catalog, calendar, dossier_id, Action.ACCEPT, MONDAY)
    act(engine, catalog, calendar, dossier_id, Action.FORWARD, MONDAY)  # in hand, in time
    due = decision.after.appointment_date
    assert due is not None and due.day == 10  # Thursday 10 December
    assert tick(engine, catalog, calendar, local(8, 16)) == 0  # Tuesday: two working days left
    assert tick(engine, catalog, calendar, local(9, 8)) == 1  # Wednesday: last day to extend
    assert tick(engine, catalog, calendar, local(10, 8)) == 0  # same due date: not again
    assert tick(engine, catalog, calendar, local(11, 8)) == 1  # Friday: overdue
    assert tick(engine, catalog, calendar, local(11, 15)) == 0  # once a day
    assert tick(engine, catalog, calendar, local(12, 8)) == 0  # Saturday: nobody at the desk
    assert tick(engine, catalog, calendar, local(14, 8)) == 1  # Monday: still overdue
    kinds = [(r.template, r.channel, r.recipient) for r in reminders(engine)]
    agency = catalog.receiving_agencies(catalog.procedure_by_slug("ho-kinh-doanh"))[0].code
    assert kinds == [
        ("remind.due_soon", "panel", agency),
        ("remind.overdue", "panel", agency),
        ("remind.overdue", "panel", agency),
    ]
    assert all(r.values["code"] == code for r in reminders(engine))


def test_a_finished_dossier_is_never_reminded(
    engine: Engine, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    dossier_id, _ = citizen_dossier(engine, catalog, calendar)
    for action in (Action.ACCEPT, Action.RESULT_READY, Action.RETURN_RESULT):
        act(engine, catalog, calendar, dossier_id, action, MONDAY)
    assert tick(engine, catalog, calendar, local(21, 9)) == 0


def test_unanswered_feedback_is_flagged_after_two_working_days(
    engine: Engine, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    citizen_dossier(engine, catalog, calendar)
    with session_scope(engine) as session:
        # Friday 11 December, 16:00: two working days later is Tuesday 16:00.
        session.add(Feedback(citizen_id=1, channel="telegram", text="Chờ lâu quá",
                             created_at=local(11, 16)))  # fmt: skip
    assert tick(engine, catalog, calendar, local(14, 16)) == 0
    assert tick(engine, catalog, calendar, local(15, 15, 59)) == 0
    assert tick(engine, catalog, calendar, local(15, 16)) == 1
    [reminder] = reminders(engine)
    assert reminder.template == "remind.feedback_unanswered"
    assert (
        reminder.recipient
        == catalog.receiving_agencies(catalog.procedure_by_slug("ho-kinh-doanh"))[0].code
    )  # the desk that handled this citizen


def test_an_accepted_dossier_not_forwarded_within_half_a_working_day_is_recalled(
    engine: Engine, catalog: Catalog, calendar: WorkingCalendar
) -> None:
    # Accepted on Friday 11 December at 14:00 (an afternoon): due in the one-stop system by
    # noon of the next working day, Monday 14 December.
    dossier_id, code = citizen_dossier(engine, catalog, calendar, at=local(11, 9))
    act(engine, catalog, calendar, dossier_id, Action.ACCEPT, local(11, 14))
    for moment in (local(11, 17), local(12, 12), local(14, 11, 59)):
        assert tick(engine, catalog, calendar, moment) == 0, moment
    assert tick(engine, catalog, calendar, local(14, 12)) == 1
    assert tick(engine, catalog, calendar, local(14, 15)) == 0  # once
    [reminder] = reminders(engine)
    assert (reminder.template, reminder.channel) == ("remind.enter_by_hand", "panel")
    assert reminder.values["code"] == code
    # Accepted in a morning: due by 17:00 the same day; forwarded in time, nothing fires.
    late_id, late = citizen_dossier(engine, catalog, calendar, external_id="556", at=local(15, 8))
    act(engine, catalog, calendar, late_id, Action.ACCEPT, local(15, 9))
    on_time_id, _ = citizen_dossier(engine, catalog, calendar, external_id="557", at=local(15, 8))
    act(engine, catalog, calendar, on_time_id, Action.ACCEPT, local(15, 9))
    act(engine, catalog, calendar, on_time_id, Action.FORWARD, local(15, 11))

    def recalled() -> list[str]:
        return [r.values["code"] for r in reminders(engine) if r.template == "remind.enter_by_hand"]

    tick(engine, catalog, calendar, local(15, 16, 59))
    assert recalled() == [code]
    tick(engine, catalog, calendar, local(15, 17))
    tick(engine, catalog, calendar, local(16, 17))
    assert recalled() == [code, late]
