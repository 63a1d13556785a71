"""/admin: the one-stop desk's panel. Routes translate forms into storage and core calls.

Every page needs a signed-in staff member (else: the login page); every POST needs the CSRF token
of the session and a same-site Origin; every dossier is looked up within the officer's agency,
so another agency's dossier is "not found" (404) whatever the URL says.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlmodel import Session, col
from starlette.datastructures import FormData

from bots.channels import zalo_tokens
from core.calendar import to_local
from core.catalog import Text
from core.dossier import (
    Action,
    Actor,
    Command,
    DossierRuleError,
    MissingItem,
    Status,
    allowed_actions,
)
from core.forms import FORM_NUMBERS, FormFacts, FormStep, build_form, form_png
from core.messages import render
from core.qr import lookup_url, qr_png
from core.staff import (
    Permission,
    Role,
    StaffMember,
    can,
    holds_permissions_of,
    may_manage_account,
    roles_assignable_by,
)
from storage.db import session_scope
from storage.desk import (
    add_canned_reply,
    answer_feedback,
    canned_replies,
    fill_canned_reply,
    reply_to_citizen,
    transfer,
)
from storage.dossiers import apply_command
from storage.inbox import (
    QUEUES,
    DossierView,
    Inbox,
    InboxFilter,
    dossier_view,
    queue_counts,
    read_inbox,
    read_inbox_async,
)
from storage.models import CannedReply, Dossier, Feedback, OutboxMessage, StaffUser
from storage.onestop import forward_failures
from storage.outbox import dead_letters, retry_dead
from storage.reports import MAX_CSV_DAYS, MAX_PAGE_DAYS, period_problem, report
from storage.staff import (
    Login,
    StaffError,
    account_events,
    authenticate,
    change_password,
    change_role,
    create_staff,
    limited_usernames,
    load_staff_async,
    member,
    reset_password,
    sign_out,
    unlock,
)
from storage.zalo import get_token
from webhook.app import RuntimeDep, templates, wake_delivery
from webhook.limits import MAX_ROW_ID
from webhook.runtime import Runtime
from webhook.staff_session import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    MAX_AGE,
    csrf_ok,
    csrf_token,
    issue,
    new_login_token,
    read,
    same_origin,
    set_cookie,
)
from webhook.zalo_oauth import new_consent_link

router = APIRouter(prefix="/admin")
LANG = "vi"


class LoginRequired(Exception):
    pass


class PasswordChangeRequired(Exception):
    pass


@dataclass
class Staff:
    user: StaffUser
    csrf: str

    @property
    def member(self) -> StaffMember:
        return member(self.user)

    def can(self, permission: Permission, agency_code: str | None = None) -> bool:
        return can(self.member, permission, agency_code or self.user.agency_code)


def _now() -> datetime:
    return datetime.now(UTC)


def client_address(request: Request) -> str:
    """The address a request came from: the peer, or — behind a reverse proxy — the one the
    proxy names in X-Forwarded-For, which uvicorn applies only for proxies listed in
    FORWARDED_ALLOW_IPS (`--forwarded-allow-ips`; 127.0.0.1 by default)."""
    return request.client.host[:64] if request.client else "unknown"


async def current_staff(request: Request, runtime: RuntimeDep) -> Staff:
    """The signed-in staff member (read on the event loop: every panel request needs it)."""
    secret = runtime.settings.secret_key.get_secret_value()
    cookie = request.cookies.get(COOKIE)
    claim = read(secret, cookie)
    if claim is None:
        raise LoginRequired
    if runtime.async_reader is not None:
        async with runtime.async_reader.connection() as connection:
            user = await load_staff_async(connection, claim.user_id)
    else:  # SQLite: an in-process read, cheaper inline than a thread hop
        with Session(runtime.reader) as session:
            user = session.get(StaffUser, claim.user_id)
    if user is None or user.session_generation != claim.generation:
        raise LoginRequired  # signed out, password changed or reset since the cookie was issued
    if user.must_change_password and request.url.path not in ("/admin/password", "/admin/logout"):
        raise PasswordChangeRequired
    return Staff(user, csrf_token(secret, cookie or ""))


StaffDep = Annotated[Staff, Depends(current_staff)]


async def checked_form(request: Request, runtime: RuntimeDep, staff: StaffDep) -> FormData:
    """The POSTed form, only when it carries this session's CSRF token and comes from our site."""
    form = await request.form()
    secret = runtime.settings.secret_key.get_secret_value()
    token = str(form.get("csrf") or "")
    if not same_origin(request, runtime.settings.public_base_url) or not csrf_ok(
        secret, request.cookies.get(COOKIE), token
    ):
        raise HTTPException(403, render("admin.error.csrf", LANG))
    return form


FormDep = Annotated[FormData, Depends(checked_form)]


def _page(
    request: Request, name: str, staff: Staff | None, status: int = 200, **context: Any
) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    problems: list[SystemProblem] = []  # what the system admin must fix for citizens to be served
    if staff is not None and staff.can(Permission.OPERATE):
        if (media := runtime.media.problem()) is not None:
            problems.append(
                SystemProblem(render("admin.system.media_unavailable", LANG, reason=media))
            )
        if (zalo := _zalo_problem(runtime)) is not None:
            problems.append(zalo)
    return templates.TemplateResponse(
        request,
        f"admin/{name}.html",
        {
            "lang": LANG,
            "staff": staff,
            "catalog": runtime.catalog,
            "Permission": Permission,
            "system_problems": problems,
            **context,
        },
        status_code=status,
    )


@dataclass(frozen=True)
class SystemProblem:
    """A banner for the system admin: what is wrong and what to do, with a link when one helps."""

    text: str
    link: str | None = None
    link_label: str | None = None


def _zalo_problem(runtime: Runtime) -> SystemProblem | None:
    """The Zalo channel is on but its OA token is missing or can no longer be refreshed: say so,
    with a fresh consent link for the OA admin (the same as `hcc zalo connect` prints)."""
    settings = runtime.settings
    if not settings.zalo_enabled:
        return None
    stored = None
    if settings.zalo_oa_id:
        with session_scope(runtime.engine) as session:
            stored = get_token(session, settings.zalo_oa_id)
    if stored is not None and stored.broken_reason is None:
        return None
    if stored is None:
        text = render("admin.system.zalo_not_connected", LANG)
    else:
        text = render("admin.system.zalo_broken", LANG, reason=stored.broken_reason)
    with httpx.Client() as client:  # unused: a consent link needs no request to Zalo
        tokens = zalo_tokens(runtime, client)
        if tokens is None:  # the settings lack what a consent link needs: only the CLI helps
            return SystemProblem(text)
        link = new_consent_link(runtime, tokens)
    return SystemProblem(text, link, render("admin.system.zalo_connect", LANG))


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- sign-in ----------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, error: str = "") -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_token()
    response = _page(request, "login", None, login_csrf=token, error=error)
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token, 3600)
    return response


@router.post("/login")
async def login(request: Request, runtime: RuntimeDep) -> Response:
    form = await request.form()
    token = str(form.get("csrf") or "")
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if (
        not token
        or token != cookie_token
        or not same_origin(request, runtime.settings.public_base_url)
    ):
        raise HTTPException(403, render("admin.error.csrf", LANG))
    username = str(form.get("username") or "")[:200]
    password = str(form.get("password") or "")[:1000]
    address, limit = client_address(request), runtime.settings.rate_limit_login_per_minute

    def check() -> tuple[Login, int | None, int, float]:
        with session_scope(runtime.engine) as session:
            signed = authenticate(session, username, password, _now(), address=address,
                                  per_minute=limit)  # fmt: skip
            user = signed.user
            return (signed.result, user.id if user else None,
                    user.session_generation if user else 0, signed.wait_seconds)  # fmt: skip

    result, user_id, generation, wait = await run_in_threadpool(check)  # argon2: off the loop
    if result is Login.LIMITED:
        seconds = max(int(wait + 0.999), 1)
        error = render("admin.login.limited", LANG, seconds=seconds)
        page = _page(request, "login", None, 429, login_csrf=token, error=error, username=username)
        page.headers["Retry-After"] = str(seconds)
        return page
    if result is Login.BAD or user_id is None:
        error = render("admin.login.bad", LANG)
        return _page(request, "login", None, 401, login_csrf=token, error=error, username=username)
    response = _redirect("/admin")
    secret = runtime.settings.secret_key.get_secret_value()
    set_cookie(response, request, COOKIE, issue(secret, user_id, generation), MAX_AGE)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/admin")
    return response


@router.post("/logout")
def logout(request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep) -> Response:
    """Ends this session and every other one of the account (also before a forced password
    change: the officer may leave without choosing one)."""
    with session_scope(runtime.engine) as session:
        user = session.get(StaffUser, staff.user.id)
        assert user is not None
        sign_out(session, user, address=client_address(request))
    response = _redirect("/admin/login")
    response.delete_cookie(COOKIE, path="/admin")
    return response


@router.get("/password")
def password_page(request: Request, staff: StaffDep) -> HTMLResponse:
    return _page(request, "password", staff)


@router.post("/password")
def password_change(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep
) -> Response:
    current, new = str(form.get("current") or ""), str(form.get("new") or "")
    if new != str(form.get("repeat") or ""):
        return _page(
            request, "password", staff, 400, error=render("admin.error.password_mismatch", LANG)
        )
    try:
        with session_scope(runtime.engine) as session:
            user = session.get(StaffUser, staff.user.id)
            assert user is not None
            change_password(session, user, current, new, address=client_address(request))
            generation = user.session_generation
    except StaffError as error:
        return _page(request, "password", staff, 400, error=render(error.key, LANG))
    response = _redirect("/admin?done=password")
    secret = runtime.settings.secret_key.get_secret_value()
    assert staff.user.id is not None
    set_cookie(response, request, COOKIE, issue(secret, staff.user.id, generation), MAX_AGE)
    return response


# --- inbox ------------------------------------------------------------------------------------


# Dates the panel takes in a filter or a form: a crafted 0001-01-01 or 9999-12-31 is ignored.
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2099, 12, 31)
MAX_PAGE = 10_000  # of the inbox: 50 rows a page, far beyond any agency's dossiers
DONE_NOTICES = {action.value for action in Action} | {"reply"}  # what ?done= may name
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def _parse_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _filter_day(text: str) -> date | None:
    """A filter's date; None when missing, not a date, or outside the years the panel serves."""
    day = _parse_day(text)
    return day if day is not None and EARLIEST_DAY <= day <= LATEST_DAY else None


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
        return _page(request, "home", staff)
    queue = queue if queue in QUEUES else "new"
    wanted = InboxFilter(
        queue, procedure, status, _filter_day(since), _filter_day(until), q[:100],
        min(max(page, 1), MAX_PAGE),
    )  # fmt: skip
    now, calendar = _now(), runtime.calendar
    feedback: list[Feedback] = []
    if runtime.async_reader is not None and queue != "feedback":
        data = await read_inbox_async(runtime.async_reader, agency, wanted, calendar, now)
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
                return read_inbox(session, agency, wanted, calendar, now), waiting

        data, feedback = await run_in_threadpool(read_all)
    failures: list[OutboxMessage] = []
    if agency in runtime.flow_rules.onestop:  # only where a one-stop system is connected

        def read_failures() -> list[OutboxMessage]:
            with Session(runtime.reader) as session:
                return forward_failures(session, agency)

        failures = await run_in_threadpool(read_failures)
    params = {k: v for k, v in (("queue", queue), ("procedure", procedure), ("status", status),
                                 ("since", since), ("until", until), ("q", q)) if v}  # fmt: skip
    return _page(
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
        _, stamp = queue_counts(session, staff.user.agency_code, runtime.calendar, _now())
    return JSONResponse({"stamp": stamp})


# --- one dossier ------------------------------------------------------------------------------


def _dossier(session: Session, staff: Staff, code: str) -> Dossier:
    """The dossier if this officer may see it; 404 otherwise (no hint that it exists)."""
    dossier = session.execute(select(Dossier).where(col(Dossier.code) == code)).scalar_one_or_none()
    if dossier is None or not staff.can(Permission.VIEW_DOSSIERS, dossier.agency_code):
        raise HTTPException(404, render("admin.error.not_found", LANG))
    return dossier


def _dossier_to_act_on(session: Session, staff: Staff, code: str) -> Dossier:
    """The dossier, when this officer may also act on it (seeing it is not enough)."""
    dossier = _dossier(session, staff, code)
    if not staff.can(Permission.ACT_ON_DOSSIERS, dossier.agency_code):
        raise HTTPException(403, render("admin.error.forbidden", LANG))
    return dossier


def _dossier_page(
    request: Request, runtime: Runtime, staff: Staff, code: str, status: int = 200, **extra: Any
) -> HTMLResponse:
    now = _now()
    with Session(runtime.engine) as session:
        view = dossier_view(session, _dossier(session, staff, code))
        canned = canned_replies(session, staff.user.agency_code)
    dossier = view.dossier
    procedure = runtime.catalog.procedure(dossier.procedure_code)
    days_left = None
    if dossier.appointment_date is not None:
        days_left = runtime.calendar.working_days_left(dossier.appointment_date, now)
    values = _placeholders(view, runtime)
    return _page(
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
        forms=_available_forms(view),
        to_local=to_local,
        **extra,
    )


@router.get("/dossiers/{code}")
def dossier_page(
    request: Request, runtime: RuntimeDep, staff: StaffDep, code: str, done: str = ""
) -> HTMLResponse:
    return _dossier_page(request, runtime, staff, code, done=done if done in DONE_NOTICES else "")


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
    new_date = _parse_day(str(form.get("new_date") or ""))
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
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, code: str
) -> Response:
    try:
        action = Action(str(form.get("action") or ""))
    except ValueError:
        raise HTTPException(400, render("admin.error.forbidden", LANG)) from None
    try:
        with session_scope(runtime.engine) as session:
            dossier = _dossier_to_act_on(session, staff, code)
            procedure = runtime.catalog.procedure(dossier.procedure_code)
            assert dossier.id is not None
            apply_command(
                session,
                dossier.id,
                _command(action, form, procedure, _now()),
                catalog=runtime.catalog,
                calendar=runtime.calendar,
                rules=runtime.flow_rules,
                staff_user_id=staff.user.id,
            )
    except DossierRuleError as error:
        return _dossier_page(request, runtime, staff, code, 409, error=error.message(LANG))
    wake_delivery(request)
    return _redirect(f"/admin/dossiers/{code}?done={action.value}")


@router.post("/dossiers/{code}/reply")
def reply(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, code: str
) -> Response:
    try:
        with session_scope(runtime.engine) as session:
            dossier = _dossier_to_act_on(session, staff, code)
            reply_to_citizen(session, dossier, staff.member, str(form.get("text") or ""), _now())
    except StaffError as error:
        return _dossier_page(request, runtime, staff, code, 400, error=render(error.key, LANG))
    wake_delivery(request)
    return _redirect(f"/admin/dossiers/{code}?done=reply")


@router.post("/dossiers/{code}/transfer")
def transfer_dossier(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, code: str
) -> Response:
    try:
        with session_scope(runtime.engine) as session:
            dossier = _dossier_to_act_on(session, staff, code)
            transfer(session, dossier, str(form.get("agency") or ""), staff.member, runtime.catalog,
                     _now(), str(form.get("reason") or ""))  # fmt: skip
    except StaffError as error:
        return _dossier_page(request, runtime, staff, code, 400, error=render(error.key, LANG))
    wake_delivery(request)
    return _redirect("/admin?done=transfer")


@router.get("/dossiers/{code}/files/{file_id}")
def dossier_file(runtime: RuntimeDep, staff: StaffDep, code: str, file_id: RowId) -> Response:
    """The original photo or PDF, only for staff who may see the dossier; never cached."""
    with Session(runtime.engine) as session:
        view = dossier_view(session, _dossier(session, staff, code))
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
    raise HTTPException(404, render("admin.error.not_found", LANG))


# --- forms 01–05 --------------------------------------------------------------------------------


def _latest_event(view: DossierView, action: Action) -> Any:
    events = [event for event, _ in view.events if event.action == action.value]
    return events[-1] if events else None


def _available_forms(view: DossierView) -> list[str]:
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


def _placeholders(view: DossierView, runtime: Runtime) -> dict[str, Any]:
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
def form_image(runtime: RuntimeDep, staff: StaffDep, code: str, number: str) -> Response:
    with Session(runtime.engine) as session:
        view = dossier_view(session, _dossier(session, staff, code))
    if number not in _available_forms(view):
        raise HTTPException(404, render("admin.error.not_found", LANG))
    sheet = build_form(number, _form_facts(view, runtime, number), LANG)
    return Response(
        form_png(sheet), media_type="image/png", headers={"Cache-Control": "private, no-store"}
    )


@router.get("/dossiers/{code}/forms/{number}")
def form_page(
    request: Request, runtime: RuntimeDep, staff: StaffDep, code: str, number: str
) -> HTMLResponse:
    with Session(runtime.engine) as session:
        view = dossier_view(session, _dossier(session, staff, code))
    if number not in FORM_NUMBERS or number not in _available_forms(view):
        raise HTTPException(404, render("admin.error.not_found", LANG))
    sheet = build_form(number, _form_facts(view, runtime, number), LANG)
    qr_data = base64.b64encode(qr_png(sheet.lookup_url)).decode()
    return _page(
        request,
        "form",
        staff,
        sheet=sheet,
        qr_data=qr_data,
        qr_src=f"/admin/dossiers/{code}/forms/{number}.png",
    )


# --- feedback, accounts, canned replies, undelivered messages ----------------------------------


@router.post("/feedback/{feedback_id}/answer")
def feedback_answer(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, feedback_id: RowId
) -> Response:
    with session_scope(runtime.engine) as session:
        feedback = session.get(Feedback, feedback_id)
        if feedback is None or not staff.can(
            Permission.ACT_ON_DOSSIERS, feedback.agency_code or ""
        ):
            raise HTTPException(404, render("admin.error.not_found", LANG))
        try:
            answer_feedback(session, feedback, staff.member, str(form.get("text") or ""), _now())
        except StaffError as error:
            raise HTTPException(400, render(error.key, LANG)) from None
    wake_delivery(request)
    return _redirect("/admin?queue=feedback&done=feedback")


def _staff_scope(staff: Staff) -> list[str] | None:
    """Agencies whose accounts this person manages; None = all."""
    if staff.user.role == Role.SYSTEM_ADMIN.value:
        return None
    return [staff.user.agency_code] if staff.can(Permission.MANAGE_STAFF) else []


@router.get("/staff")
def staff_page(request: Request, runtime: RuntimeDep, staff: StaffDep) -> HTMLResponse:
    return _staff_view(request, runtime, staff)


@dataclass(frozen=True)
class AccountRow:
    """One account on the accounts page and what the viewer may do to it."""

    user: StaffUser
    limited: bool
    may_reset: bool  # and be shown the one-time password
    may_unlock: bool
    roles: tuple[Role, ...]  # roles it may be given (empty: its role is not the viewer's to change)


def _creatable_roles(staff: Staff) -> list[Role]:
    """Roles of new accounts this person may create in the panel: only those whose one-time
    password they may see (a system admin: other system admins; `hcc staff create` for the rest)."""
    m = staff.member
    return [r for r in roles_assignable_by(m) if holds_permissions_of(m, r, m.agency_code)]


def _staff_view(
    request: Request, runtime: Runtime, staff: Staff, status: int = 200, **extra: Any
) -> HTMLResponse:
    scope = _staff_scope(staff)
    if scope == []:
        raise HTTPException(403, render("admin.error.forbidden", LANG))
    m = staff.member
    with Session(runtime.engine) as session:
        query = select(StaffUser).order_by(col(StaffUser.agency_code), col(StaffUser.username))
        if scope is not None:
            query = query.where(col(StaffUser.agency_code).in_(scope))
        accounts = list(session.execute(query).scalars())
        limited = limited_usernames(session, _now())
    account_rows = []
    for user in accounts:
        manage = user.id != staff.user.id and may_manage_account(
            m, Role(user.role), user.agency_code
        )
        account_rows.append(AccountRow(
            user, user.username in limited,
            may_reset=manage and holds_permissions_of(m, Role(user.role), user.agency_code),
            may_unlock=manage and user.username in limited,
            roles=roles_assignable_by(m) if manage else (),
        ))  # fmt: skip
    agencies = [a for a in runtime.catalog.agencies.values() if scope is None or a.code in scope]
    return _page(request, "staff", staff, status, accounts=account_rows, agencies=agencies,
                 roles=_creatable_roles(staff), **extra)  # fmt: skip


@router.post("/staff")
def staff_create(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep
) -> HTMLResponse:
    agency = str(form.get("agency") or staff.user.agency_code)
    try:
        role = Role(str(form.get("role") or ""))
    except ValueError:
        role = Role.DESK_OFFICER
    scope = _staff_scope(staff)
    if (
        scope == []
        or (scope is not None and agency not in scope)
        or role not in roles_assignable_by(staff.member)
    ):
        raise HTTPException(403, render("admin.error.forbidden", LANG))
    if not holds_permissions_of(staff.member, role, agency):
        error = render("admin.error.one_time_elsewhere", LANG)
        return _staff_view(request, runtime, staff, 403, error=error)
    try:
        with session_scope(runtime.engine) as session:
            actor = session.get(StaffUser, staff.user.id)
            user, password = create_staff(session, username=str(form.get("username") or ""),
                                          full_name=str(form.get("full_name") or ""),
                                          agency_code=agency, role=role, by=actor,
                                          address=client_address(request))  # fmt: skip
            username = user.username
    except StaffError as error:
        return _staff_view(request, runtime, staff, 400, error=render(error.key, LANG))
    notice = render("admin.staff.one_time", LANG, username=username, password=password)
    return _staff_view(request, runtime, staff, one_time=notice)


def _managed_account(session: Session, staff: Staff, user_id: int) -> StaffUser:
    """An account this person may reset, unlock or change the role of (never their own):
    404 outside their agencies, 403 for an account above them (an agency admin's peer)."""
    scope = _staff_scope(staff)
    user = session.get(StaffUser, user_id)
    if user is None or scope == [] or (scope is not None and user.agency_code not in scope):
        raise HTTPException(404, render("admin.error.not_found", LANG))
    if user.id == staff.user.id or not may_manage_account(
        staff.member, Role(user.role), user.agency_code
    ):
        raise HTTPException(403, render("admin.error.forbidden", LANG))
    return user


@router.post("/staff/{user_id}/reset")
def staff_reset(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, user_id: RowId
) -> HTMLResponse:
    """A new one-time password, shown only to someone who holds every permission of the account
    (else nothing changes: the agency admin, or `hcc staff reset` on the server, does it)."""
    with session_scope(runtime.engine) as session:
        user = _managed_account(session, staff, user_id)
        if not holds_permissions_of(staff.member, Role(user.role), user.agency_code):
            refused = render("admin.error.one_time_elsewhere", LANG)
        else:
            refused = ""
            actor = session.get(StaffUser, staff.user.id)
            password = reset_password(session, user, by=actor, address=client_address(request))
            username = user.username
    if refused:
        return _staff_view(request, runtime, staff, 403, error=refused)
    notice = render("admin.staff.one_time", LANG, username=username, password=password)
    return _staff_view(request, runtime, staff, one_time=notice)


@router.post("/staff/{user_id}/unlock")
def staff_unlock(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, user_id: int
) -> Response:
    with session_scope(runtime.engine) as session:
        user = _managed_account(session, staff, user_id)
        actor = session.get(StaffUser, staff.user.id)
        assert actor is not None
        unlock(session, user, by=actor, address=client_address(request))
    return _redirect("/admin/staff")


@router.post("/staff/{user_id}/role")
def staff_role(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, user_id: int
) -> Response:
    try:
        role = Role(str(form.get("role") or ""))
    except ValueError:
        raise HTTPException(400, render("admin.error.forbidden", LANG)) from None
    if role not in roles_assignable_by(staff.member):
        raise HTTPException(403, render("admin.error.forbidden", LANG))
    with session_scope(runtime.engine) as session:
        user = _managed_account(session, staff, user_id)
        actor = session.get(StaffUser, staff.user.id)
        assert actor is not None
        change_role(session, user, role, by=actor, address=client_address(request))
    return _redirect("/admin/staff")


@router.get("/staff/events")
def staff_events(
    request: Request, runtime: RuntimeDep, staff: StaffDep, page: str = "1"
) -> HTMLResponse:
    """The account audit log: an agency admin's agency, or every agency for the system admin."""
    scope = _staff_scope(staff)
    if scope == []:
        raise HTTPException(403, render("admin.error.forbidden", LANG))
    number = min(max(int(page), 1), 100_000) if page.isdigit() and len(page) < 7 else 1
    with Session(runtime.engine) as session:
        events, more = account_events(session, None if scope is None else scope[0], number)
    return _page(request, "account_events", staff, events=events, page=number, more=more,
                 to_local=to_local)  # fmt: skip


@router.get("/canned")
def canned_page(request: Request, runtime: RuntimeDep, staff: StaffDep) -> HTMLResponse:
    return _canned_view(request, runtime, staff)


def _canned_view(
    request: Request, runtime: Runtime, staff: Staff, status: int = 200, error: str = ""
) -> HTMLResponse:
    if not staff.can(Permission.MANAGE_CANNED_REPLIES):
        raise HTTPException(403, render("admin.error.forbidden", LANG))
    with Session(runtime.engine) as session:
        replies = canned_replies(session, staff.user.agency_code)
    return _page(request, "canned", staff, status, replies=replies, error=error)


@router.post("/canned")
def canned_add(request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep) -> Response:
    if not staff.can(Permission.MANAGE_CANNED_REPLIES):
        raise HTTPException(403, render("admin.error.forbidden", LANG))
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
    return _redirect("/admin/canned")


@router.post("/canned/{reply_id}/delete")
def canned_delete(runtime: RuntimeDep, staff: StaffDep, form: FormDep, reply_id: RowId) -> Response:
    with session_scope(runtime.engine) as session:
        reply = session.get(CannedReply, reply_id)
        if reply is None or not staff.can(Permission.MANAGE_CANNED_REPLIES, reply.agency_code):
            raise HTTPException(404, render("admin.error.not_found", LANG))
        session.delete(reply)
    return _redirect("/admin/canned")


def _dead_letters(session: Session, staff: Staff) -> list[OutboxMessage]:
    system = staff.user.role == Role.SYSTEM_ADMIN.value
    return dead_letters(session, None if system else staff.user.agency_code)


@router.get("/deliveries")
def deliveries_page(
    request: Request, runtime: RuntimeDep, staff: StaffDep, done: str = ""
) -> HTMLResponse:
    if not staff.can(Permission.RETRY_DELIVERY):
        raise HTTPException(403, render("admin.error.forbidden", LANG))
    with Session(runtime.engine) as session:
        dead = _dead_letters(session, staff)
    return _page(request, "deliveries", staff, dead=dead, done=done, to_local=to_local)


@router.post("/deliveries/{message_id}/retry")
def delivery_retry(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, message_id: RowId
) -> Response:
    with session_scope(runtime.engine) as session:
        if message_id not in {m.id for m in _dead_letters(session, staff)}:
            raise HTTPException(404, render("admin.error.not_found", LANG))
        retry_dead(session, message_id, _now())
    wake_delivery(request)
    return _redirect("/admin/deliveries?done=1")


# --- reports ------------------------------------------------------------------------------------


@router.get("/reports")
def reports_page(
    request: Request, runtime: RuntimeDep, staff: StaffDep, since: str = "", until: str = "",
    agency: str = "", format: str = "html",
) -> Response:  # fmt: skip
    agency = (
        agency if staff.user.role == Role.SYSTEM_ADMIN.value and agency else staff.user.agency_code
    )
    if not staff.can(Permission.VIEW_REPORTS, agency):
        raise HTTPException(403, render("admin.error.forbidden", LANG))
    today = to_local(_now()).date()
    first = _filter_day(since) or today.replace(day=1)
    last = _filter_day(until) or today
    if (since and _filter_day(since) is None) or (until and _filter_day(until) is None):
        error = render("admin.error.bad_date", LANG)
    else:
        days = MAX_CSV_DAYS if format == "csv" else MAX_PAGE_DAYS
        problem = period_problem(first, last, days)
        error = render(problem.key, LANG, **problem.values) if problem else ""
    if error:
        return _page(request, "reports", staff, 400, result=None, since=first, until=last,
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
    return _page(
        request,
        "reports",
        staff,
        result=result,
        since=first,
        until=last,
        agency=agency,
        agencies=agencies,
    )


def install(app: FastAPI) -> None:
    """Mount the panel and its two redirects (not signed in; password to change)."""
    app.include_router(router)

    async def to_login(request: Request, _: Exception) -> Response:
        if request.url.path == "/admin/stamp":
            return JSONResponse({"error": "signed_out"}, status_code=401)
        return _redirect("/admin/login")

    async def to_password(request: Request, _: Exception) -> Response:
        return _redirect("/admin/password")

    app.add_exception_handler(LoginRequired, to_login)
    app.add_exception_handler(PasswordChangeRequired, to_password)
