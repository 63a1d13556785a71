"""Kết nối Telegram: an officer binds their account to the staff bot by a one-time deep link
(single use, 10 minutes), and unbinds it here or with /logout in the bot."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from storage.db import session_scope
from storage.staff_bot import deep_link, is_linked, new_link_token, unlink
from webhook.admin.pages import redirect, render_page
from webhook.deps import FormDep, RuntimeDep, Staff, StaffDep, now
from webhook.errors import refusal

router = APIRouter(prefix="/admin")


def _bot_name(request: Request) -> str:
    """The staff bot's @name (from getMe at start-up); 404 when there is no staff bot."""
    application = request.app.state.staff_bot
    if application is None or not application.bot.username:
        raise refusal(404, "admin.error.not_found")
    return str(application.bot.username)


def _page(request: Request, runtime: RuntimeDep, staff: Staff, link: str = "") -> HTMLResponse:
    with Session(runtime.engine) as session:
        linked = is_linked(session, staff.member.id)
    return render_page(request, "telegram", staff, linked=linked, link=link)


@router.get("/telegram")
def telegram_page(request: Request, runtime: RuntimeDep, staff: StaffDep) -> HTMLResponse:
    _bot_name(request)
    return _page(request, runtime, staff)


@router.post("/telegram/link")
def telegram_link(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep
) -> HTMLResponse:
    name = _bot_name(request)
    with session_scope(runtime.engine) as session:
        token = new_link_token(session, staff.member.id, now())
    return _page(request, runtime, staff, deep_link(name, token))


@router.post("/telegram/unlink")
def telegram_unlink(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep
) -> Response:
    _bot_name(request)
    with session_scope(runtime.engine) as session:
        unlink(session, staff.member.id)
    return redirect("/admin/telegram")
