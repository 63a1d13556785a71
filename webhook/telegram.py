"""POST /webhook/telegram/citizen: the citizen bot's webhook.

A plain Starlette route: Telegram posts JSON and reads a JSON answer, so FastAPI's dependency
and validation layer would only add cost (about a fifth of each update, bench/telegram_intake.py).
"""

from __future__ import annotations

import hmac

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from webhook.runtime import Runtime

PATH = "/webhook/telegram/citizen"


def install(app: FastAPI) -> None:
    app.add_route(PATH, telegram_citizen, methods=["POST"], include_in_schema=False)


async def telegram_citizen(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    bot, dispatcher = request.app.state.citizen_bot, request.app.state.citizen_dispatcher
    secret = runtime.settings.telegram_webhook_secret
    if bot is None or secret is None:
        return JSONResponse({"error": "telegram_not_configured"}, status_code=503)
    given = request.headers.get("x-telegram-bot-api-secret-token", "")
    if not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
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
