"""Liveness for load balancers and operators: the database, Redis when configured, and the media
store. A media store that cannot take files is reported (`"ok": false`) but answers 200: the
process still serves lookups and text, and taking every web process out of a load balancer for a
shared full disk would stop those too."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from webhook.app import RuntimeDep

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
    return JSONResponse({"ok": healthy, **checks}, status_code=200 if serving else 503)
