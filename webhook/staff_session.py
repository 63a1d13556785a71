"""Staff sessions and CSRF for the panel: a signed HttpOnly SameSite cookie.

The cookie names the account, when it was issued and the account's session generation
(`StaffUser.session_generation`), checked on every request: sign-out, a password change or a
reset bumps it, and every session issued before ends — a copied cookie is worthless after
sign-out. Every form carries a CSRF token derived from the session cookie; the login form, before
a session exists, uses a double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from fastapi import Request, Response

from webhook.security import is_https

COOKIE = "hcc_staff"
LOGIN_CSRF_COOKIE = "hcc_login_csrf"
MAX_AGE = 12 * 60 * 60  # one working day, then sign in again


def _mac(secret: str, purpose: str, value: str) -> str:
    return hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def issue(secret: str, user_id: int, generation: int, now: float | None = None) -> str:
    body = f"{user_id}.{int(now if now is not None else time.time())}.{generation}"
    return f"{body}.{_mac(secret, 'staff', body)}"


@dataclass(frozen=True)
class SessionClaim:
    user_id: int
    generation: int


def read(secret: str, cookie: str | None, now: float | None = None) -> SessionClaim | None:
    """The claim in a cookie we signed that has not expired; None otherwise."""
    if not cookie or cookie.count(".") != 3:
        return None
    body, mac = cookie.rsplit(".", 1)
    if not hmac.compare_digest(_mac(secret, "staff", body), mac):
        return None
    user_id, issued, generation = body.split(".")
    if not (user_id.isdigit() and issued.isdigit() and generation.isdigit()):
        return None
    if (now if now is not None else time.time()) - int(issued) > MAX_AGE:
        return None
    return SessionClaim(int(user_id), int(generation))


def csrf_token(secret: str, cookie: str) -> str:
    return _mac(secret, "csrf", cookie)[:32]


def csrf_ok(secret: str, cookie: str | None, token: str) -> bool:
    return bool(cookie) and hmac.compare_digest(csrf_token(secret, cookie or ""), token)


def same_origin(request: Request, public_base_url: str) -> bool:
    """A browser's POST says where it comes from; refuse other sites (defence in depth)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    allowed = {str(request.base_url).rstrip("/"), public_base_url.rstrip("/")}
    return origin.rstrip("/") in allowed


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=is_https(request.app.state.runtime.settings.public_base_url),  # not the scheme:
        path="/admin",  # behind a TLS proxy the app itself is reached over plain http
    )


def new_login_token() -> str:
    return secrets.token_urlsafe(24)
