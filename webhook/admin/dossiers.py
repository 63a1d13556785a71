"""One dossier: its page, the desk's steps (storage.desk_actions), replies, transfer, files."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.datastructures import FormData

from core.calendar import to_local
from core.dossier import (
    Action,
    Actor,
    Command,
    DossierRuleError,
    MissingItem,
    Status,
    allowed_actions,
)
from core.messages import render
from core.staff import (
    Permission,
)
from storage import desk_actions
from storage.desk import (
    canned_replies,
    fill_canned_reply,
)
from storage.inbox import (
    dossier_view,
)
from storage.models import Dossier
from storage.staff import (
    StaffError,
)
from webhook.admin.forms import available_forms, placeholders
from webhook.admin.pages import RowId, parse_day, redirect, render_page
from webhook.deps import (
    LANG,
    ActedDossier,
    FormDep,
    RuntimeDep,
    SeenDossier,
    Staff,
    StaffDep,
    now,
    wake_delivery,
)
from webhook.errors import refusal
from webhook.runtime import Runtime

router = APIRouter(prefix="/admin")


DONE_NOTICES = {action.value for action in Action} | {"reply"}  # what ?done= may name


def _dossier_page(
    request: Request,
    runtime: Runtime,
    staff: Staff,
    dossier: Dossier,
    status: int = 200,
    **extra: Any,
) -> HTMLResponse:
    with Session(runtime.engine) as session:
        view = dossier_view(session, dossier)
        canned = canned_replies(session, staff.user.agency_code)
    procedure = runtime.catalog.procedure(dossier.procedure_code)
    days_left = None
    if dossier.appointment_date is not None:
        days_left = runtime.calendar.working_days_left(dossier.appointment_date, now())
    values = placeholders(view, runtime)
    return render_page(
        request,
        "dossier",
        staff,
        status,
        view=view,
        dossier=dossier,
        procedure=procedure,
        agency=runtime.catalog.agencies.get(dossier.agency_code),
        days_left=days_left,
        actions=allowed_actions(Status(dossier.status), Actor.DESK_OFFICER)
        if staff.can(Permission.ACT_ON_DOSSIERS, dossier.agency_code)
        else [],
        transfer_targets=[
            a
            for a in runtime.catalog.receiving_agencies(procedure)
            if a.code != dossier.agency_code
        ],
        canned=[(c, fill_canned_reply(c.text, values)) for c in canned],
        forms=available_forms(view),
        to_local=to_local,
        **extra,
    )


@router.get("/dossiers/{code}")
def dossier_page(
    request: Request, runtime: RuntimeDep, staff: StaffDep, dossier: SeenDossier, done: str = ""
) -> HTMLResponse:
    done = done if done in DONE_NOTICES else ""
    return _dossier_page(request, runtime, staff, dossier, done=done)


def _command(action: Action, form: FormData, procedure: Any, at: datetime) -> Command:
    reason = str(form.get("reason") or "").strip()[:1000]
    if action is Action.REFUSE and str(form.get("right_agency") or "").strip():
        right = str(form.get("right_agency")).strip()[:200]
        reason = f"{reason} — {render('forms.right_agency', LANG)}: {right}"
    missing: tuple[MissingItem, ...] = ()
    if action is Action.REQUEST_SUPPLEMENT:
        missing = tuple(
            MissingItem(c.code, str(form.get(f"reason_{c.code}") or "").strip()[:500])
            for c in procedure.components
            if form.get(f"missing_{c.code}")
        )
    new_date = parse_day(str(form.get("new_date") or ""))
    return Command(
        action,
        Actor.DESK_OFFICER,
        at,
        reason=reason,
        missing=missing,
        new_appointment_date=new_date,
    )


@router.post("/dossiers/{code}/act")
def act(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, dossier: ActedDossier
) -> Response:
    try:
        action = Action(str(form.get("action") or ""))
    except ValueError:
        raise refusal(400, "admin.error.forbidden") from None
    procedure = runtime.catalog.procedure(dossier.procedure_code)
    assert dossier.id is not None
    try:
        desk_actions.act(
            runtime, dossier.id, staff.member, _command(action, form, procedure, now())
        )
    except DossierRuleError as error:
        return _dossier_page(request, runtime, staff, dossier, 409, error=error.message(LANG))
    except desk_actions.NotPermitted:
        raise refusal(403, "admin.error.forbidden") from None
    wake_delivery(request)
    return redirect(f"/admin/dossiers/{dossier.code}?done={action.value}")


@router.post("/dossiers/{code}/reply")
def reply(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, dossier: ActedDossier
) -> Response:
    assert dossier.id is not None
    try:
        desk_actions.reply(runtime, dossier.id, staff.member, str(form.get("text") or ""), now())
    except StaffError as error:
        return _dossier_page(request, runtime, staff, dossier, 400, error=render(error.key, LANG))
    wake_delivery(request)
    return redirect(f"/admin/dossiers/{dossier.code}?done=reply")


@router.post("/dossiers/{code}/transfer")
def transfer_dossier(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, dossier: ActedDossier
) -> Response:
    assert dossier.id is not None
    try:
        desk_actions.transfer(runtime, dossier.id, staff.member, str(form.get("agency") or ""),
                              str(form.get("reason") or ""), now())  # fmt: skip
    except StaffError as error:
        return _dossier_page(request, runtime, staff, dossier, 400, error=render(error.key, LANG))
    wake_delivery(request)
    return redirect("/admin?done=transfer")


@router.get("/dossiers/{code}/files/{file_id}")
def dossier_file(runtime: RuntimeDep, dossier: SeenDossier, file_id: RowId) -> Response:
    """The original photo or PDF, only for staff who may see the dossier; never cached."""
    with Session(runtime.engine) as session:
        view = dossier_view(session, dossier)
    for files in view.files.values():
        for file in files:
            if file.id == file_id:
                return Response(
                    runtime.media.get(file.media_key),
                    media_type=file.content_type,
                    headers={
                        "Cache-Control": "private, no-store",
                        "X-Content-Type-Options": "nosniff",
                    },
                )
    raise refusal(404, "admin.error.not_found")
