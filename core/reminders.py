"""When the desk and the citizen are reminded: rules over moments, counted in working days.

The moments are recomputed from the database on every tick (storage/reminders.py), so a restart
or a lost Redis loses no reminder; each reminder has a key that makes it fire once.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from enum import StrEnum

from core.calendar import WorkingCalendar, to_local

SUPPLEMENT_REMINDER_DAYS = 3  # a supplement still missing after 3 working days: remind the citizen
FEEDBACK_REMINDER_DAYS = 2  # feedback must be answered in 3 working days: warn the desk after 2


class Deadline(StrEnum):
    DUE_SOON = "due_soon"  # due today or on the next working day: last chance to extend
    OVERDUE = "overdue"


def after_working_days(calendar: WorkingCalendar, start: datetime, days: int) -> datetime:
    """The same local time of day, `days` working days after `start` (weekends skipped)."""
    local = to_local(start)
    day = calendar.add_working_days(local.date(), days)
    return local + timedelta(days=(day - local.date()).days)


def deadline_state(calendar: WorkingCalendar, appointment: date, now: datetime) -> Deadline | None:
    if calendar.is_overdue(appointment, now):
        return Deadline.OVERDUE
    if calendar.is_due_soon(appointment, now):
        return Deadline.DUE_SOON
    return None


def deadline_reminder_key(
    dossier_id: int, appointment: date, state: Deadline, now: datetime
) -> str:
    """Due-soon fires once per appointment date; overdue once per working day until it ends."""
    if state is Deadline.DUE_SOON:
        return f"remind:due_soon:{dossier_id}:{appointment.isoformat()}"
    return f"remind:overdue:{dossier_id}:{to_local(now).date().isoformat()}"


def supplement_reminder_due(
    calendar: WorkingCalendar, requested_at: datetime, now: datetime
) -> bool:
    return now >= after_working_days(calendar, requested_at, SUPPLEMENT_REMINDER_DAYS)


def feedback_reminder_due(calendar: WorkingCalendar, received_at: datetime, now: datetime) -> bool:
    return now >= after_working_days(calendar, received_at, FEEDBACK_REMINDER_DAYS)


MORNING_ENDS = time(12, 0)  # the counter's sessions: morning until noon, afternoon until 17:00
AFTERNOON_ENDS = time(17, 0)


def forward_due_at(calendar: WorkingCalendar, accepted_at: datetime) -> datetime:
    """When an accepted dossier must be in the one-stop system: within half a working day
    (Cà Mau Art. 12.4), read as the end of the next half-day session — accepted in a working
    morning, by 17:00 that day; otherwise by noon of the next working day."""
    local = to_local(accepted_at)
    day = local.date()
    if calendar.is_working_day(day) and local.time() < MORNING_ENDS:
        return datetime.combine(day, AFTERNOON_ENDS, tzinfo=local.tzinfo)
    return datetime.combine(calendar.next_working_day(day), MORNING_ENDS, tzinfo=local.tzinfo)
