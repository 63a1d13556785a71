"""SMS transport: one SMS in (from whichever gateway, bots/sms_gateways), its one reply out.

"HS <code>" looks a dossier up; "DK <code>" subscribes the sending phone to the dossier's
status pushes by SMS, "HUY <code>" stops them; anything else gets the usage line.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bots.sms_gateways import SmsGateway, SmsIn
from core.catalog import Catalog
from core.channels import Channel
from core.qr import lookup_url
from core.sms import (
    SMS_TEXT,
    SmsAsk,
    parse_sms_command,
    status_reply,
    subscribed_reply,
    unknown_code_reply,
    unsubscribed_reply,
    usage_reply,
)
from storage.dossiers import lookup_public_status
from storage.inbound import first_delivery
from storage.outbox import add_message
from storage.sms import dossier_id_by_code, subscribe, unsubscribe


def handle_sms(
    session: Session,
    gateway: SmsGateway,
    sms: SmsIn,
    *,
    catalog: Catalog,
    public_base_url: str,
    at: datetime,
) -> str | None:
    """The reply to one SMS, or None when the gateway delivered it before (the replay guard).
    A gateway that takes replies through its send API gets the reply as an outbox row; the
    guard, a subscription and that row commit together, in the caller's transaction."""
    if not first_delivery(session, Channel.SMS, f"{gateway.name}:{sms.id}"):
        return None
    reply = answer(session, sms.text, sms.sender, catalog=catalog,
                   public_base_url=public_base_url, at=at)  # fmt: skip
    if not gateway.reply_in_answer:
        add_message(session, key=f"sms-reply:{gateway.name}:{sms.id}", channel=Channel.SMS,
                    recipient=sms.sender, template=SMS_TEXT,
                    values={"text": reply, "language": "vi"}, at=at)  # fmt: skip
    return reply


def answer(
    session: Session,
    text: str,
    phone: str,
    *,
    catalog: Catalog,
    public_base_url: str,
    at: datetime,
) -> str:
    """The one SMS that answers `text` from `phone` (84…), after doing what it asks."""
    command = parse_sms_command(text)
    if command is None:
        return usage_reply()
    status = lookup_public_status(session, str(command.code), catalog)
    if status is None:
        return unknown_code_reply(command.code)
    shown = status.official_code or status.code
    match command.ask:
        case SmsAsk.LOOKUP:
            return status_reply(status, lookup_url(public_base_url, status.code))
        case SmsAsk.SUBSCRIBE | SmsAsk.UNSUBSCRIBE:
            dossier_id = dossier_id_by_code(session, status.code)
            assert dossier_id is not None  # the lookup just found it
            if command.ask is SmsAsk.SUBSCRIBE:
                subscribe(session, dossier_id, phone, at)
                return subscribed_reply(shown)
            unsubscribe(session, dossier_id, phone)
            return unsubscribed_reply(shown)
