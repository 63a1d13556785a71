"""SMS gateway transport: verify the gateway's signature, answer "HS <code>" lookups.

The gateway POSTs JSON `{"id","from","to","text","received_at"}` signed with
`X-Signature: sha256=<hex HMAC-SHA256 of the raw body>`; our reply travels back in the response.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import BaseModel, Field
from sqlmodel import Session

from core.catalog import Catalog
from core.qr import lookup_url
from core.sms import parse_lookup_request, status_reply, unknown_code_reply, usage_reply
from storage.dossiers import lookup_public_status


class InboundSms(BaseModel):
    id: str = Field(min_length=1, max_length=128)
    sender: str = Field(alias="from", max_length=32)
    to: str = Field(max_length=32)
    text: str = Field(max_length=1600)
    received_at: str | None = None


def signature_is_valid(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def answer(session: Session, text: str, *, catalog: Catalog, public_base_url: str) -> str:
    """The one SMS that answers this text."""
    code = parse_lookup_request(text)
    if code is None:
        return usage_reply()
    status = lookup_public_status(session, str(code), catalog)
    if status is None:
        return unknown_code_reply(code)
    return status_reply(status, lookup_url(public_base_url, status.code))
