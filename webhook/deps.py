"""What routes depend on, in one module (the FastAPI template's `api/deps.py`): the runtime,
the page templates, waking the delivery, the signed-in officer, the checked form and "a dossier
this officer may see / act on". Route modules import from here, never from the app factory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlmodel import Session, col
from starlette.datastructures import FormData

from core.messages import render
from core.notices import render_notice
from core.staff import Permission, StaffMember, can
from storage.models import Dossier, StaffUser
from storage.staff import load_staff_async, member
from webhook.errors import refusal
from webhook.runtime import Runtime
from webhook.settings import REPO_ROOT
from webhook.staff_session import COOKIE, csrf_ok, csrf_token, read, same_origin

templates = Jinja2Templates(directory=str(REPO_ROOT / "templates" / "web"))
templates.env.globals["t"] = render
templates.env.globals["render_notice"] = render_notice
LANG = "vi"  # the panel's language


async def get_runtime(request: Request) -> Runtime:
    """Async on purpose: FastAPI runs a plain `def` dependency in a thread, a hop per request."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def wake_delivery(request: Request) -> None:
    """After a commit that wrote outbox messages: in the embedded mode, deliver them now."""
    delivery = request.app.state.delivery
    if delivery is not None:
        delivery.dispatcher.wake.set()


def now() -> datetime:
    return datetime.now(UTC)


def client_address(request: Request) -> str:
    """The address a request came from: the peer, or — behind a reverse proxy — the one the
    proxy names in X-Forwarded-For, which uvicorn applies only for proxies listed in
    FORWARDED_ALLOW_IPS (`--forwarded-allow-ips`; 127.0.0.1 by default)."""
    return request.client.host[:64] if request.client else "unknown"


# --- the signed-in officer ----------------------------------------------------------------------


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
        raise refusal(403, "admin.error.csrf")
    return form


FormDep = Annotated[FormData, Depends(checked_form)]


# --- a dossier this officer may see / act on ---------------------------------------------------


def dossier_to_see(code: str, runtime: RuntimeDep, staff: StaffDep) -> Dossier:
    """The dossier of the path's `code` if this officer may see it; 404 otherwise (no hint that
    it exists). Read apart from the route's own transaction: an action locks and checks again."""
    with Session(runtime.engine) as session:
        dossier = session.execute(
            select(Dossier).where(col(Dossier.code) == code[:64])
        ).scalar_one_or_none()
    if dossier is None or not staff.can(Permission.VIEW_DOSSIERS, dossier.agency_code):
        raise refusal(404, "admin.error.not_found")
    return dossier


SeenDossier = Annotated[Dossier, Depends(dossier_to_see)]


def dossier_to_act_on(form: FormDep, dossier: SeenDossier, staff: StaffDep) -> Dossier:
    """The dossier, when this officer may also act on it (seeing it is not enough); after the
    form's CSRF check, so a forged post learns nothing of the dossier."""
    if not staff.can(Permission.ACT_ON_DOSSIERS, dossier.agency_code):
        raise refusal(403, "admin.error.forbidden")
    return dossier


ActedDossier = Annotated[Dossier, Depends(dossier_to_act_on)]
