"""The agency's canned replies."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from core.messages import render
from core.staff import (
    Permission,
)
from storage.db import session_scope
from storage.desk import (
    add_canned_reply,
    canned_replies,
)
from storage.models import CannedReply
from storage.staff import (
    StaffError,
)
from webhook.admin.pages import RowId, redirect, render_page
from webhook.deps import (
    LANG,
    FormDep,
    RuntimeDep,
    Staff,
    StaffDep,
)
from webhook.errors import refusal
from webhook.runtime import Runtime

router = APIRouter(prefix="/admin")


@router.get("/canned")
def canned_page(request: Request, runtime: RuntimeDep, staff: StaffDep) -> HTMLResponse:
    return _canned_view(request, runtime, staff)


def _canned_view(
    request: Request, runtime: Runtime, staff: Staff, status: int = 200, error: str = ""
) -> HTMLResponse:
    if not staff.can(Permission.MANAGE_CANNED_REPLIES):
        raise refusal(403, "admin.error.forbidden")
    with Session(runtime.engine) as session:
        replies = canned_replies(session, staff.user.agency_code)
    return render_page(request, "canned", staff, status, replies=replies, error=error)


@router.post("/canned")
def canned_add(request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep) -> Response:
    if not staff.can(Permission.MANAGE_CANNED_REPLIES):
        raise refusal(403, "admin.error.forbidden")
    try:
        with session_scope(runtime.engine) as session:
            add_canned_reply(
                session,
                staff.user.agency_code,
                str(form.get("title") or ""),
                str(form.get("text") or ""),
            )
    except StaffError as error:
        return _canned_view(request, runtime, staff, 400, render(error.key, LANG))
    return redirect("/admin/canned")


@router.post("/canned/{reply_id}/delete")
def canned_delete(runtime: RuntimeDep, staff: StaffDep, form: FormDep, reply_id: RowId) -> Response:
    with session_scope(runtime.engine) as session:
        reply = session.get(CannedReply, reply_id)
        if reply is None or not staff.can(Permission.MANAGE_CANNED_REPLIES, reply.agency_code):
            raise refusal(404, "admin.error.not_found")
        session.delete(reply)
    return redirect("/admin/canned")
