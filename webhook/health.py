"""Liveness for load balancers and operators: the database, and Redis when configured."""

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
    healthy = all(value == "ok" for value in checks.values())
    return JSONResponse({"ok": healthy, **checks}, status_code=200 if healthy else 503)
