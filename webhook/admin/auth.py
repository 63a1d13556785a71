"""Sign-in, sign-out, password change."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from core.messages import render
from storage.db import session_scope
from storage.models import StaffUser
from storage.staff import (
    Login,
    StaffError,
    authenticate,
    change_password,
    sign_out,
)
from webhook.admin.pages import redirect, render_page
from webhook.deps import (
    LANG,
    FormDep,
    RuntimeDep,
    StaffDep,
    client_address,
    now,
)
from webhook.errors import refusal
from webhook.staff_session import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    MAX_AGE,
    issue,
    new_login_token,
    same_origin,
    set_cookie,
)

router = APIRouter(prefix="/admin")


@router.get("/login")
def login_page(request: Request, error: str = "") -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_token()
    response = render_page(request, "login", None, login_csrf=token, error=error)
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
        raise refusal(403, "admin.error.csrf")
    username = str(form.get("username") or "")[:200]
    password = str(form.get("password") or "")[:1000]
    address, limit = client_address(request), runtime.settings.rate_limit_login_per_minute

    def check() -> tuple[Login, int | None, int, float]:
        with session_scope(runtime.engine) as session:
            signed = authenticate(session, username, password, now(), address=address,
                                  per_minute=limit)  # fmt: skip
            user = signed.user
            return (signed.result, user.id if user else None,
                    user.session_generation if user else 0, signed.wait_seconds)  # fmt: skip

    result, user_id, generation, wait = await run_in_threadpool(check)  # argon2: off the loop
    if result is Login.LIMITED:
        seconds = max(int(wait + 0.999), 1)
        error = render("admin.login.limited", LANG, seconds=seconds)
        limited = render_page(
            request, "login", None, 429, login_csrf=token, error=error, username=username
        )
        limited.headers["Retry-After"] = str(seconds)
        return limited
    if result is Login.BAD or user_id is None:
        error = render("admin.login.bad", LANG)
        return render_page(
            request, "login", None, 401, login_csrf=token, error=error, username=username
        )
    response = redirect("/admin")
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
    response = redirect("/admin/login")
    response.delete_cookie(COOKIE, path="/admin")
    return response


@router.get("/password")
def password_page(request: Request, staff: StaffDep) -> HTMLResponse:
    return render_page(request, "password", staff)


@router.post("/password")
def password_change(
    request: Request, runtime: RuntimeDep, staff: StaffDep, form: FormDep
) -> Response:
    current, new = str(form.get("current") or ""), str(form.get("new") or "")
    if new != str(form.get("repeat") or ""):
        return render_page(
            request, "password", staff, 400, error=render("admin.error.password_mismatch", LANG)
        )
    try:
        with session_scope(runtime.engine) as session:
            user = session.get(StaffUser, staff.user.id)
            assert user is not None
            change_password(session, user, current, new, address=client_address(request))
            generation = user.session_generation
    except StaffError as error:
        return render_page(request, "password", staff, 400, error=render(error.key, LANG))
    response = redirect("/admin?done=password")
    secret = runtime.settings.secret_key.get_secret_value()
    assert staff.user.id is not None
    set_cookie(response, request, COOKIE, issue(secret, staff.user.id, generation), MAX_AGE)
    return response
