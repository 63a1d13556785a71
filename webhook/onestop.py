"""The one-stop system's side of the gateway (docs/onestop.md): its status callbacks
(`POST /webhook/onestop`) and the signed, expiring links it fetches a dossier's files by
(`GET /onestop/files/{id}`).

A callback is verified over its raw bytes with the secret of an agency before it is parsed,
then goes through the same state machine as the panel (actor `onestop`) in one transaction with
its replay guard: a message delivered twice is applied once, a refused step changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from bots.onestop import secret_lookup
from core.dossier import DossierRuleError
from core.messages import render
from core.onestop import (
    FieldMapping,
    OnestopError,
    StatusReport,
    file_link_valid,
    read_callback,
    verify_callback,
)
from storage.db import run_db, session_scope
from storage.inbound import first_delivery
from storage.models import DocumentFile
from storage.onestop import apply_report, find_dossier
from webhook.deps import wake_delivery
from webhook.errors import error_response
from webhook.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
REPLAY_CHANNEL = "onestop"


def callback_secrets(runtime: Runtime) -> dict[str, set[str]]:
    """Each callback secret in use, with the agencies it speaks for."""
    lookup = secret_lookup(runtime.settings)
    secrets: dict[str, set[str]] = {}
    for agency in runtime.flow_rules.onestop:
        connection = runtime.onestop.get(agency)
        secret = lookup(connection.callback_secret_env) if connection else None
        if secret:
            secrets.setdefault(secret, set()).add(agency)
    return secrets


# A callback as read with one system's field names, and the agencies that use those names.
Reading = tuple[StatusReport, frozenset[str]]


def _readings(runtime: Runtime, agencies: set[str], parsed: Any) -> list[Reading]:
    """The callback read with the field names of each agency its secret speaks for (one secret
    may serve systems that name their fields differently): each mapping that reads it, with its
    agencies; `OnestopError` (the first mapping's complaint) when none does."""
    by_mapping: list[tuple[FieldMapping, set[str]]] = []
    for agency in sorted(agencies):
        connection = runtime.onestop.get(agency)
        if connection is None:
            continue
        for mapping, names in by_mapping:
            if mapping == connection.mapping:
                names.add(agency)
                break
        else:
            by_mapping.append((connection.mapping, {agency}))
    readings: list[Reading] = []
    first: OnestopError | None = None
    for mapping, names in by_mapping:
        try:
            readings.append((read_callback(parsed, mapping), frozenset(names)))
        except OnestopError as error:
            first = first or error
    if not readings:
        raise first or OnestopError("not_an_object")
    return readings


@router.post("/webhook/onestop")
async def onestop_callback(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    body = await request.body()  # bounded by webhook.limits (a status is a few kilobytes)
    stamp = request.headers.get("x-onestop-timestamp")
    signature = request.headers.get("x-onestop-signature")
    now = datetime.now(UTC)
    agencies = next(
        (
            names
            for secret, names in callback_secrets(runtime).items()
            if verify_callback(secret, stamp, signature, body, now)
        ),
        None,
    )
    if agencies is None:
        log.warning("one-stop callback refused: bad or stale signature")
        return error_response(request, 401, render("onestop.signature", "vi"))
    try:
        parsed: Any = json.loads(body)
        readings = _readings(runtime, agencies, parsed)
    except (ValueError, OnestopError) as error:
        text = error.message("vi") if isinstance(error, OnestopError) else None
        return error_response(request, 400, text or render("onestop.not_json", "vi"))
    replay_key = hashlib.sha256(f"{stamp}.{signature}".encode()).hexdigest()

    def apply() -> Response:
        with session_scope(runtime.engine) as session:
            for report, names in readings:  # the dossier's agency decides whose words these are
                dossier = find_dossier(session, report.code)
                if dossier is not None and dossier.agency_code in names:
                    break
            else:
                return error_response(request, 404, render("onestop.unknown_dossier", "vi",
                                                           code=readings[0][0].code))  # fmt: skip
            if not first_delivery(session, REPLAY_CHANNEL, replay_key):
                return JSONResponse({"ok": True, "repeated": True})
            try:
                decisions = apply_report(
                    session, dossier, report, catalog=runtime.catalog, calendar=runtime.calendar,
                    rules=runtime.flow_rules, at=now,
                )  # fmt: skip
            except DossierRuleError as error:
                session.rollback()
                return error_response(request, 409, error.message("vi"))
            return JSONResponse(
                {"ok": True, "code": dossier.code, "status": dossier.status,
                 "applied": [d.transition.action.value for d in decisions]}
            )  # fmt: skip

    answer = await run_db(runtime.engine, apply, quick=False)
    if answer.status_code == 200:
        wake_delivery(request)  # the citizen's notices, now
    return answer


@router.get("/onestop/files/{file_id}")
async def onestop_file(request: Request, file_id: int) -> Response:
    """One stored file, for the one-stop system holding a link signed for it and not expired."""
    runtime: Runtime = request.app.state.runtime
    key = runtime.settings.secret_key.get_secret_value()
    expires = request.query_params.get("expires", "")
    signature = request.query_params.get("signature", "")
    if not file_link_valid(key, str(file_id), expires, signature, datetime.now(UTC)):
        return error_response(request, 403, render("onestop.link", "vi"))

    def read() -> tuple[bytes, str] | None:
        with session_scope(runtime.engine) as session:
            file = session.get(DocumentFile, file_id)
            if file is None:
                return None
            return runtime.media.get(file.media_key), file.content_type

    found = await run_db(runtime.engine, read, quick=False)
    if found is None:
        return error_response(request, 404)
    data, content_type = found
    return Response(data, media_type=content_type, headers={
        "Content-Disposition": f'attachment; filename="{file_id}"',
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    })  # fmt: skip
