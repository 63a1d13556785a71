"""Public status lookup by dossier code: the page a QR code opens, and its JSON twin."""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from core.codes import parse_code
from core.lookup import PublicStatus
from core.messages import render
from core.sms import usage_reply
from storage.db import compiled_for_psycopg
from storage.dossiers import (
    PUBLIC_STATUS_QUERY,
    PUBLIC_STEPS_QUERY,
    lookup_public_status_sqlite,
    public_status_from_row,
    public_status_params,
    steps_params,
    with_steps,
)
from webhook.deps import templates
from webhook.runtime import Runtime

router = APIRouter()
# The status page compiled once, with its base, in an overlay of the app's environment that does
# not stat the template files on every render (a process restart picks up an edited template).
_STATUS_PAGE = templates.env.overlay(auto_reload=False).get_template("lookup.html")
_PUBLIC_STATUS_SQL = compiled_for_psycopg(PUBLIC_STATUS_QUERY)
_PUBLIC_STEPS_SQL = compiled_for_psycopg(PUBLIC_STEPS_QUERY)


async def _public_status(runtime: Runtime, code: str) -> PublicStatus | None:
    if runtime.async_reader is None:  # SQLite: an in-process read, cheaper inline than a hop
        return lookup_public_status_sqlite(runtime.reader, code, runtime.catalog)
    params = public_status_params(code)
    if params is None:
        return None
    async with runtime.async_reader.connection() as connection:
        cursor = await connection.execute(_PUBLIC_STATUS_SQL, params, prepare=True)
        row = await cursor.fetchone()
        if row is None:
            return None
        status = public_status_from_row(row, runtime.catalog)
        cursor = await connection.execute(_PUBLIC_STEPS_SQL, steps_params(status), prepare=True)
        return with_steps(status, await cursor.fetchall())


def _language(lang: str | None) -> str:
    return "en" if lang == "en" else "vi"


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


# A code the one-stop system gave (its format differs by province): letters, digits, . and -
OFFICIAL_CODE = re.compile(r"[A-Z0-9][A-Z0-9.\-]{3,63}")


@router.get("/lookup")
def lookup_form(
    request: Request, code: str | None = None, lang: str | None = Query(default=None)
) -> Response:
    language = _language(lang)
    if code is None or not code.strip():
        return templates.TemplateResponse(
            request, "lookup_form.html", {"lang": language, "error": None, "code": ""}
        )
    parsed = parse_code(code)
    official = code.strip().upper()
    if parsed is None and OFFICIAL_CODE.fullmatch(official):  # the one-stop system's own code
        return RedirectResponse(f"/lookup/{quote(official, safe='')}", status_code=303)
    if parsed is None:
        error = render("lookup.bad_code", language, example=usage_reply())
        return templates.TemplateResponse(
            request,
            "lookup_form.html",
            {"lang": language, "error": error, "code": code},
            status_code=400,
        )
    suffix = "?lang=en" if language == "en" else ""
    return RedirectResponse(f"/lookup/{parsed}{suffix}", status_code=303)


async def lookup(request: Request) -> Response:
    """GET /lookup/<code>: a plain Starlette route (added below), as the Telegram webhook is.

    Hot path (every QR scan): one indexed point query on the event loop, no dependency or
    query-parameter layer (about a sixth of each lookup's CPU, bench/lookup.py), no ORM.
    """
    runtime: Runtime = request.app.state.runtime
    code: str = request.path_params["code"]
    language = _language(request.query_params.get("lang"))
    status = await _public_status(runtime, code)
    if status is None:
        message = render("lookup.not_found", language, code=code)
        if _wants_json(request):
            return JSONResponse({"error": "not_found", "message": message}, status_code=404)
        return templates.TemplateResponse(
            request,
            "lookup_form.html",
            {"lang": language, "error": message, "code": code},
            status_code=404,
        )
    if _wants_json(request):
        return JSONResponse(status.as_json(language))
    page = _STATUS_PAGE.render(lang=language, status=status)
    return HTMLResponse(page)


router.add_route("/lookup/{code}", lookup, methods=["GET"], include_in_schema=False)
