"""The FastAPI application: webhooks, public lookup, health. Routes stay thin and delegate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from webhook.deps import RuntimeDep, get_runtime, templates, wake_delivery
from webhook.limits import BodyLimit
from webhook.logs import install_secret_masking
from webhook.runtime import Runtime, build_runtime
from webhook.security import SecurityHeaders
from webhook.settings import REPO_ROOT, Settings, get_settings

__all__ = ["RuntimeDep", "create_app", "get_runtime", "templates", "wake_delivery"]  # moved


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    from webhook import (
        admin,
        errors,
        health,
        lookup,
        metrics,
        onestop,
        sms,
        telegram,
        webchat,
        zalo,
        zalo_oauth,
    )

    settings = settings or get_settings()
    install_secret_masking(settings)  # before anything can log a token
    runtime = runtime or build_runtime(settings)

    citizen_bot = None
    if settings.telegram_citizen_token is not None:
        from bots.telegram_citizen import make_bot

        token = settings.telegram_citizen_token.get_secret_value()
        citizen_bot = make_bot(token, settings.telegram_api_base)

    staff_bot = None
    if settings.telegram_staff_token is not None:
        from bots.telegram_staff import install_handlers, make_application

        staff_bot = make_application(
            settings.telegram_staff_token.get_secret_value(), settings.telegram_api_base
        )

    from bots.channels import process_throttle

    throttle = process_throttle(settings)  # one per process: the Zalo turns and the outbox share it
    zalo_channel = _zalo_channel(runtime, throttle)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime.async_reader is not None:
            await runtime.async_reader.open()  # its connections belong to this event loop
        if staff_bot is not None:
            from bots.telegram_staff import started

            await started(staff_bot, app.state)  # getMe: the bot's name, for the deep links
        if settings.redis_url is None:  # embedded mode: this process delivers the outbox
            from webhook.jobs import InlineDelivery

            app.state.delivery = InlineDelivery(runtime, throttle)
            app.state.delivery.start()
        try:
            yield
        finally:
            if app.state.delivery is not None:
                app.state.delivery.stop()
            if runtime.async_reader is not None:
                await runtime.async_reader.close()
            if citizen_bot is not None:
                await citizen_bot.session.close()
            if staff_bot is not None and app.state.staff_bot_ready:
                await staff_bot.shutdown()
            if zalo_channel is not None:
                await zalo_channel.downloads.aclose()
                if zalo_channel.api is not None:
                    await zalo_channel.api.aclose()

    # No /openapi.json nor docs pages: they would list every admin route to anyone.
    app = FastAPI(
        title="HCC Intake", openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan
    )
    errors.install(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders, public_base_url=settings.public_base_url)  # outermost
    app.mount("/static", StaticFiles(directory=REPO_ROOT / "static"), name="static")
    app.state.runtime = runtime
    app.state.citizen_bot = citizen_bot
    app.state.zalo = zalo_channel
    app.state.delivery = None
    app.state.citizen_dispatcher = None
    app.state.staff_bot = staff_bot
    app.state.staff_bot_ready = False
    if staff_bot is not None:

        def wake() -> None:
            if app.state.delivery is not None:
                app.state.delivery.dispatcher.wake.set()

        install_handlers(staff_bot, runtime, wake)
    if citizen_bot is not None:
        from bots.telegram_citizen import make_dispatcher

        app.state.citizen_dispatcher = make_dispatcher(runtime)
    app.include_router(health.router)
    app.include_router(lookup.router)
    app.include_router(sms.router)
    telegram.install(app)
    zalo.install(app)
    app.include_router(webchat.router)
    admin.install(app)
    metrics.install(app, runtime)
    app.include_router(zalo_oauth.router)
    app.include_router(onestop.router)
    return app


def _zalo_channel(runtime: Runtime, throttle: Any) -> Any:
    """The Zalo OA of this web process (its turns send their own replies), when configured."""
    if not runtime.settings.zalo_enabled:
        return None
    import httpx

    from bots.channels import zalo_sender
    from bots.zalo import ReplyConnections
    from bots.zalo_citizen import ZaloChannel, downloads_client

    timeout = httpx.Timeout(10.0, connect=5.0)
    sender = zalo_sender(runtime, httpx.Client(timeout=timeout), throttle)
    if sender is None:
        return None
    hosts = runtime.settings.zalo_media_host_list
    # Replies of the webhook's turns go out on the event loop (bots.zalo.ReplyConnections).
    return ZaloChannel(sender, downloads_client(), hosts, ReplyConnections())
