"""Public status lookup by dossier code: the page a QR code opens, and its JSON twin."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from core.codes import parse_code
from core.messages import render
from core.qr import lookup_url
from core.sms import usage_reply
from storage.dossiers import find_by_code, public_status
from webhook.app import RuntimeDep, SessionDep, templates

router = APIRouter()


def _language(lang: str | None) -> str:
    return "en" if lang == "en" else "vi"


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


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


@router.get("/lookup/{code}")
def lookup(
    code: str,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    lang: str | None = Query(default=None),
) -> Response:
    language = _language(lang)
    dossier = find_by_code(session, code)
    if dossier is None:
        message = render("lookup.not_found", language, code=code)
        if _wants_json(request):
            return JSONResponse({"error": "not_found", "message": message}, status_code=404)
        return templates.TemplateResponse(
            request,
            "lookup_form.html",
            {"lang": language, "error": message, "code": code},
            status_code=404,
        )
    status = public_status(dossier, runtime.catalog)
    if _wants_json(request):
        return JSONResponse(status.as_json(language))
    return templates.TemplateResponse(
        request,
        "lookup.html",
        {
            "lang": language,
            "status": status,
            "url": lookup_url(runtime.settings.public_base_url, status.code),
        },
    )
