"""What every panel page shares: the page (with the system admin's banners), redirects, dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

import httpx
from fastapi import Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from bots.channels import zalo_tokens
from core.dossier import (
    Action,
)
from core.messages import render
from core.staff import (
    Permission,
)
from storage.db import session_scope
from storage.zalo import get_token
from webhook.deps import (
    LANG,
    Staff,
    templates,
)
from webhook.limits import MAX_ROW_ID
from webhook.runtime import Runtime
from webhook.zalo_oauth import new_consent_link


def render_page(
    request: Request, name: str, staff: Staff | None, status: int = 200, **context: Any
) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    problems: list[SystemProblem] = []  # what the system admin must fix for citizens to be served
    if staff is not None and staff.can(Permission.OPERATE):
        if (media := runtime.media.problem()) is not None:
            problems.append(
                SystemProblem(render("admin.system.media_unavailable", LANG, reason=media))
            )
        if (zalo := _zalo_problem(runtime)) is not None:
            problems.append(zalo)
    return templates.TemplateResponse(
        request,
        f"admin/{name}.html",
        {
            "lang": LANG,
            "staff": staff,
            "catalog": runtime.catalog,
            "Permission": Permission,
            "system_problems": problems,
            "staff_bot": getattr(request.app.state, "staff_bot", None) is not None,
            **context,
        },
        status_code=status,
    )


@dataclass(frozen=True)
class SystemProblem:
    """A banner for the system admin: what is wrong and what to do, with a link when one helps."""

    text: str
    link: str | None = None
    link_label: str | None = None


def _zalo_problem(runtime: Runtime) -> SystemProblem | None:
    """The Zalo channel is on but its OA token is missing or can no longer be refreshed: say so,
    with a fresh consent link for the OA admin (the same as `hcc zalo connect` prints)."""
    settings = runtime.settings
    if not settings.zalo_enabled:
        return None
    stored = None
    if settings.zalo_oa_id:
        with session_scope(runtime.engine) as session:
            stored = get_token(session, settings.zalo_oa_id)
    if stored is not None and stored.broken_reason is None:
        return None
    if stored is None:
        text = render("admin.system.zalo_not_connected", LANG)
    else:
        text = render("admin.system.zalo_broken", LANG, reason=stored.broken_reason)
    with httpx.Client() as client:  # unused: a consent link needs no request to Zalo
        tokens = zalo_tokens(runtime, client)
        if tokens is None:  # the settings lack what a consent link needs: only the CLI helps
            return SystemProblem(text)
        link = new_consent_link(runtime, tokens)
    return SystemProblem(text, link, render("admin.system.zalo_connect", LANG))


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# Dates the panel takes in a filter or a form: a crafted 0001-01-01 or 9999-12-31 is ignored.
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2099, 12, 31)
MAX_PAGE = 10_000  # of the inbox: 50 rows a page, far beyond any agency's dossiers
DONE_NOTICES = {action.value for action in Action} | {"reply"}  # what ?done= may name
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def parse_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def filter_day(text: str) -> date | None:
    """A filter's date; None when missing, not a date, or outside the years the panel serves."""
    day = parse_day(text)
    return day if day is not None and EARLIEST_DAY <= day <= LATEST_DAY else None
