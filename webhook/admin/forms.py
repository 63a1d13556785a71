"""The official forms 01–05 of a dossier, as a printable page and a PNG."""

from __future__ import annotations

import base64
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from core.catalog import Text
from core.dossier import (
    Action,
)
from core.forms import FORM_NUMBERS, FormFacts, FormStep, build_form, form_png
from core.messages import render
from core.qr import lookup_url, qr_png
from storage.inbox import (
    DossierView,
    dossier_view,
)
from webhook.admin.pages import render_page
from webhook.deps import (
    LANG,
    RuntimeDep,
    SeenDossier,
    StaffDep,
)
from webhook.errors import refusal
from webhook.runtime import Runtime

router = APIRouter(prefix="/admin")


def _latest_event(view: DossierView, action: Action) -> Any:
    events = [event for event, _ in view.events if event.action == action.value]
    return events[-1] if events else None


def available_forms(view: DossierView) -> list[str]:
    forms = []
    if view.dossier.received_at is not None or _latest_event(view, Action.ACCEPT):
        forms.append("01")
    for number, action in (
        ("02", Action.REQUEST_SUPPLEMENT),
        ("03", Action.REFUSE),
        ("04", Action.EXTEND),
    ):
        if _latest_event(view, action):
            forms.append(number)
    return [*forms, "05"]


def placeholders(view: DossierView, runtime: Runtime) -> dict[str, Any]:
    dossier = view.dossier
    return {
        "code": dossier.code,
        "name": (view.citizen.full_name if view.citizen else None) or "",
        "procedure": runtime.catalog.procedure(dossier.procedure_code).name.vi,
        "appointment_date": dossier.appointment_date.strftime("%d/%m/%Y")
        if dossier.appointment_date
        else "",
    }


def _form_facts(view: DossierView, runtime: Runtime, number: str) -> FormFacts:
    dossier, citizen = view.dossier, view.citizen
    catalog = runtime.catalog
    procedure = catalog.procedure(dossier.procedure_code)
    agency = catalog.agencies[dossier.agency_code].name
    event = _latest_event(view, {"02": Action.REQUEST_SUPPLEMENT, "03": Action.REFUSE,
                                 "04": Action.EXTEND}.get(number, Action.ACCEPT))  # fmt: skip
    details = event.details if event is not None else {}
    officer = next((name for e, name in view.events if e is event and name), "")
    missing = [
        (Text(item["component"]["vi"], item["component"].get("en", "")), item["reason"])
        for item in details.get("missing", [])
    ]
    old = details.get("old_appointment_date")
    steps = [
        FormStep(
            at=e.at,
            action=render("admin.dossier.transfer_action", LANG)
            if e.action == "transfer"
            else render(f"action.{e.action}", LANG),
            officer=name,
            result=e.note,
        )
        for e, name in view.events
    ]
    return FormFacts(
        code=dossier.code,
        lookup_url=lookup_url(runtime.settings.public_base_url, dossier.code),
        agency=agency,
        procedure=procedure,
        applicant=(citizen.full_name if citizen else None) or "",
        phone=(citizen.phone if citizen else None) or "",
        id_number=(citizen.id_number if citizen else None) or "",
        submitted_at=dossier.submitted_at,
        received_at=dossier.received_at,
        appointment_date=dossier.appointment_date,
        files_per_component={k: len(v) for k, v in view.files.items()},
        missing=missing,
        reason=str(details.get("reason") or ""),
        old_appointment_date=date.fromisoformat(old) if old else None,
        steps=steps,
        officer=officer or _last_officer(view),
    )


def _last_officer(view: DossierView) -> str:
    names = [name for _, name in view.events if name]
    return names[-1] if names else ""


@router.get("/dossiers/{code}/forms/{number}.png")
def form_image(runtime: RuntimeDep, dossier: SeenDossier, number: str) -> Response:
    with Session(runtime.engine) as session:
        view = dossier_view(session, dossier)
    if number not in available_forms(view):
        raise refusal(404, "admin.error.not_found")
    sheet = build_form(number, _form_facts(view, runtime, number), LANG)
    return Response(
        form_png(sheet), media_type="image/png", headers={"Cache-Control": "private, no-store"}
    )


@router.get("/dossiers/{code}/forms/{number}")
def form_page(
    request: Request, runtime: RuntimeDep, staff: StaffDep, dossier: SeenDossier, number: str
) -> HTMLResponse:
    with Session(runtime.engine) as session:
        view = dossier_view(session, dossier)
    if number not in FORM_NUMBERS or number not in available_forms(view):
        raise refusal(404, "admin.error.not_found")
    sheet = build_form(number, _form_facts(view, runtime, number), LANG)
    qr_data = base64.b64encode(qr_png(sheet.lookup_url)).decode()
    return render_page(
        request,
        "form",
        staff,
        sheet=sheet,
        qr_data=qr_data,
        qr_src=f"/admin/dossiers/{dossier.code}/forms/{number}.png",
    )
