"""Kết nối Telegram: an officer binds their account to the staff bot by a one-time deep link
(single use, 10 minutes), and unbinds it here or with /logout in the bot."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from storage.db import session_scope
from storage.staff_bot import deep_link, is_linked, new_link_token, unlink
from webhook.admin.pages import redirect, render_page
from webhook.deps import FormDep, RuntimeDep, Staff, StaffDep, now
from webhook.errors import refusal

router = APIRouter(prefix="/admin")


async def _bot_name(request: Request) -> str:
    """The staff bot's @name (its getMe); 404 when there is no staff bot, 503 while the Bot API
    cannot be reached."""
    application = request.app.state.staff_bot
    if application is None:
        raise refusal(404, "admin.error.not_found")
    from bots.telegram_staff import started  # PTB: only with a staff bot

    if not await started(application, request.app.state):
        raise refusal(503, "admin.error.telegram_unreachable")
    return str(application.bot.username)


def _page(request: Request, runtime: RuntimeDep, staff: Staff, link: str = "") -> HTMLResponse:
    with Session(runtime.engine) as session:
        linked = is_linked(session, staff.member.id)
    return render_page(request, "telegram", staff, linked=linked, link=link)


@router.get("/telegram")
async def telegram_page(request: Request, runtime: RuntimeDep, staff: StaffDep) -> HTMLResponse:
    await _bot_name(request)
    return await run_in_threadpool(_page, request, runtime, staff)


@router.post("/telegram/link")
async def telegram_link(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep
) -> HTMLResponse:
    name = await _bot_name(request)

    def link() -> HTMLResponse:
        with session_scope(runtime.engine) as session:
            token = new_link_token(session, staff.member.id, now())
        return _page(request, runtime, staff, deep_link(name, token))

    return await run_in_threadpool(link)


@router.post("/telegram/unlink")
def telegram_unlink(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep
) -> Response:
    """Works whether or not the Bot API answers: the binding is ours."""
    with session_scope(runtime.engine) as session:
        unlink(session, staff.member.id)
    return redirect("/admin/telegram")
