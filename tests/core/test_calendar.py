"""Working-day calendar: weekends, Tết, yearly overrides, the 15:00 cut-off, same-day procedures."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from core.calendar import VN_TZ, WorkingCalendar, load_calendar

CAL = WorkingCalendar()


def at(y: int, m: int, d: int, hh: int = 9, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=VN_TZ)


def test_weekends_do_not_count() -> None:
    # Thursday 10/12/2026 + 3 working days → Tuesday 15/12 (Sat, Sun skipped).
    assert CAL.add_working_days(date(2026, 12, 10), 3) == date(2026, 12, 15)
    assert not CAL.is_working_day(date(2026, 12, 12))
    assert CAL.working_days_between(date(2026, 12, 10), date(2026, 12, 15)) == 3


def test_tet_2027_is_skipped() -> None:
    # Tết 2027: 4–10 February are off. Received Wednesday 3/2 10:00, 3 working days.
    assert not CAL.is_working_day(date(2027, 2, 8))
    assert CAL.appointment_date(at(2027, 2, 3, 10), 3) == date(2027, 2, 15)


def test_library_holidays_include_culture_day() -> None:
    # Ngày Văn hóa Việt Nam, 24/11, a day off from 2026 on (the library's data).
    assert not CAL.is_working_day(date(2026, 11, 24))


def test_library_swap_day_is_a_working_saturday() -> None:
    assert CAL.is_working_day(date(2026, 8, 22))
    assert not CAL.is_working_day(date(2026, 8, 31))


def test_override_file_adds_a_make_up_saturday_and_a_day_off(tmp_path: Path) -> None:
    path = tmp_path / "overrides.toml"
    path.write_text("days_off = [2026-12-15]\nworking_days = [2026-12-12]\n")
    calendar = load_calendar(path)
    assert calendar.is_working_day(date(2026, 12, 12))  # a Saturday
    assert not calendar.is_working_day(date(2026, 12, 15))  # a Tuesday
    # Friday 11/12 + 2 → Sat 12/12 (make-up), Mon 14/12.
    assert calendar.add_working_days(date(2026, 12, 11), 2) == date(2026, 12, 14)
    assert calendar.add_working_days(date(2026, 12, 14), 1) == date(2026, 12, 16)


@pytest.mark.parametrize(
    ("hh", "mm", "expected"),
    [(14, 59, date(2026, 12, 7)), (15, 0, date(2026, 12, 8)), (15, 1, date(2026, 12, 8))],
)
def test_three_pm_cutoff(hh: int, mm: int, expected: date) -> None:
    assert CAL.reception_day(at(2026, 12, 7, hh, mm)) == expected


def test_friday_afternoon_and_sunday_count_from_monday() -> None:
    assert CAL.reception_day(at(2026, 12, 11, 16)) == date(2026, 12, 14)
    assert CAL.reception_day(at(2026, 12, 13, 10)) == date(2026, 12, 14)
    assert CAL.appointment_date(at(2026, 12, 11, 16), 3) == date(2026, 12, 17)


def test_same_day_procedures() -> None:
    assert CAL.appointment_date(at(2026, 12, 7, 9), 0, same_day=True) == date(2026, 12, 7)
    assert CAL.appointment_date(at(2026, 12, 7, 15, 30), 0, same_day=True) == date(2026, 12, 8)


def test_utc_input_is_read_in_vietnam_time() -> None:
    # 08:30 UTC is 15:30 in Vietnam: after the cut-off.
    assert CAL.reception_day(datetime(2026, 12, 7, 8, 30, tzinfo=UTC)) == date(2026, 12, 8)
    assert CAL.reception_day(datetime(2026, 12, 7, 7, 59, tzinfo=UTC)) == date(2026, 12, 7)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        CAL.reception_day(datetime(2026, 12, 7, 9))


def test_due_soon_overdue_and_extension_window() -> None:
    due = date(2026, 12, 10)  # Thursday
    assert not CAL.is_due_soon(due, at(2026, 12, 8))  # Tuesday: 2 working days left
    assert CAL.is_due_soon(due, at(2026, 12, 9))
    assert CAL.is_due_soon(due, at(2026, 12, 10, 16))
    assert not CAL.is_overdue(due, at(2026, 12, 10, 23))
    assert CAL.is_overdue(due, at(2026, 12, 11, 8))
    assert CAL.working_days_left(due, at(2026, 12, 7)) == 3
    assert CAL.can_extend(due, at(2026, 12, 9, 16))
    assert not CAL.can_extend(due, at(2026, 12, 10, 8))
    # Monday due date: Friday is a working day before it, so extending then is still allowed.
    assert CAL.can_extend(date(2026, 12, 14), at(2026, 12, 11))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("days_off = ['2026-13-01']\n", "days_off\\[0\\]"),
        ("holidays = []\n", "unknown key"),
        ("days_off = [2026-12-01]\nworking_days = [2026-12-01]\n", "both"),
        ("days_off = [\n", "not valid TOML"),
    ],
)
def test_bad_override_file_names_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as raised:
        load_calendar(path)
    assert str(path) in str(raised.value)


def test_missing_file_means_library_only(tmp_path: Path) -> None:
    assert load_calendar(tmp_path / "none.toml") == WorkingCalendar()
    assert load_calendar(None) == WorkingCalendar()


def _day_by_day(calendar: WorkingCalendar, start: date, end: date) -> int:
    """The definition, one day at a time: working days in (start, end]."""
    if end < start:
        return -_day_by_day(calendar, end, start)
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        count += calendar.is_working_day(day)
    return count


def test_working_days_between_counts_per_year_as_the_days_would() -> None:
    """Over Tết, swapped days, a decided day off and a make-up Saturday (both ways)."""
    calendar = WorkingCalendar(
        days_off=frozenset({date(2026, 4, 24), date(2027, 1, 5)}),
        working_days=frozenset({date(2026, 5, 9), date(2027, 2, 20)}),
    )
    spans = [
        (date(2026, 1, 1), date(2026, 12, 31)),
        (date(2026, 4, 20), date(2026, 5, 12)),
        (date(2027, 1, 29), date(2027, 2, 22)),  # Tết 2027
        (date(2025, 12, 27), date(2028, 3, 3)),
        (date(2026, 5, 9), date(2026, 5, 9)),
        (date(2026, 5, 10), date(2026, 5, 8)),
        (date(2026, 5, 8), date(2026, 5, 9)),  # Friday to the make-up Saturday: 1
    ]
    for start, end in spans:
        assert calendar.working_days_between(start, end) == _day_by_day(calendar, start, end)
    assert calendar.working_days_between(date(2026, 5, 8), date(2026, 5, 9)) == 1
    assert calendar.working_days_between(date(2026, 4, 23), date(2026, 4, 24)) == 0


def test_a_date_thousands_of_years_away_is_counted_at_once() -> None:
    """9999-12-31 (a crafted extension date) cost ~3 s a dossier page, day by day."""
    started = time.monotonic()
    days = WorkingCalendar().working_days_between(date(2026, 12, 7), date(9999, 12, 31))
    assert time.monotonic() - started < 1.0
    assert 2_000_000 < days < 2_100_000
