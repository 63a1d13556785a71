"""The inbox: queues, filters, the self-refresh stamp, and answers to feedback."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import select
from sqlmodel import Session, col

from core.calendar import to_local
from core.dossier import (
    Status,
)
from core.messages import render
from core.staff import (
    Permission,
)
from storage.db import session_scope
from storage.desk import (
    answer_feedback,
)
from storage.inbox import (
    QUEUES,
    Inbox,
    InboxFilter,
    queue_counts,
    read_inbox,
    read_inbox_async,
)
from storage.models import Feedback, OutboxMessage
from storage.onestop import forward_failures
from storage.staff import (
    StaffError,
)
from webhook.admin.pages import RowId, filter_day, redirect, render_page
from webhook.deps import (
    LANG,
    FormDep,
    RuntimeDep,
    StaffDep,
    now,
    wake_delivery,
)
from webhook.errors import refusal
from webhook.runtime import Runtime

router = APIRouter(prefix="/admin")


MAX_PAGE = 10_000  # of the inbox: 50 rows a page, far beyond any agency's dossiers


@router.get("")
async def inbox(
    request: Request,
    runtime: RuntimeDep,
    staff: StaffDep,
    queue: str = "new",
    procedure: str = "",
    status: str = "",
    since: str = "",
    until: str = "",
    q: str = "",
    page: int = 1,
    done: str = "",
) -> HTMLResponse:
    agency = staff.user.agency_code
    if not staff.can(Permission.VIEW_DOSSIERS):
        return render_page(request, "home", staff)
    queue = queue if queue in QUEUES else "new"
    wanted = InboxFilter(
        queue, procedure, status, filter_day(since), filter_day(until), q[:100],
        min(max(page, 1), MAX_PAGE),
    )  # fmt: skip
    at, calendar = now(), runtime.calendar
    feedback: list[Feedback] = []
    if runtime.async_reader is not None and queue != "feedback":
        data = await read_inbox_async(runtime.async_reader, agency, wanted, calendar, at)
    else:

        def read_all() -> tuple[Inbox, list[Feedback]]:
            with Session(runtime.reader) as session:  # read-only: no BEGIN/ROLLBACK
                waiting = []
                if queue == "feedback":
                    waiting = list(
                        session.execute(
                            select(Feedback)
                            .where(
                                col(Feedback.agency_code) == agency,
                                col(Feedback.answered_at).is_(None),
                            )
                            .order_by(col(Feedback.id))
                            .limit(50)
                        ).scalars()
                    )
                return read_inbox(session, agency, wanted, calendar, at), waiting

        data, feedback = await run_in_threadpool(read_all)
    failures: list[OutboxMessage] = []
    if agency in runtime.flow_rules.onestop:  # only where a one-stop system is connected

        def read_failures() -> list[OutboxMessage]:
            with Session(runtime.reader) as session:
                return forward_failures(session, agency)

        failures = await run_in_threadpool(read_failures)
    params = {k: v for k, v in (("queue", queue), ("procedure", procedure), ("status", status),
                                 ("since", since), ("until", until), ("q", q)) if v}  # fmt: skip
    return render_page(
        request,
        "inbox",
        staff,
        queues=QUEUES,
        counts=data.counts,
        wanted=wanted,
        rows=_table(data.rows, runtime) if queue != "feedback" else [],
        more=data.more,
        feedback=feedback,
        reminders=data.reminders,
        forward_failures=failures,
        stamp=data.stamp,
        query=urlencode(params),
        statuses=[s for s in Status if s is not Status.DRAFT],
        done=done,
        to_local=to_local,
    )


def _table(rows: list[Any], runtime: Runtime) -> list[tuple[str, ...]]:
    """The inbox rows as display strings (formatted here once, not cell by cell in Jinja)."""
    procedures = runtime.catalog.procedures
    return [
        (
            row.code,
            procedures[row.procedure_code].name.vi
            if row.procedure_code in procedures
            else row.procedure_code,
            row.applicant,
            row.phone,
            render(f"status.{row.status.value}", LANG),
            to_local(row.submitted_at).strftime("%d/%m/%Y %H:%M"),
            row.appointment_date.strftime("%d/%m/%Y") if row.appointment_date else "",
            to_local(row.last_activity_at).strftime("%d/%m %H:%M"),
        )
        for row in rows
    ]


@router.get("/stamp")
def inbox_stamp(runtime: RuntimeDep, staff: StaffDep) -> JSONResponse:
    """Polled by the inbox page: when it changes, a dossier arrived or moved."""
    with Session(runtime.reader) as session:
        _, stamp = queue_counts(session, staff.user.agency_code, runtime.calendar, now())
    return JSONResponse({"stamp": stamp})


@router.post("/feedback/{feedback_id}/answer")
def feedback_answer(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, feedback_id: RowId
) -> Response:
    with session_scope(runtime.engine) as session:
        feedback = session.get(Feedback, feedback_id)
        if feedback is None or not staff.can(
            Permission.ACT_ON_DOSSIERS, feedback.agency_code or ""
        ):
            raise refusal(404, "admin.error.not_found")
        try:
            answer_feedback(session, feedback, staff.member, str(form.get("text") or ""), now())
        except StaffError as error:
            raise refusal(400, error.key) from None
    wake_delivery(request)
    return redirect("/admin?queue=feedback&done=feedback")
