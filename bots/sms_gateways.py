"""The SMS gateways a province may contract, one adapter each, registered in `GATEWAYS`.

Each adapter reads the gateway's incoming (MO) request — verified first: a signature, or a
secret path segment / peer allow-list for the gateways that sign nothing — into one `SmsIn`,
writes our answer in the gateway's own shape, and builds the sender of its send API (the SMS
channel's sender in `bots/channels.py`). `reply_in_answer`: the reply SMS rides on the HTTP
answer (eSMS's XML, Kannel's body, our JSON); otherwise it goes through the send API via the
outbox like any notice (Jasmin, SMSGate). The wire formats: docs/sms.md.

No web framework here: the route (webhook/sms.py) hands over an `HttpIn`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import httpx
from pydantic import BaseModel, Field, SecretStr, ValidationError

from bots.delivery import Sender, SmsSender, sms_gateway_call
from core.replies import Reply
from core.sms import msisdn, sms_parts
from webhook.settings import Settings

MAX_ID = 100  # a gateway's message id (kept prefixed with the gateway's name, ≤ 128)
MAX_TEXT = 1600  # ten SMS parts joined: anything longer is not an SMS


@dataclass(frozen=True)
class HttpIn:
    """The parts of an incoming request an adapter may look at."""

    method: str
    secret: str | None  # the path segment after /webhook/sms/<gateway>/, if any
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes  # bounded by webhook.limits before it is read
    peer: str | None  # the connecting IP address


@dataclass(frozen=True)
class SmsIn:
    """One SMS from a citizen, whatever gateway brought it."""

    id: str
    sender: str  # 84…, core.sms.msisdn
    to: str  # the short code
    text: str
    received_at: str | None = None


@dataclass(frozen=True)
class HttpOut:
    status: int
    body: str
    media_type: str


class Refused(Exception):
    """The request is not answered as an SMS: its status and error code (nothing is stored)."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


class SmsGateway(Protocol):
    name: str
    reply_in_answer: bool

    def read(self, request: HttpIn, settings: Settings, now: float) -> SmsIn | None:
        """The SMS, verified; None for an event that is not one (acknowledged, nothing done);
        raises `Refused`."""
        ...

    def answer(self, sms: SmsIn | None, reply: str | None) -> HttpOut:
        """Our answer to the gateway; `reply` None: nothing to send (a redelivery, an event)."""
        ...

    def sender(self, settings: Settings, client: httpx.Client) -> Sender | None: ...


def sms_in(message_id: Any, sender: Any, to: Any, text: Any, received_at: Any = None) -> SmsIn:
    """An `SmsIn` from a gateway's fields, each bounded; a 422 for what is not an SMS."""
    if not isinstance(message_id, str | int) or not 0 < len(str(message_id)) <= MAX_ID:
        raise Refused(422, "malformed_payload")
    phone = msisdn(sender) if isinstance(sender, str) else None
    if phone is None or not isinstance(text, str) or not isinstance(to, str | int):
        raise Refused(422, "malformed_payload")
    if len(text) > MAX_TEXT:
        raise Refused(413, "too_long")
    return SmsIn(
        str(message_id), phone, str(to)[:32], text, str(received_at)[:40] if received_at else None
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _same(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def allowed_peer(request: HttpIn, secret: str | None, allowed_ips: str) -> None:
    """The check of a gateway that signs nothing: the secret path segment and/or the peer's
    address in the allow-list (IPs or networks, comma-separated). With neither configured the
    route is closed (503): an open SMS webhook would let anyone subscribe anyone."""
    networks = [ipaddress.ip_network(n.strip(), strict=False)
                for n in allowed_ips.split(",") if n.strip()]  # fmt: skip
    if secret is None and not networks:
        raise Refused(503, "sms_not_configured")
    if secret is not None and not _same(secret, request.secret):
        raise Refused(401, "unknown_path")
    if networks:
        try:
            peer = ipaddress.ip_address(request.peer or "")
        except ValueError:
            raise Refused(401, "peer_not_allowed") from None
        if not any(peer in network for network in networks):
            raise Refused(401, "peer_not_allowed")


def _fields(request: HttpIn) -> dict[str, str]:
    """A GET's query, or a POST's form or JSON object (Jasmin posts either)."""
    if request.method == "GET" or not request.body:
        return dict(request.query)
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(request.body)
        except ValueError:
            raise Refused(422, "malformed_payload") from None
        if not isinstance(data, dict):
            raise Refused(422, "malformed_payload")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    return dict(parse_qsl(request.body.decode("ascii", errors="replace"), keep_blank_values=True))


def _recipient(phone: str) -> str:
    return msisdn(phone) or phone


# --- our own JSON (the generic webhook, POST /webhook/sms) ------------------------------------


class InboundSms(BaseModel):
    id: str = Field(min_length=1, max_length=MAX_ID)
    sender: str = Field(alias="from", max_length=32)
    to: str = Field(max_length=32)
    text: str = Field(max_length=MAX_TEXT)
    received_at: str | None = Field(default=None, max_length=40)


def signature_is_valid(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def _generic_sender(settings: Settings, client: httpx.Client) -> Sender | None:
    """The JSON POST of `SMS_GATEWAY_BODY` (also eSMS's send API: docs/sms.md)."""
    if not settings.sms_gateway_url:
        return None
    auth = _secret(settings.sms_gateway_auth_header)
    return SmsSender(client, settings.sms_gateway_url, auth, settings.sms_gateway_body)


class JsonGateway:
    """`{"id","from","to","text","received_at"}` signed `X-Signature: sha256=<HMAC of body>`."""

    name, reply_in_answer = "json", True

    def read(self, request: HttpIn, settings: Settings, now: float) -> SmsIn:
        secret = _secret(settings.sms_webhook_secret)
        if secret is None:
            raise Refused(503, "sms_not_configured")
        if not signature_is_valid(secret, request.body, request.headers.get("x-signature")):
            raise Refused(401, "bad_signature")
        try:
            sms = InboundSms.model_validate_json(request.body)
        except ValidationError:
            raise Refused(422, "malformed_payload") from None
        return sms_in(sms.id, sms.sender, sms.to, sms.text, sms.received_at)

    def answer(self, sms: SmsIn | None, reply: str | None) -> HttpOut:
        body = {"reply": reply} if reply is not None else {"reply": None, "duplicate": True}
        return HttpOut(200, json.dumps(body), "application/json")

    def sender(self, settings: Settings, client: httpx.Client) -> Sender | None:
        return _generic_sender(settings, client)


# --- eSMS.vn short code ----------------------------------------------------------------------


def esms_sign(fields: Mapping[str, str], order: str, private_key: str) -> str:
    """MD5 hex of the fields named in `order` (comma-separated, "key" = the private key)."""
    names = [name.strip() for name in order.split(",") if name.strip()]
    joined = "".join(private_key if name == "key" else fields.get(name, "") for name in names)
    return hashlib.md5(joined.encode()).hexdigest()


class EsmsGateway:
    """GET ?sender&content&serviceNumber&keyword&smsid&receiverTime&cpid&sign; the answer is
    the XML `ClientResponse` whose `Message` eSMS sends back as the reply."""

    name, reply_in_answer = "esms", True

    def read(self, request: HttpIn, settings: Settings, now: float) -> SmsIn:
        key = _secret(settings.esms_private_key)
        if key is None:
            raise Refused(503, "sms_not_configured")
        fields = _fields(request)
        expected = esms_sign(fields, settings.esms_sign_fields, key)
        if not _same(expected, fields.get("sign", "").lower()):
            raise Refused(401, "bad_signature")
        if settings.esms_cpid and fields.get("cpid") != settings.esms_cpid:
            raise Refused(401, "bad_signature")
        return sms_in(fields.get("smsid", ""), fields.get("sender"),
                      fields.get("serviceNumber", ""), fields.get("content"),
                      fields.get("receiverTime"))  # fmt: skip

    def answer(self, sms: SmsIn | None, reply: str | None) -> HttpOut:
        smsid, receiver = (sms.id, sms.sender) if sms is not None else ("", "")
        xml = ('<?xml version="1.0" encoding="utf-8"?><ClientResponse>'
               f"<Message>{escape(reply or '')}</Message><Smsid>{escape(smsid)}</Smsid>"
               f"<Receiver>{escape(receiver)}</Receiver></ClientResponse>")  # fmt: skip
        return HttpOut(200, xml, "application/xml")

    def sender(self, settings: Settings, client: httpx.Client) -> Sender | None:
        return _generic_sender(settings, client)


# --- Jasmin ----------------------------------------------------------------------------------


class JasminSender:
    """Jasmin's HTTP send API (`/send`, form fields); answers `Success "<message id>"`."""

    def __init__(self, client: httpx.Client, settings: Settings) -> None:
        assert settings.jasmin_send_url is not None
        self.client, self.url = client, settings.jasmin_send_url
        self.auth = {"username": settings.jasmin_username or "",
                     "password": _secret(settings.jasmin_password) or ""}  # fmt: skip
        self.origin = {"from": settings.jasmin_from} if settings.jasmin_from else {}

    def send(self, recipient: str, reply: Reply) -> str | None:
        sent = None
        for part in sms_parts(reply.text):
            form = {**self.auth, **self.origin, "to": _recipient(recipient), "content": part}
            response = sms_gateway_call("jasmin", self.client, "POST", self.url, data=form)
            sent = response.text.removeprefix("Success").strip().strip('"')[:64] or None
        return sent


def _jasmin_text(fields: Mapping[str, str]) -> str | None:
    """The SMS text: UCS-2 (coding 8, Vietnamese with diacritics) arrives as hex in `binary`."""
    if fields.get("coding") == "8" and fields.get("binary"):
        try:
            return bytes.fromhex(fields["binary"]).decode("utf-16-be")
        except ValueError:
            raise Refused(422, "malformed_payload") from None
    return fields.get("content")


class JasminGateway:
    """GET or POST (form, JSON) with id, from, to, content, coding, …; answered `ACK/Jasmin`
    (anything else is retried), the reply through Jasmin's send API."""

    name, reply_in_answer = "jasmin", False

    def read(self, request: HttpIn, settings: Settings, now: float) -> SmsIn:
        allowed_peer(request, _secret(settings.jasmin_webhook_secret), settings.jasmin_allowed_ips)
        fields = _fields(request)
        return sms_in(fields.get("id", ""), fields.get("from"), fields.get("to", ""),
                      _jasmin_text(fields))  # fmt: skip

    def answer(self, sms: SmsIn | None, reply: str | None) -> HttpOut:
        return HttpOut(200, "ACK/Jasmin", "text/plain")

    def sender(self, settings: Settings, client: httpx.Client) -> Sender | None:
        return JasminSender(client, settings) if settings.jasmin_send_url else None


# --- Kannel ----------------------------------------------------------------------------------


class KannelSender:
    """Kannel's smsbox `sendsms` (GET); answers 202 `0: Accepted for delivery`."""

    def __init__(self, client: httpx.Client, settings: Settings) -> None:
        assert settings.kannel_sendsms_url is not None
        self.client, self.url = client, settings.kannel_sendsms_url
        self.auth = {"username": settings.kannel_username or "",
                     "password": _secret(settings.kannel_password) or ""}  # fmt: skip
        self.origin = {"from": settings.kannel_from} if settings.kannel_from else {}

    def send(self, recipient: str, reply: Reply) -> None:
        for part in sms_parts(reply.text):
            params = {**self.auth, **self.origin, "to": _recipient(recipient), "text": part}
            sms_gateway_call("kannel", self.client, "GET", self.url, params=params)


class KannelGateway:
    """The `get-url` of an `sms-service`: ?from=%p&to=%P&text=%a&id=%I; the body we answer is
    sent back as the reply (empty: nothing, with `omit-empty = true`)."""

    name, reply_in_answer = "kannel", True

    def read(self, request: HttpIn, settings: Settings, now: float) -> SmsIn:
        allowed_peer(request, _secret(settings.kannel_webhook_secret), settings.kannel_allowed_ips)
        fields = _fields(request)
        return sms_in(fields.get("id", ""), fields.get("from"), fields.get("to", ""),
                      fields.get("text"), fields.get("time"))  # fmt: skip

    def answer(self, sms: SmsIn | None, reply: str | None) -> HttpOut:
        return HttpOut(200, reply or "", "text/plain")

    def sender(self, settings: Settings, client: httpx.Client) -> Sender | None:
        return KannelSender(client, settings) if settings.kannel_sendsms_url else None


# --- SMSGate (android-sms-gateway) -----------------------------------------------------------


class SmsGateSender:
    """The phone's (or the cloud's) send API: POST {api}/message, basic auth."""

    def __init__(self, client: httpx.Client, settings: Settings) -> None:
        assert settings.smsgate_api_url is not None
        self.client, self.url = client, settings.smsgate_api_url.rstrip("/") + "/message"
        self.auth = (settings.smsgate_username or "", _secret(settings.smsgate_password) or "")

    def send(self, recipient: str, reply: Reply) -> str | None:
        sent = None
        for part in sms_parts(reply.text):
            body = {"textMessage": {"text": part}, "phoneNumbers": ["+" + _recipient(recipient)]}
            response = sms_gateway_call(
                "smsgate", self.client, "POST", self.url, json=body, auth=self.auth
            )
            try:
                sent = str(response.json().get("id") or "")[:64] or None
            except ValueError:
                sent = None
        return sent


class SmsGateGateway:
    """JSON `{"event": "sms:received", "payload": {"messageId","message","phoneNumber",…}}`,
    `X-Signature` = hex HMAC-SHA256(raw body + X-Timestamp); stale timestamps refused. Other
    events (sms:sent, sms:delivered, …) are acknowledged and ignored."""

    name, reply_in_answer = "smsgate", False

    def read(self, request: HttpIn, settings: Settings, now: float) -> SmsIn | None:
        key = _secret(settings.smsgate_signing_key)
        if key is None:
            raise Refused(503, "sms_not_configured")
        stamp = request.headers.get("x-timestamp", "")
        if not stamp.isdigit() or abs(now - int(stamp)) > settings.smsgate_max_age_seconds:
            raise Refused(401, "stale_timestamp")
        signed = hmac.new(key.encode(), request.body + stamp.encode(), hashlib.sha256)
        if not _same(signed.hexdigest(), request.headers.get("x-signature", "").lower()):
            raise Refused(401, "bad_signature")
        try:
            event = json.loads(request.body)
        except ValueError:
            raise Refused(422, "malformed_payload") from None
        if not isinstance(event, dict) or not isinstance(event.get("payload"), dict):
            raise Refused(422, "malformed_payload")
        if event.get("event") != "sms:received":
            return None
        payload = event["payload"]
        return sms_in(payload.get("messageId", ""), payload.get("phoneNumber"),
                      str(payload.get("simNumber") or ""), payload.get("message"),
                      payload.get("receivedAt"))  # fmt: skip

    def answer(self, sms: SmsIn | None, reply: str | None) -> HttpOut:
        return HttpOut(200, '{"ok": true}', "application/json")

    def sender(self, settings: Settings, client: httpx.Client) -> Sender | None:
        return SmsGateSender(client, settings) if settings.smsgate_api_url else None


GATEWAYS: dict[str, SmsGateway] = {
    gateway.name: gateway
    for gateway in (
        JsonGateway(),
        EsmsGateway(),
        JasminGateway(),
        KannelGateway(),
        SmsGateGateway(),
    )
}


def configured_gateway(settings: Settings) -> SmsGateway:
    return GATEWAYS[settings.sms_gateway]
