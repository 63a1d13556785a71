"""Working days in Vietnam: deadlines count them, not calendar days (Tây Ninh Art. 11–12).

Saturday, Sunday and public holidays (the `holidays` package, country VN, which knows Tết and the
observed/swapped days) do not count; each year's decided days off and make-up working days come
from an override file, because the Prime Minister fixes them yearly. Time zone: Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
CUTOFF = time(15, 0)  # received after 15:00 → counts from the next working day (Art. 11.2)


def to_local(moment: datetime) -> datetime:
    """An aware moment in Vietnam's time; naive datetimes are a bug, so they are refused."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (stored in UTC)")
    return moment.astimezone(VN_TZ)


LIBRARY_YEARS = range(1901, 2101)  # the years the library knows Vietnam's (lunar) holidays for


@lru_cache(maxsize=256)
def _library_year(year: int) -> tuple[frozenset[date], frozenset[date]]:
    """(holidays, weekend days made working) known to the library for one year."""
    if year not in LIBRARY_YEARS:  # it knows none there: not asked, year after year
        return frozenset(), frozenset()
    calendar = holidays.country_holidays("VN", years=year)
    workdays = frozenset(d for d in calendar.weekend_workdays if d.year == year)
    return frozenset(calendar.keys()), workdays


@dataclass(frozen=True)
class WorkingCalendar:
    days_off: frozenset[date] = field(default_factory=frozenset)
    working_days: frozenset[date] = field(default_factory=frozenset)

    def is_working_day(self, day: date) -> bool:
        if day in self.working_days:
            return True
        if day in self.days_off:
            return False
        library_off, library_work = _library_year(day.year)
        if day in library_work:
            return True
        return day.weekday() < 5 and day not in library_off

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after `day`."""
        day += timedelta(days=1)
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def add_working_days(self, day: date, n: int) -> date:
        if n < 0:
            raise ValueError("n must be ≥ 0")
        for _ in range(n):
            day = self.next_working_day(day)
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; negative when end is before start.

        Counted per year, not per day (a date years away costs a few steps): the Mondays to
        Fridays in the span, corrected by each special day (holiday, day off, make-up working
        day) that falls in it."""
        if end < start:
            return -self.working_days_between(end, start)
        count = _weekdays_through(end) - _weekdays_through(start)
        special = {d for d in self.days_off | self.working_days if start < d <= end}
        for year in range(start.year, end.year + 1):
            if year in LIBRARY_YEARS:
                library_off, library_work = _library_year(year)
                special.update(d for d in library_off | library_work if start < d <= end)
        for day in special:
            count += self.is_working_day(day) - (day.weekday() < 5)
        return count

    def reception_day(self, received_at: datetime) -> date:
        """The day the clock starts: today if a working day before 15:00, else the next one."""
        local = to_local(received_at)
        if self.is_working_day(local.date()) and local.time() < CUTOFF:
            return local.date()
        return self.next_working_day(local.date())

    def appointment_date(
        self, received_at: datetime, processing_days: int, same_day: bool = False
    ) -> date:
        """Ngày hẹn trả: reception day + N working days (same-day procedures: the reception day)."""
        start = self.reception_day(received_at)
        return start if same_day else self.add_working_days(start, processing_days)

    def working_days_left(self, appointment: date, now: datetime) -> int:
        return self.working_days_between(to_local(now).date(), appointment)

    def is_overdue(self, appointment: date, now: datetime) -> bool:
        return to_local(now).date() > appointment

    def is_due_soon(self, appointment: date, now: datetime) -> bool:
        """Not overdue, and due today or on the next working day."""
        today = to_local(now).date()
        return today <= appointment <= self.add_working_days(today, 1)

    def can_extend(self, appointment: date, now: datetime) -> bool:
        """The apology with a new date must come at least one working day before the due date."""
        return self.add_working_days(to_local(now).date(), 1) <= appointment


def _weekdays_through(day: date) -> int:
    """Mondays to Fridays from a fixed Monday (day 1 of the proleptic calendar) through `day`."""
    weeks, rest = divmod(day.toordinal(), 7)  # ordinal 1 (0001-01-01) is a Monday
    return weeks * 5 + min(rest, 5)


def load_calendar(path: Path | None) -> WorkingCalendar:
    """The library calendar plus the override file (`days_off`, `working_days`), if any."""
    if path is None or not path.exists():
        return WorkingCalendar()
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    unknown = set(data) - {"days_off", "working_days"}
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; use days_off, working_days")
    sets: dict[str, frozenset[date]] = {}
    for key in ("days_off", "working_days"):
        values = data.get(key, [])
        if not isinstance(values, list):
            raise ValueError(f"{path}: {key} must be a list of dates")
        for index, value in enumerate(values):
            if not isinstance(value, date) or isinstance(value, datetime):
                raise ValueError(f"{path}: {key}[{index}] = {value!r} is not a date (YYYY-MM-DD)")
        sets[key] = frozenset(values)
    both = sets["days_off"] & sets["working_days"]
    if both:
        raise ValueError(f"{path}: {sorted(both)} listed both as day off and working day")
    return WorkingCalendar(days_off=sets["days_off"], working_days=sets["working_days"])
