"""Reports of one agency over a period: counts, on-time rate, processing time in working days,
ratings; per procedure, per officer and per week; and the same as CSV.

Read from the audit trail (status events), so a report can be rebuilt for any past period. A
dossier counts as on time when its result was ready by its appointment date (an extension with
apology moves that date, as the rules allow once).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlmodel import Session, col

from core.calendar import VN_TZ, WorkingCalendar, to_local
from core.catalog import Catalog
from core.dossier import Action
from core.messages import render
from storage.models import Dossier, Rating, StaffUser, StatusEvent

MAX_PAGE_DAYS = 366  # a report on the page: up to a year
MAX_CSV_DAYS = 5 * 365 + 1  # a CSV download: up to five years


@dataclass(frozen=True)
class PeriodProblem:
    """Why a period cannot be reported: a message key under admin and its values."""

    key: str
    values: dict[str, object]


def period_problem(since: date, until: date, max_days: int) -> PeriodProblem | None:
    """None when [since, until] is a period of at most `max_days` days."""
    if until < since:
        return PeriodProblem("admin.reports.period_reversed", {})
    if (until - since).days + 1 > max_days:
        return PeriodProblem("admin.reports.period_too_long", {"days": max_days})
    return None


@dataclass
class Tally:
    received: int = 0
    accepted: int = 0
    refused: int = 0
    finished: int = 0
    on_time: int = 0
    late: int = 0
    processing_days: list[int] = field(default_factory=list)
    stars: list[int] = field(default_factory=list)

    @property
    def average_days(self) -> float | None:
        return (
            sum(self.processing_days) / len(self.processing_days) if self.processing_days else None
        )

    @property
    def average_stars(self) -> float | None:
        return sum(self.stars) / len(self.stars) if self.stars else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.finished if self.finished else None


@dataclass
class Report:
    agency_code: str
    since: date
    until: date
    total: Tally
    by_procedure: dict[str, Tally]
    by_officer: dict[str, Tally]
    by_week: dict[date, Tally]

    def csv(self, lang: str = "vi") -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        columns = [
            "received",
            "accepted",
            "refused",
            "finished",
            "on_time",
            "late",
            "average_days",
            "rating",
        ]
        writer.writerow(["", *(render(f"admin.reports.{c}", lang) for c in columns)])
        sections = [
            (render("admin.reports.total", lang), {"": self.total}),
            (render("admin.reports.by_procedure", lang), self.by_procedure),
            (render("admin.reports.by_officer", lang), self.by_officer),
        ]
        for title, rows in sections:
            for name, tally in rows.items():
                writer.writerow([f"{title}: {name}" if name else title, *_cells(tally)])
        return "\ufeff" + out.getvalue()  # BOM: Excel opens Vietnamese CSV correctly


def _cells(tally: Tally) -> list[str]:
    average = f"{tally.average_days:.1f}" if tally.average_days is not None else ""
    stars = f"{tally.average_stars:.2f} ({len(tally.stars)})" if tally.stars else ""
    return [str(v) for v in (tally.received, tally.accepted, tally.refused, tally.finished,
                             tally.on_time, tally.late)] + [average, stars]  # fmt: skip


def _bounds(since: date, until: date) -> tuple[datetime, datetime]:
    start = datetime.combine(since, time(0, 0), tzinfo=VN_TZ)
    end = datetime.combine(until + timedelta(days=1), time(0, 0), tzinfo=VN_TZ)
    return start, end


def report(
    session: Session,
    catalog: Catalog,
    calendar: WorkingCalendar,
    agency_code: str,
    since: date,
    until: date,
) -> Report:
    start, end = _bounds(since, until)
    procedure_names = {code: p.name.vi for code, p in catalog.procedures.items()}
    officers = dict(session.execute(select(col(StaffUser.id), col(StaffUser.full_name))).all())
    result = Report(agency_code, since, until, Tally(), defaultdict(Tally), defaultdict(Tally), {})
    week = since - timedelta(days=since.weekday())
    while week <= until:
        result.by_week[week] = Tally()
        week += timedelta(days=7)

    def tallies(procedure_code: str, officer_id: int | None) -> list[Tally]:
        found = [
            result.total,
            result.by_procedure[procedure_names.get(procedure_code, procedure_code)],
        ]
        if officer_id is not None:
            found.append(result.by_officer[officers.get(officer_id, str(officer_id))])
        return found

    received = session.execute(
        select(col(Dossier.procedure_code), func.count())
        .where(
            col(Dossier.agency_code) == agency_code,
            col(Dossier.submitted_at) >= start,
            col(Dossier.submitted_at) < end,
        )
        .group_by(col(Dossier.procedure_code))
    ).all()
    for procedure_code, count in received:
        for tally in tallies(procedure_code, None):
            tally.received += count

    events = session.execute(
        select(StatusEvent, Dossier)
        .join(Dossier, col(Dossier.id) == col(StatusEvent.dossier_id))
        .where(
            col(Dossier.agency_code) == agency_code,
            col(StatusEvent.at) >= start,
            col(StatusEvent.at) < end,
            col(StatusEvent.action).in_(
                [Action.ACCEPT.value, Action.REFUSE.value, Action.RESULT_READY.value]
            ),
        )
    ).all()
    for event, dossier in events:
        for tally in tallies(dossier.procedure_code, event.staff_user_id):
            if event.action == Action.ACCEPT.value:
                tally.accepted += 1
            elif event.action == Action.REFUSE.value:
                tally.refused += 1
            else:
                _finished(tally, event, dossier, calendar)
        if event.action == Action.RESULT_READY.value:
            day = to_local(event.at).date()
            week = day - timedelta(days=day.weekday())
            _finished(result.by_week.setdefault(week, Tally()), event, dossier, calendar)

    ratings = session.execute(
        select(col(Rating.stars), col(Dossier.procedure_code))
        .join(Dossier, col(Dossier.id) == col(Rating.dossier_id))
        .where(
            col(Dossier.agency_code) == agency_code,
            col(Rating.created_at) >= start,
            col(Rating.created_at) < end,
        )
    ).all()
    for stars, procedure_code in ratings:
        for tally in tallies(procedure_code, None):
            tally.stars.append(stars)
    result.by_procedure = dict(sorted(result.by_procedure.items()))
    result.by_officer = dict(sorted(result.by_officer.items()))
    return result


def _finished(
    tally: Tally, event: StatusEvent, dossier: Dossier, calendar: WorkingCalendar
) -> None:
    tally.finished += 1
    ready = to_local(event.at).date()
    due = event.details.get("appointment_date") or (
        dossier.appointment_date.isoformat() if dossier.appointment_date else None
    )
    if due is None or ready <= date.fromisoformat(due):
        tally.on_time += 1
    else:
        tally.late += 1
    if dossier.received_at is not None:
        start = calendar.reception_day(dossier.received_at)
        tally.processing_days.append(max(calendar.working_days_between(start, ready), 0))
