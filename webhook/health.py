"""Liveness for load balancers and operators: the database, Redis when configured, and the media
store, and the Zalo Official Account's token when that channel is on. A media store that cannot
take files, or a Zalo token that is broken or missing, is reported (`"ok": false`) but answers
200: the process still serves lookups and text, and taking every web process out of a load
balancer for a shared full disk or a lapsed OAuth grant would stop those too. The token's state
is shown ("valid until …", "broken: …", "not connected"), never the token."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from storage.db import session_scope
from storage.zalo import token_state
from webhook.deps import RuntimeDep
from webhook.runtime import Runtime

router = APIRouter()


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:  # any failure means unhealthy; say which
        checks["database"] = f"error: {type(error).__name__}"
    if runtime.settings.redis_url:
        try:
            from redis import Redis

            Redis.from_url(runtime.settings.redis_url, socket_timeout=2).ping()
            checks["redis"] = "ok"
        except Exception as error:
            checks["redis"] = f"error: {type(error).__name__}"
    serving = all(value == "ok" for value in checks.values())
    media = runtime.media.problem()
    checks["media"] = "ok" if media is None else f"error: {media}"
    healthy = serving and media is None
    if runtime.settings.zalo_enabled and checks["database"] == "ok":
        checks["zalo"] = zalo_state(runtime)
        healthy = healthy and not checks["zalo"].startswith(("broken", "not connected"))
    return JSONResponse({"ok": healthy, **checks}, status_code=200 if serving else 503)


def zalo_state(runtime: Runtime) -> str:
    """The OA token's state as `storage.zalo.token_state` words it (never the token)."""
    if not runtime.settings.zalo_oa_id:
        return "not connected"
    with session_scope(runtime.engine) as session:
        return token_state(session, runtime.settings.zalo_oa_id, datetime.now(UTC))
