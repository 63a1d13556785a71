"""The channel registry: for each `core.channels.Channel`, how to build its sender.

Adding a channel is one transport module (inbound), one sender (outbound), one line here and
one route (docs/architecture.md). A channel whose settings are missing builds no sender: its
notices are "unreachable" and fall back to SMS where `core.channels` says so.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from bots.delivery import MailboxSender, Sender, SmsSender, TelegramSender, Throttle
from core.channels import Channel
from webhook.settings import Settings

SenderFactory = Callable[[Settings, httpx.Client, Throttle], Sender | None]


def _telegram(settings: Settings, client: httpx.Client, throttle: Throttle) -> Sender | None:
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


def _sms(settings: Settings, client: httpx.Client, throttle: Throttle) -> Sender | None:
    if not settings.sms_gateway_url:
        return None
    auth = settings.sms_gateway_auth_header
    return SmsSender(
        client,
        settings.sms_gateway_url,
        auth.get_secret_value() if auth else None,
        settings.sms_gateway_body,
    )


def _mailbox(settings: Settings, client: httpx.Client, throttle: Throttle) -> Sender:
    return MailboxSender()


SENDERS: dict[Channel, SenderFactory] = {
    Channel.TELEGRAM: _telegram,
    Channel.WEB: _mailbox,  # the chat page polls for its messages
    Channel.SMS: _sms,
    Channel.PANEL: _mailbox,  # the panel lists the agency's reminders
}


def make_senders(settings: Settings, throttle: Throttle) -> dict[str, Sender]:
    """One sender per configured channel, sharing one HTTP client and one throttle."""
    client = httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
    built = {channel: factory(settings, client, throttle) for channel, factory in SENDERS.items()}
    return {channel: sender for channel, sender in built.items() if sender is not None}
