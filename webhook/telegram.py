"""POST /webhook/telegram/citizen and /webhook/telegram/staff: the two bots' webhooks, each
with its own secret header.

A plain Starlette route: Telegram posts JSON and reads a JSON answer, so FastAPI's dependency
and validation layer would only add cost (about a fifth of each update, bench/telegram_intake.py).
"""

from __future__ import annotations

import hmac
import json

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from webhook.runtime import Runtime

PATH = "/webhook/telegram/citizen"
STAFF_PATH = "/webhook/telegram/staff"


def install(app: FastAPI) -> None:
    app.add_route(PATH, telegram_citizen, methods=["POST"], include_in_schema=False)
    app.add_route(STAFF_PATH, telegram_staff, methods=["POST"], include_in_schema=False)


def _secret_ok(request: Request, secret: str) -> bool:
    given = request.headers.get("x-telegram-bot-api-secret-token", "")
    return hmac.compare_digest(given.encode(), secret.encode())


async def telegram_citizen(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    bot, dispatcher = request.app.state.citizen_bot, request.app.state.citizen_dispatcher
    secret = runtime.settings.telegram_webhook_secret
    if bot is None or secret is None:
        return JSONResponse({"error": "telegram_not_configured"}, status_code=503)
    if not _secret_ok(request, secret.get_secret_value()):
        return JSONResponse({"error": "bad_secret"}, status_code=401)
    from bots.telegram_citizen import handle_update, read_update  # aiogram: only with a bot

    try:
        update = read_update(bot, await request.body())
    except ValueError:  # not JSON, or not an update (pydantic's errors are ValueErrors)
        return JSONResponse({"error": "malformed_update"}, status_code=400)
    answer = await handle_update(runtime, bot, dispatcher, update)
    if answer is not None:  # Telegram runs this method as if we had called it
        return Response(answer, media_type="application/json")
    return JSONResponse({"ok": True})


async def telegram_staff(request: Request) -> Response:
    """The staff bot: the secret, the replay guard, then the update through its handlers, in
    the request (a handler's failure is logged by the application; the update is not rerun)."""
    runtime: Runtime = request.app.state.runtime
    application = request.app.state.staff_bot
    secret = runtime.settings.telegram_staff_webhook_secret
    if application is None or secret is None:
        return JSONResponse({"error": "telegram_not_configured"}, status_code=503)
    if not _secret_ok(request, secret.get_secret_value()):
        return JSONResponse({"error": "bad_secret"}, status_code=401)
    from bots.telegram_staff import first_time, new_update, started  # PTB: with a staff bot

    if not await started(application, request.app.state):
        return JSONResponse({"error": "telegram_unreachable"}, status_code=503)  # resent later
    try:
        update = new_update(application, json.loads(await request.body()))
    except ValueError:
        return JSONResponse({"error": "malformed_update"}, status_code=400)
    if await run_in_threadpool(first_time, runtime, update.update_id):
        await application.process_update(update)
    return JSONResponse({"ok": True})
