"""Undelivered messages (dead letters) and their retry."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from core.calendar import to_local
from core.staff import (
    Permission,
    Role,
)
from storage.db import session_scope
from storage.models import OutboxMessage
from storage.outbox import dead_letters, retry_dead
from webhook.admin.pages import RowId, redirect, render_page
from webhook.deps import (
    FormDep,
    RuntimeDep,
    Staff,
    StaffDep,
    now,
    wake_delivery,
)
from webhook.errors import refusal

router = APIRouter(prefix="/admin")


def _dead_letters(session: Session, staff: Staff) -> list[OutboxMessage]:
    system = staff.user.role == Role.SYSTEM_ADMIN.value
    return dead_letters(session, None if system else staff.user.agency_code)


@router.get("/deliveries")
def deliveries_page(
    request: Request, runtime: RuntimeDep, staff: StaffDep, done: str = ""
) -> HTMLResponse:
    if not staff.can(Permission.RETRY_DELIVERY):
        raise refusal(403, "admin.error.forbidden")
    with Session(runtime.engine) as session:
        dead = _dead_letters(session, staff)
    return render_page(request, "deliveries", staff, dead=dead, done=done, to_local=to_local)


@router.post("/deliveries/{message_id}/retry")
def delivery_retry(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, message_id: RowId
) -> Response:
    with session_scope(runtime.engine) as session:
        if message_id not in {m.id for m in _dead_letters(session, staff)}:
            raise refusal(404, "admin.error.not_found")
        retry_dead(session, message_id, now())
    wake_delivery(request)
    return redirect("/admin/deliveries?done=1")
