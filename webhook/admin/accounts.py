"""Staff accounts: create, reset, unlock, change role, the account log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlmodel import Session, col

from core.calendar import to_local
from core.messages import render
from core.staff import (
    Permission,
    Role,
    holds_permissions_of,
    may_manage_account,
    roles_assignable_by,
)
from storage.db import session_scope
from storage.models import StaffUser
from storage.staff import (
    StaffError,
    account_events,
    change_role,
    create_staff,
    limited_usernames,
    reset_password,
    unlock,
)
from webhook.admin.pages import RowId, redirect, render_page
from webhook.deps import (
    LANG,
    FormDep,
    RuntimeDep,
    Staff,
    StaffDep,
    client_address,
    now,
)
from webhook.errors import refusal
from webhook.runtime import Runtime

router = APIRouter(prefix="/admin")


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
        raise refusal(403, "admin.error.forbidden")
    m = staff.member
    with Session(runtime.engine) as session:
        query = select(StaffUser).order_by(col(StaffUser.agency_code), col(StaffUser.username))
        if scope is not None:
            query = query.where(col(StaffUser.agency_code).in_(scope))
        accounts = list(session.execute(query).scalars())
        limited = limited_usernames(session, now())
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
    return render_page(request, "staff", staff, status, accounts=account_rows, agencies=agencies,
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
        raise refusal(403, "admin.error.forbidden")
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
        raise refusal(404, "admin.error.not_found")
    if user.id == staff.user.id or not may_manage_account(
        staff.member, Role(user.role), user.agency_code
    ):
        raise refusal(403, "admin.error.forbidden")
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
    return redirect("/admin/staff")


@router.post("/staff/{user_id}/role")
def staff_role(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep, user_id: int
) -> Response:
    try:
        role = Role(str(form.get("role") or ""))
    except ValueError:
        raise refusal(400, "admin.error.forbidden") from None
    if role not in roles_assignable_by(staff.member):
        raise refusal(403, "admin.error.forbidden")
    with session_scope(runtime.engine) as session:
        user = _managed_account(session, staff, user_id)
        actor = session.get(StaffUser, staff.user.id)
        assert actor is not None
        change_role(session, user, role, by=actor, address=client_address(request))
    return redirect("/admin/staff")


@router.get("/staff/events")
def staff_events(
    request: Request, runtime: RuntimeDep, staff: StaffDep, page: str = "1"
) -> HTMLResponse:
    """The account audit log: an agency admin's agency, or every agency for the system admin."""
    scope = _staff_scope(staff)
    if scope == []:
        raise refusal(403, "admin.error.forbidden")
    number = min(max(int(page), 1), 100_000) if page.isdigit() and len(page) < 7 else 1
    with Session(runtime.engine) as session:
        events, more = account_events(session, None if scope is None else scope[0], number)
    return render_page(request, "account_events", staff, events=events, page=number, more=more,
                 to_local=to_local)  # fmt: skip
