"""The channels a message comes in by or goes out on — named once, here.

Each channel is one transport (inbound: verify, parse, translate to the dialogue's `Incoming`)
and one sender (outbound: a `Reply` to the wire), registered in `bots/channels.py`. What this
module holds are the rules that do not depend on a transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from core.notices import RATING_REQUEST


class Channel(StrEnum):
    TELEGRAM = "telegram"  # the citizen bot
    ZALO = "zalo"  # the province's Zalo Official Account (consultation messages, 7-day window)
    ZALO_TEMPLATE = "zalo_template"  # an approved Zalo template message by phone (ZNS)
    WEB = "web"  # the built-in web chat (kiosk, browser): the page polls its mailbox
    SMS = "sms"  # lookups by SMS; notices when no chat can reach the citizen
    PANEL = "panel"  # staff reminders, listed in the admin panel of the recipient agency
    ONESTOP = "onestop"  # the agency's one-stop information system (recipient: agency code)
    STAFF = "staff"  # the staff Telegram bot: alerts to a linked officer's chat (recipient: chat)


# Chat apps the citizen can block or leave: a notice that cannot reach them there goes by SMS.
FALLS_BACK_TO_SMS = frozenset({Channel.TELEGRAM, Channel.ZALO, Channel.ZALO_TEMPLATE})
# Notices that make no sense as an SMS (the rating request needs its 1–5 buttons).
NOT_BY_SMS = frozenset({RATING_REQUEST})


def sms_fallback(channel: str, template: str, phone: str | None) -> bool:
    """Does a notice that could not reach the citizen on `channel` go again by SMS?"""
    return phone is not None and channel in FALLS_BACK_TO_SMS and template not in NOT_BY_SMS


@dataclass(frozen=True)
class Contact:
    """What we know of a citizen on one channel, for deciding whether a notice can go there:
    their last interaction (`ChannelIdentity.last_seen_at`) and since when they cannot be
    reached there (they unfollowed the Official Account), if so."""

    last_seen_at: datetime | None
    unreachable_at: datetime | None
