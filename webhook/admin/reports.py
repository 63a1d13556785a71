"""Reports of an agency over a period, as a page or CSV."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from core.calendar import to_local
from core.messages import render
from core.staff import (
    Permission,
    Role,
)
from storage.reports import MAX_CSV_DAYS, MAX_PAGE_DAYS, period_problem, report
from webhook.admin.pages import filter_day, render_page
from webhook.deps import (
    LANG,
    RuntimeDep,
    StaffDep,
    now,
)
from webhook.errors import refusal

router = APIRouter(prefix="/admin")


@router.get("/reports")
def reports_page(
    request: Request, runtime: RuntimeDep, staff: StaffDep, since: str = "", until: str = "",
    agency: str = "", format: str = "html",
) -> Response:  # fmt: skip
    agency = (
        agency if staff.user.role == Role.SYSTEM_ADMIN.value and agency else staff.user.agency_code
    )
    if not staff.can(Permission.VIEW_REPORTS, agency):
        raise refusal(403, "admin.error.forbidden")
    today = to_local(now()).date()
    first = filter_day(since) or today.replace(day=1)
    last = filter_day(until) or today
    if (since and filter_day(since) is None) or (until and filter_day(until) is None):
        error = render("admin.error.bad_date", LANG)
    else:
        days = MAX_CSV_DAYS if format == "csv" else MAX_PAGE_DAYS
        problem = period_problem(first, last, days)
        error = render(problem.key, LANG, **problem.values) if problem else ""
    if error:
        return render_page(request, "reports", staff, 400, result=None, since=first, until=last,
                     agency=agency, agencies=[], error=error)  # fmt: skip
    with Session(runtime.engine) as session:
        result = report(session, runtime.catalog, runtime.calendar, agency, first, last)
    if format == "csv":
        return Response(
            result.csv(LANG),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="bao-cao-{agency}-{first}-{last}.csv"'
            },
        )
    agencies = (
        list(runtime.catalog.agencies.values())
        if staff.user.role == Role.SYSTEM_ADMIN.value
        else []
    )
    return render_page(
        request,
        "reports",
        staff,
        result=result,
        since=first,
        until=last,
        agency=agency,
        agencies=agencies,
    )
