"""One error layer for the whole app: a refusal or a failure reaches a browser as a Vietnamese
page with a way back, and an API or webhook caller as `{"error": <code>, "message": <text>}`.
A database that cannot answer (down, restarting, a timeout) is a 503 with `Retry-After` — a
"try again later", never an unhandled 500.

Routes keep raising `HTTPException` (with a sentence from templates/messages as `detail` when
they have one to say); a route that answers an error itself (the webhooks' JSON bodies) is left
as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus

import psycopg
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.messages import render
from storage.db import database_unavailable

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5  # what a 503 asks the caller to wait: about one database restart
# Paths whose callers are programs (webhooks, the web chat's and the panel's scripts, probes).
API_PATHS = ("/webhook/", "/chat/api/", "/admin/stamp", "/healthz", "/onestop/")
# The `error` code (and the templates/messages/http.toml key) of each status.
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def wants_page(request: Request) -> bool:
    """A person in a browser (who asked for HTML), rather than a program."""
    if request.url.path.startswith(API_PATHS):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_response(
    request: Request,
    status: int,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The answer for `status`: the page or the JSON body, with `message` or the status's own."""
    language = "en" if request.query_params.get("lang") == "en" else "vi"
    code = ERROR_CODES.get(status, "error")
    text = message or render(f"http.{code}", language)
    if not wants_page(request):
        return JSONResponse({"error": code, "message": text}, status, headers=headers)
    in_panel = request.url.path.startswith("/admin")
    from webhook.deps import templates  # deps raises through `refusal`: imported when needed

    page = templates.get_template("admin/error.html" if in_panel else "error.html").render(
        lang=language,
        staff=None,
        status=status,
        message=text,
        again=_same_address(request) if status == 503 and request.method == "GET" else None,
    )
    return HTMLResponse(page, status, headers=headers)


def _same_address(request: Request) -> str:
    query = request.url.query
    return f"{request.url.path}?{query}" if query else request.url.path


def refusal(status: int, key: str, lang: str = "vi", **values: object) -> HTTPException:
    """A refusal with its sentence (templates/messages `key`), answered by the handlers here:
    `raise refusal(404, "admin.error.not_found")`."""
    return HTTPException(status, render(key, lang, **values))


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    try:
        default = HTTPStatus(error.status_code).phrase  # what Starlette puts when a route gave none
    except ValueError:
        default = ""
    detail = error.detail if isinstance(error.detail, str) and error.detail != default else None
    return error_response(request, error.status_code, detail, error.headers)


async def _invalid_request(request: Request, error: Exception) -> Response:
    return error_response(request, 422)


async def _database_error(request: Request, error: Exception) -> Response:
    if not database_unavailable(error):
        return await _unexpected(request, error)
    log.warning(
        "database unavailable for %s %s: %s", request.method, request.url.path, type(error).__name__
    )
    return error_response(request, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _unexpected(request: Request, error: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return error_response(request, 500)


def install(app: FastAPI) -> None:
    """Register the handlers on `app` (the app factory calls this once)."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    for database_error in (exc.DBAPIError, exc.TimeoutError, psycopg.Error):
        app.add_exception_handler(database_error, _database_error)
    app.add_exception_handler(Exception, _unexpected)
