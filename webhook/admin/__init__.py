"""/admin: the one-stop desk's panel, one module per feature; routes translate forms into the
desk's actions (storage.desk_actions) and storage reads.

Every page needs a signed-in staff member (else: the login page); every POST needs the CSRF token
of the session and a same-site Origin; every dossier is looked up within the officer's agency
(`webhook.deps.SeenDossier` / `ActedDossier`), so another agency's dossier is "not found" (404)
whatever the URL says.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from webhook.admin import (
    accounts,
    auth,
    canned,
    deliveries,
    dossiers,
    forms,
    inbox,
    reports,
    telegram,
)
from webhook.admin.pages import redirect
from webhook.deps import LoginRequired, PasswordChangeRequired

router = APIRouter()  # each feature's router has the /admin prefix
for feature in (auth, inbox, dossiers, forms, accounts, canned, deliveries, reports, telegram):
    router.include_router(feature.router)


def install(app: FastAPI) -> None:
    """Mount the panel and its two redirects (not signed in; password to change)."""
    app.include_router(router)

    async def to_login(request: Request, _: Exception) -> Response:
        if request.url.path == "/admin/stamp":
            return JSONResponse({"error": "signed_out"}, status_code=401)
        return redirect("/admin/login")

    async def to_password(request: Request, _: Exception) -> Response:
        return redirect("/admin/password")

    app.add_exception_handler(LoginRequired, to_login)
    app.add_exception_handler(PasswordChangeRequired, to_password)
