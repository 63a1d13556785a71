"""Fake SMS gateways on 127.0.0.1: the generic outbound one (a JSON POST per SMS, behind a
bearer token), and eSMS.vn, Jasmin, Kannel and SMSGate, each speaking its own wire format."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


class FakeSmsGateway:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.sent: list[dict[str, Any]] = []
        self.failing: list[int] = []  # HTTP status of the next answers
        self.app = Starlette(routes=[Route("/api/sms", self._send, methods=["POST"])])

    async def _send(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if self.failing:
            return JSONResponse({"error": "unavailable"}, status_code=self.failing.pop(0))
        body = await request.json()
        self.sent.append(body)
        return JSONResponse({"id": len(self.sent), "status": "queued"})


# --- The gateways a province contracts (bots/sms_gateways.py; docs/sms.md) ----------------------
# Each fake plays both sides of the real gateway: `mo()` sends a citizen's SMS to our webhook
# the way the gateway does (its own request shape, its own signing), and `app` is its send API.
# `received` is every SMS the citizen's phone gets: replies carried by our answer and messages
# sent through the send API alike, as (phone, text).


def _international(phone: str) -> str:
    phone = phone.removeprefix("+")
    return "84" + phone[1:] if phone.startswith("0") else phone


class _Phones:
    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []  # every SMS the phones got
        self.through_api: list[tuple[str, str]] = []  # those that came through the send API
        self.answers: list[httpx.Response] = []  # our webhook's answers

    def texts(self, phone: str) -> list[str]:
        return [text for to, text in self.received if _international(to) == _international(phone)]

    def _sent(self, phone: str, text: str) -> None:
        self.received.append((phone, text))
        self.through_api.append((phone, text))


class FakeEsms(_Phones):
    """eSMS.vn: a signed GET per MO (`sign` = MD5 of cpid, smsid, content, receiverTime and the
    private key, as its partner document lists them); the `Message` of our XML answer is sent
    as the MT. Its REST send API (SendMultipleMessage_V4_post_json) carries pushes."""

    SEND_PATH = "/MainService.svc/json/SendMultipleMessage_V4_post_json/"

    def __init__(self, private_key: str, cpid: str = "CP7039", api_key: str = "esms-api") -> None:
        super().__init__()
        self.private_key, self.cpid, self.api_key = private_key, cpid, api_key
        self.app = Starlette(routes=[Route(self.SEND_PATH, self._send, methods=["POST"])])

    async def _send(self, request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("ApiKey") != self.api_key:
            return JSONResponse({"CodeResult": "101", "ErrorMessage": "Sai ApiKey"})
        self._sent(body["Phone"], body["Content"])
        return JSONResponse({"CodeResult": "100", "SMSID": f"esms-{len(self.received)}"})

    def mo(self, url: str, sender: str, text: str, smsid: str, *, key: str | None = None) -> int:
        received = "20261207090000"
        signed = self.cpid + smsid + text + received + (key or self.private_key)
        params = {
            "sender": sender, "content": text, "serviceNumber": "7039",
            "keyword": text.split()[0].upper() if text.split() else "", "smsid": smsid,
            "receiverTime": received, "cpid": self.cpid,
            "sign": hashlib.md5(signed.encode()).hexdigest(),
        }  # fmt: skip
        response = httpx.get(url, params=params, timeout=10)
        self.answers.append(response)
        if response.status_code == 200:
            message = ElementTree.fromstring(response.text).findtext("Message") or ""
            if message:
                self.received.append((sender, message))
        return response.status_code


class FakeJasmin(_Phones):
    """Jasmin: each MO to the HTTP connector's URL as GET, form POST or JSON POST, retried
    (here: up to 3 times) until the body is exactly `ACK/Jasmin`; the send API `/send` takes
    username, password, to, content and answers `Success "<uuid>"`."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self.username, self.password = username, password
        self.app = Starlette(routes=[Route("/send", self._send, methods=["GET", "POST"])])

    async def _send(self, request: Request) -> PlainTextResponse:
        form = dict(await request.form()) if request.method == "POST" else request.query_params
        if form.get("username") != self.username or form.get("password") != self.password:
            return PlainTextResponse('Error "Authentication failure"', status_code=403)
        self._sent(str(form["to"]), str(form["content"]))
        return PlainTextResponse(f'Success "{uuid.uuid4()}"')

    def mo(self, url: str, sender: str, text: str, msg_id: str, *, how: str = "form") -> int:
        fields = {"id": msg_id, "from": sender, "to": "7039", "origin-connector": "smpp-vnpt",
                  "priority": "0", "coding": "0", "validity": "", "content": text,
                  "binary": text.encode().hex()}  # fmt: skip
        if any(ord(ch) > 127 for ch in text):  # Vietnamese with diacritics arrives as UCS-2
            fields.update(coding="8", content="", binary=text.encode("utf-16-be").hex())
        status = 0
        for _ in range(3):  # Jasmin retries what is not acknowledged
            if how == "get":
                response = httpx.get(url, params=fields, timeout=10)
            elif how == "json":
                response = httpx.post(url, json=fields, timeout=10)
            else:
                response = httpx.post(url, data=fields, timeout=10)
            self.answers.append(response)
            status = response.status_code
            if status == 200 and response.text == "ACK/Jasmin":
                break
        return status


class FakeKannel(_Phones):
    """Kannel's smsbox: an `sms-service` whose `get-url` (the line docs/sms.md says to paste)
    has its escape codes filled in per MO; a non-empty answer body is sent as the reply. The
    send API `/cgi-bin/sendsms` answers 202 `0: Accepted for delivery`."""

    def __init__(self, get_url: str, username: str, password: str) -> None:
        super().__init__()
        self.get_url, self.username, self.password = get_url, username, password
        self.app = Starlette(routes=[Route("/cgi-bin/sendsms", self._send, methods=["GET"])])

    async def _send(self, request: Request) -> PlainTextResponse:
        query = request.query_params
        if query.get("username") != self.username or query.get("password") != self.password:
            return PlainTextResponse("Authorization failed for sendsms", status_code=403)
        self._sent(query["to"], query["text"])
        return PlainTextResponse("0: Accepted for delivery", status_code=202)

    def mo(self, sender: str, text: str, msg_id: str, *, get_url: str | None = None) -> int:
        codes = {"%p": sender, "%P": "7039", "%a": text, "%I": msg_id, "%k": text[:2]}
        url = get_url or self.get_url
        for code, value in codes.items():
            url = url.replace(code, quote(value, safe=""))
        response = httpx.get(url, timeout=10)
        self.answers.append(response)
        if response.status_code == 200 and response.text:
            self.received.append((sender, response.text))
        return response.status_code


class FakeSmsGate(_Phones):
    """SMSGate (android-sms-gateway): `sms:received` webhooks signed with `X-Signature` = hex
    HMAC-SHA256(raw body + X-Timestamp); the send API POST /message (basic auth) takes
    `{"textMessage": {"text"}, "phoneNumbers"}` and answers 202 with the message's id."""

    def __init__(self, signing_key: str, username: str, password: str) -> None:
        super().__init__()
        self.signing_key, self.username, self.password = signing_key, username, password
        self.app = Starlette(routes=[Route("/message", self._send, methods=["POST"])])

    async def _send(self, request: Request) -> JSONResponse:
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        body = await request.json()
        for phone in body["phoneNumbers"]:
            self._sent(phone, body["textMessage"]["text"])
        return JSONResponse({"id": f"sg-{len(self.received)}", "state": "Pending"}, 202)

    def mo(
        self,
        url: str,
        phone: str,
        text: str,
        message_id: str,
        *,
        event: str = "sms:received",
        timestamp: int | None = None,
        key: str | None = None,
    ) -> int:
        body = json.dumps({
            "deviceId": "ffffffffceb0b1db0000018e937c815b", "event": event,
            "id": "Ey6ECgOkVVFjz3CL",
            "payload": {"messageId": message_id, "message": text, "phoneNumber": phone,
                        "simNumber": 1, "receivedAt": "2026-12-07T09:00:00.000+07:00"},
            "webhookId": "LreFUt-Z3sSq0JufY9uWB",
        }, ensure_ascii=False).encode()  # fmt: skip
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        signature = hmac.new((key or self.signing_key).encode(), body + stamp.encode(),
                             hashlib.sha256).hexdigest()  # fmt: skip
        headers = {"Content-Type": "application/json", "X-Signature": signature,
                   "X-Timestamp": stamp}  # fmt: skip
        response = httpx.post(url, content=body, headers=headers, timeout=10)
        self.answers.append(response)
        return response.status_code
