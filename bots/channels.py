"""The channel registry: for each `core.channels.Channel`, how to build its sender.

Adding a channel is one transport module (inbound), one sender (outbound), one line here and
one route (docs/architecture.md). A channel whose settings are missing builds no sender: its
notices are "unreachable" and fall back to SMS where `core.channels` says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import httpx

from bots.delivery import (
    MailboxSender,
    MemoryThrottle,
    RedisThrottle,
    Sender,
    TelegramSender,
    Throttle,
)
from bots.onestop import OnestopClient, OnestopSender, make_client, secret_lookup
from bots.sms_gateways import configured_gateway
from bots.staff_alerts import StaffSender
from bots.zalo import ZaloSender, ZaloTemplateSender, ZaloTokens
from bots.zalo_citizen import handle_kept_event
from core.channels import Channel
from core.onestop import Connection, file_link
from core.zalo_templates import load_templates
from storage.models import DocumentFile
from webhook.runtime import Runtime
from webhook.settings import Settings

SenderFactory = Callable[[Runtime, httpx.Client, Throttle], Sender | None]


def _telegram(runtime: Runtime, client: httpx.Client, throttle: Throttle) -> Sender | None:
    settings = runtime.settings
    if settings.telegram_citizen_token is None:
        return None
    return TelegramSender(
        client,
        settings.telegram_citizen_token.get_secret_value(),
        settings.telegram_api_base,
        throttle,
        per_second=settings.telegram_max_per_second,
        per_chat_interval=settings.telegram_per_chat_interval,
    )


def _staff(runtime: Runtime, client: httpx.Client, throttle: Throttle) -> Sender | None:
    """Desk alerts to the officers linked to the staff bot (bots/telegram_staff.py)."""
    settings = runtime.settings
    if settings.telegram_staff_token is None:
        return None
    return StaffSender(
        client,
        settings.telegram_staff_token.get_secret_value(),
        settings.telegram_api_base,
        throttle,
        settings.public_base_url,
        per_second=settings.telegram_max_per_second,
        per_chat_interval=settings.telegram_per_chat_interval,
    )


def _zalo(runtime: Runtime, client: httpx.Client, throttle: Throttle) -> Sender | None:
    return zalo_sender(runtime, client, throttle)


def _zalo_template(runtime: Runtime, client: httpx.Client, throttle: Throttle) -> Sender | None:
    zalo = zalo_sender(runtime, client, throttle)
    return ZaloTemplateSender(zalo) if zalo is not None and zalo.templates else None


def zalo_sender(runtime: Runtime, client: httpx.Client, throttle: Throttle) -> ZaloSender | None:
    """The OA's sender, with its tokens in the database and the notices' template messages
    (`ZALO_TEMPLATES`); None until the OA is configured."""
    settings = runtime.settings
    tokens = zalo_tokens(runtime, client)
    if tokens is None:
        return None
    return ZaloSender(
        client,
        settings.zalo_api_base,
        settings.zalo_business_api_base,
        tokens,
        throttle,
        per_minute=settings.zalo_max_per_minute,
        templates=load_templates(settings.zalo_templates),
    )


def zalo_tokens(runtime: Runtime, client: httpx.Client) -> ZaloTokens | None:
    """The OA's OAuth pair (sender, consent callback, `hcc zalo`); None until it is configured."""
    settings = runtime.settings
    if not settings.zalo_enabled or not settings.zalo_oa_id or settings.zalo_app_secret is None:
        return None
    return ZaloTokens(
        runtime.engine,
        client,
        oauth_base=settings.zalo_oauth_base,
        app_id=settings.zalo_app_id or "",
        app_secret=settings.zalo_app_secret.get_secret_value(),
        oa_id=settings.zalo_oa_id,
    )


def _sms(runtime: Runtime, client: httpx.Client, throttle: Throttle) -> Sender | None:
    """The send API of the gateway `SMS_GATEWAY` names (bots/sms_gateways)."""
    return configured_gateway(runtime.settings).sender(runtime.settings, client)


def _onestop(runtime: Runtime, client: httpx.Client, throttle: Throttle) -> Sender | None:
    """Dossiers to the agencies' one-stop systems (docs/onestop.md); None when no agency of the
    catalog has one."""
    settings = runtime.settings
    if not runtime.flow_rules.onestop:
        return None
    key = settings.secret_key.get_secret_value()

    def file_url(file: DocumentFile) -> str:
        """The object store's own pre-signed URL (S3), else our signed link to
        GET /onestop/files/{id}; both expire after ONESTOP_FILE_URL_SECONDS."""
        seconds = settings.onestop_file_url_seconds
        presigned = runtime.media.presigned_url(file.media_key, seconds)
        if presigned is not None:
            return presigned
        return file_link(settings.public_base_url, key, str(file.id), int(time.time()) + seconds)

    client_for = onestop_client_for(runtime, client)
    return OnestopSender(runtime.engine, runtime.catalog, runtime.onestop, client_for, file_url)


def onestop_client_for(
    runtime: Runtime, client: httpx.Client
) -> Callable[[Connection], OnestopClient]:
    """Builds the client of an agency's one-stop connection (its secrets from the env)."""
    secret = secret_lookup(runtime.settings)
    timeout = runtime.settings.onestop_timeout_seconds
    return lambda connection: make_client(connection, client, secret, timeout=timeout)


def _mailbox(runtime: Runtime, client: httpx.Client, throttle: Throttle) -> Sender:
    return MailboxSender()


SENDERS: dict[Channel, SenderFactory] = {
    Channel.TELEGRAM: _telegram,
    Channel.ZALO: _zalo,
    Channel.ZALO_TEMPLATE: _zalo_template,  # notices outside the chat window, by phone
    Channel.WEB: _mailbox,  # the chat page polls for its messages
    Channel.SMS: _sms,
    Channel.PANEL: _mailbox,  # the panel lists the agency's reminders
    Channel.ONESTOP: _onestop,  # each agency's one-stop information system
    Channel.STAFF: _staff,  # desk alerts on the linked officers' phones
}


# Channels whose events are acknowledged before they are handled (storage.inbound.accept_event):
# how the dispatcher handles one whose web process died first.
KeptEventHandler = Callable[[Runtime, Sender, str, timedelta], bool]
KEPT_EVENTS: dict[Channel, KeptEventHandler] = {Channel.ZALO: handle_kept_event}


def process_throttle(settings: Settings) -> Throttle:
    """The sending limits (Telegram per bot and chat, Zalo per app) as one process sees them:
    in Redis, shared by every process, when configured; else in this process's memory. Build it
    once per process: two memory throttles would each allow the whole rate."""
    if settings.redis_url:
        from redis import Redis

        return RedisThrottle(Redis.from_url(settings.redis_url))
    return MemoryThrottle()


def make_senders(runtime: Runtime, throttle: Throttle) -> dict[str, Sender]:
    """One sender per configured channel, sharing one HTTP client and one throttle."""
    client = httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
    built = {channel: factory(runtime, client, throttle) for channel, factory in SENDERS.items()}
    return {channel: sender for channel, sender in built.items() if sender is not None}
