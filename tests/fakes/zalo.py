"""A fake Zalo on 127.0.0.1: the OA OpenAPI, OAuth v4 and the business (template message) host,
speaking the real wire format, plus signed webhook events built exactly as Zalo sends them.

Every path of the three hosts is distinct, so one app serves them all: tests point
`ZALO_API_BASE`, `ZALO_OAUTH_BASE` and `ZALO_BUSINESS_API_BASE` at the same live server.
OpenAPI answers are `{"error": 0, "message": "Success", "data": ...}` and errors come with
HTTP 200 and a non-zero `error`; OAuth answers the token fields bare. Attachment files are served
by `FakeZaloMedia`, a second live server whose URLs go into the events (the "CDN").
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import os
import secrets
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ZALO_APP_ID = "3608465249409039670"
ZALO_APP_SECRET = "app-secret-key-1"
ZALO_OA_ID = "3886132808788086450"
ZALO_OA_SECRET = "oa-webhook-secret-1"
ZALO_USER_ID = "2468458835296197922"

ERRORS = {  # Zalo's messages for the codes the fake answers
    -32: "Request exceeds the rate limit",
    -108: "Phone number is invalid",
    -124: "Access token is invalid",
    -131: "Template is not approved",
    -133: "Cannot send template message at night",
    -144: "Daily quota exceeded",
    -201: "Parameters are invalid",
    -210: "Parameter exceeds the limit",
    -213: "User has not followed the OA",
    -216: "Access token is invalid",
    -220: "Access token has expired",
    -230: "User has not interacted with the OA in the last 7 days",
}
BUTTON_TYPES = {"oa.query.show", "oa.query.hide", "oa.open.url", "oa.open.phone", "oa.open.sms"}
IMAGE_LIMIT, FILE_LIMIT = 1_000_000, 5_000_000


def _ok(data: Any) -> JSONResponse:
    return JSONResponse({"error": 0, "message": "Success", "data": data})


def _error(code: int, message: str | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message or ERRORS.get(code, "Error")})


class Refused(Exception):
    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message or ERRORS.get(code, "Error"))
        self.code = code


@dataclass
class Template:
    """A template message approved on the business host (template/info/v2)."""

    params: list[str]
    status: str = "ENABLE"
    required: set[str] = field(default_factory=set)


class FakeZalo:
    def __init__(
        self,
        app_id: str = ZALO_APP_ID,
        app_secret: str = ZALO_APP_SECRET,
        oa_id: str = ZALO_OA_ID,
        *,
        require_button_template_type: bool = False,
    ) -> None:
        self.app_id, self.app_secret, self.oa_id = app_id, app_secret, oa_id
        self.require_button_template_type = require_button_template_type
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.access_tokens: set[str] = set()  # valid now
        self.expired_tokens: set[str] = set()  # answered -220 (-124 on the business host)
        self.refresh_tokens: set[str] = set()  # not yet spent
        self.spent_refresh_tokens: set[str] = set()
        self.codes: dict[str, str] = {}  # authorization code → PKCE code_challenge
        self.refresh_calls = 0  # successful refreshes
        self.refused_refreshes = 0
        self.refresh_delay = 0.0  # seconds a refresh takes (widens races in tests)
        self.errors: dict[str, list[int]] = defaultdict(list)  # path → codes of the next calls
        self.blocked: set[str] = set()  # users who unfollowed (-213)
        self.out_of_window: set[str] = set()  # users silent for more than 7 days (-230)
        self.night = False  # template messages refused (-133)
        self.messages: list[dict[str, Any]] = []  # bodies of delivered /message/cs calls
        self.images: dict[str, bytes] = {}  # attachment_id → uploaded image
        self.files: dict[str, tuple[str, bytes]] = {}  # token → (file name, content)
        self.templates: dict[str, Template] = {}
        self.template_messages: list[dict[str, Any]] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []  # every path called, in order
        self.app = Starlette(
            routes=[
                Route("/v3.0/oa/message/cs", self._message_cs, methods=["POST"]),
                Route("/v2.0/oa/upload/image", self._upload_image, methods=["POST"]),
                Route("/v2.0/oa/upload/file", self._upload_file, methods=["POST"]),
                Route("/v3.0/oa/user/detail", self._user_detail, methods=["GET"]),
                Route("/v4/oa/access_token", self._access_token, methods=["POST"]),
                Route("/message/template", self._template_message, methods=["POST"]),
                Route("/template/info/v2", self._template_info, methods=["GET"]),
                Route("/_delivered", self._delivered, methods=["GET"]),
            ]
        )

    async def _delivered(self, request: Request) -> Response:
        """For benchmarks running the fake in its own process: how many messages arrived."""
        return JSONResponse({"messages": len(self.messages)})

    # ------------------------------------------------------------------ knobs for tests

    def issue_pair(self) -> tuple[str, str]:
        """A valid access/refresh pair, as if the OA admin had just connected the app."""
        with self._lock:
            return self._new_pair()

    def grant_code(self, code_challenge: str) -> str:
        """The code the consent page would hand the callback for this PKCE challenge."""
        code = f"code-{secrets.token_hex(8)}"
        self.codes[code] = code_challenge
        return code

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires (the next call answers -220)."""
        with self._lock:
            self.expired_tokens |= self.access_tokens
            self.access_tokens.clear()

    def queue_errors(self, path: str, *codes: int) -> None:
        """The next calls of `path` (e.g. "/v3.0/oa/message/cs") answer these error codes."""
        self.errors[path].extend(codes)

    def texts(self) -> list[str]:
        return [m["message"].get("text", "") for m in self.messages]

    # ------------------------------------------------------------------ OpenAPI

    def _new_pair(self) -> tuple[str, str]:
        access, refresh = f"at-{secrets.token_hex(12)}", f"rt-{secrets.token_hex(12)}"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return access, refresh

    def _check(self, request: Request, *, business: bool = False) -> None:
        """The bare `access_token` header, then any queued error for this path."""
        self.calls.append(request.url.path)
        token = request.headers.get("access_token", "")
        if token not in self.access_tokens:
            if business:
                raise Refused(-124)
            raise Refused(-220 if token in self.expired_tokens else -216)
        queued = self.errors.get(request.url.path)
        if queued:
            raise Refused(queued.pop(0))

    async def _message_cs(self, request: Request) -> Response:
        try:
            self._check(request)
            body = json.loads(await request.body())
            user = _string(body.get("recipient", {}).get("user_id"))
            message = body.get("message")
            if not isinstance(message, dict):
                raise Refused(-201, "message is required")
            self._check_message(message)
            if user in self.blocked:
                raise Refused(-213)
            if user in self.out_of_window:
                raise Refused(-230)
        except Refused as refused:
            return _error(refused.code, str(refused))
        self.messages.append(body)
        return _ok({"message_id": secrets.token_hex(16), "user_id": user})

    def _check_message(self, message: dict[str, Any]) -> None:
        text = message.get("text", "")
        if not isinstance(text, str):
            raise Refused(-201, "text must be a string")
        if len(text) > 2000:
            raise Refused(-210, "text exceeds 2000 characters")
        attachment = message.get("attachment")
        if attachment is None:
            if not text:
                raise Refused(-201, "text is required")
            return
        kind, payload = attachment.get("type"), attachment.get("payload") or {}
        if kind == "file":
            if payload.get("token") not in self.files:
                raise Refused(-201, "file token is invalid")
            return
        if kind != "template":
            raise Refused(-201, f"attachment type {kind!r} is invalid")
        template_type = payload.get("template_type")
        if template_type == "media":
            elements = payload.get("elements") or []
            if len(elements) != 1 or elements[0].get("media_type") != "image":
                raise Refused(-201, "media template takes one image element")
            if elements[0].get("attachment_id") not in self.images:
                raise Refused(-201, "attachment_id is invalid")
        elif template_type == "request_user_info":
            elements = payload.get("elements") or []
            if len(elements) != 1 or not _string(elements[0].get("title")):
                raise Refused(-201, "request_user_info takes one element with a title")
            if len(elements[0]["title"]) > 100 or len(elements[0].get("subtitle", "")) > 500:
                raise Refused(-210, "title or subtitle too long")
        elif "buttons" in payload:
            if self.require_button_template_type and template_type != "button":
                raise Refused(-201, "template_type is required")
            self._check_buttons(text, payload["buttons"])
        else:
            raise Refused(-201, f"template_type {template_type!r} is invalid")

    @staticmethod
    def _check_buttons(text: str, buttons: Any) -> None:
        if not text:
            raise Refused(-201, "text is required with buttons")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 5:
            raise Refused(-201, "between 1 and 5 buttons")
        for button in buttons:
            if button.get("type") not in BUTTON_TYPES:
                raise Refused(-201, f"button type {button.get('type')!r} is invalid")
            title = _string(button.get("title"))
            if len(title) > 100:
                raise Refused(-210, "button title too long")
            payload = button.get("payload")
            if button["type"].startswith("oa.query."):
                if not isinstance(payload, str) or not payload:
                    raise Refused(-201, "query button payload must be a string")
                if len(payload) > 1000:
                    raise Refused(-210, "button payload exceeds 1000 characters")
            elif not isinstance(payload, dict):
                raise Refused(-201, "button payload must be an object")

    async def _upload(self, request: Request) -> tuple[str, bytes]:
        self._check(request)
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Refused(-201, "file is required")
        return upload.filename or "", await upload.read()

    async def _upload_image(self, request: Request) -> Response:
        try:
            _, content = await self._upload(request)
            if not content.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")):
                raise Refused(-201, "image must be jpg or png")
            if len(content) > IMAGE_LIMIT:
                raise Refused(-210, "image exceeds 1MB")
        except Refused as refused:
            return _error(refused.code, str(refused))
        attachment_id = secrets.token_urlsafe(24)
        self.images[attachment_id] = content
        return _ok({"attachment_id": attachment_id})

    async def _upload_file(self, request: Request) -> Response:
        try:
            name, content = await self._upload(request)
            if not content.startswith((b"%PDF-", b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
                raise Refused(-201, "file must be pdf, doc or docx")
            if len(content) > FILE_LIMIT:
                raise Refused(-210, "file exceeds 5MB")
        except Refused as refused:
            return _error(refused.code, str(refused))
        token = secrets.token_urlsafe(24)
        self.files[token] = (name, content)
        return _ok({"token": token})

    async def _user_detail(self, request: Request) -> Response:
        try:
            self._check(request)
            user = _string(json.loads(request.query_params.get("data", "{}")).get("user_id"))
            profile = self.users.get(user)
            if profile is None:
                raise Refused(-201, "user_id is invalid")
        except (Refused, ValueError) as error:
            return _error(getattr(error, "code", -201), str(error))
        return _ok({"user_id": user, "user_is_follower": user not in self.blocked, **profile})

    # ------------------------------------------------------------------ OAuth v4

    async def _access_token(self, request: Request) -> Response:
        self.calls.append(request.url.path)
        form = await request.form()
        if request.headers.get("secret_key") != self.app_secret:
            return _oauth_error(-14002, "Invalid secret key")
        if form.get("app_id") != self.app_id:
            return _oauth_error(-14001, "Invalid app id")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            challenge = self.codes.pop(str(form.get("code", "")), None)
            verifier = str(form.get("code_verifier", ""))
            if challenge is None:
                return _oauth_error(-14019, "Invalid authorization code")
            if pkce_challenge(verifier) != challenge:
                return _oauth_error(-14018, "Invalid code verifier")
            with self._lock:
                access, refresh = self._new_pair()
        elif grant == "refresh_token":
            if self.refresh_delay:
                await asyncio.sleep(self.refresh_delay)
            with self._lock:
                token = str(form.get("refresh_token", ""))
                if token not in self.refresh_tokens:
                    self.refused_refreshes += 1
                    return _oauth_error(-14014, "Invalid refresh token")
                self.refresh_tokens.discard(token)  # single-use: it rotates
                self.spent_refresh_tokens.add(token)
                self.refresh_calls += 1
                access, refresh = self._new_pair()
        else:
            return _oauth_error(-14003, "Invalid grant type")
        return JSONResponse(
            {"access_token": access, "refresh_token": refresh, "expires_in": "90000"}
        )

    # ------------------------------------------------------------------ business host (ZNS)

    async def _template_message(self, request: Request) -> Response:
        try:
            self._check(request, business=True)
            body = json.loads(await request.body())
            phone = _string(body.get("phone"))
            if not (phone.startswith("84") and phone.isdigit() and len(phone) == 11):
                raise Refused(-108)
            template = self.templates.get(_string(body.get("template_id")))
            if template is None or template.status != "ENABLE":
                raise Refused(-131)
            data = body.get("template_data")
            if not isinstance(data, dict) or set(data) - set(template.params):
                raise Refused(-201, "template_data does not match the template's parameters")
            if template.required - set(data):
                raise Refused(-201, "template_data misses required parameters")
            if len(_string(body.get("tracking_id"))) > 48:
                raise Refused(-201, "tracking_id exceeds 48 characters")
            if self.night:
                raise Refused(-133)
        except Refused as refused:
            return _error(refused.code, str(refused))
        self.template_messages.append(body)
        msg_id = secrets.token_hex(16)
        return _ok(
            {
                "msg_id": msg_id,
                "sent_time": str(int(time.time() * 1000)),
                "quota": {"dailyQuota": "500", "remainingQuota": "499"},
            }
        )

    async def _template_info(self, request: Request) -> Response:
        try:
            self._check(request, business=True)
            template_id = request.query_params.get("template_id", "")
            template = self.templates.get(template_id)
            if template is None:
                raise Refused(-201, "template_id is invalid")
        except Refused as refused:
            return _error(refused.code, str(refused))
        params = [
            {
                "name": name,
                "require": name in template.required,
                "type": "STRING",
                "maxLength": 100,
                "minLength": 0,
                "acceptNull": name not in template.required,
            }
            for name in template.params
        ]
        return _ok(
            {
                "templateId": template_id,
                "templateName": f"Template {template_id}",
                "status": template.status,
                "listParams": params,
            }
        )


def _oauth_error(code: int, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": code, "error_name": description, "error_description": description}
    )


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise Refused(-201, "a string parameter is missing")
    return value


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def zalo_settings(base: str) -> dict[str, Any]:
    """The Settings fields that point the product's Zalo channel at a fake served at `base`."""
    from pydantic import SecretStr

    return {
        "zalo_app_id": ZALO_APP_ID,
        "zalo_app_secret": SecretStr(ZALO_APP_SECRET),
        "zalo_oa_id": ZALO_OA_ID,
        "zalo_oa_secret_key": SecretStr(ZALO_OA_SECRET),
        "zalo_api_base": base,
        "zalo_oauth_base": base,
        "zalo_business_api_base": base,
    }


def app_from_env() -> Starlette:
    """For benchmarks: `uvicorn --factory tests.fakes.zalo:app_from_env`; FAKE_ZALO_ACCESS_TOKEN
    is a valid access token from the start (the bench stores it as the OA's)."""
    fake = FakeZalo()
    fake.access_tokens.add(os.environ["FAKE_ZALO_ACCESS_TOKEN"])
    return fake.app


class FakeZaloMedia:
    """Zalo's attachment CDN: files served at /<name>, every request counted."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.app = Starlette(routes=[Route("/{name:path}", self._file, methods=["GET"])])

    async def _file(self, request: Request) -> Response:
        self.requests.append(request.url.path)
        content = self.files.get(request.path_params["name"])
        if content is None:
            return Response(status_code=404)
        return Response(content, media_type="application/octet-stream")


class ZaloEvents:
    """Webhook events from one follower, shaped and signed as Zalo sends them.

    `clock` gives the events' time (epoch seconds); `signed(event)` is what arrives on the wire:
    the exact body bytes and the `X-ZEvent-Signature` header over them."""

    def __init__(
        self,
        user_id: str = ZALO_USER_ID,
        *,
        app_id: str = ZALO_APP_ID,
        oa_id: str = ZALO_OA_ID,
        secret: str = ZALO_OA_SECRET,
        clock: Any = time.time,
    ) -> None:
        self.user_id, self.app_id, self.oa_id, self.secret = user_id, app_id, oa_id, secret
        self.clock = clock
        self._ids = itertools.count(1)

    def _timestamp(self) -> str:
        return str(int(self.clock() * 1000))

    def _msg_id(self) -> str:
        return hashlib.md5(f"{self.user_id}:{next(self._ids)}".encode()).hexdigest()

    def _user_event(self, event_name: str, message: dict[str, Any] | None) -> dict[str, Any]:
        event: dict[str, Any] = {
            "app_id": self.app_id,
            "user_id_by_app": f"55{self.user_id[2:]}",
            "event_name": event_name,
            "sender": {"id": self.user_id},
            "recipient": {"id": self.oa_id},
        }
        if message is not None:
            event["message"] = message
        event["timestamp"] = self._timestamp()
        return event

    def text(self, text: str) -> dict[str, Any]:
        return self._user_event("user_send_text", {"msg_id": self._msg_id(), "text": text})

    def button(self, payload: str) -> dict[str, Any]:
        """A tap on an `oa.query.*` button: Zalo sends its payload as the user's text."""
        return self.text(payload)

    def images(self, *urls: str, caption: str = "") -> dict[str, Any]:
        attachments = [
            {"type": "image", "payload": {"thumbnail": f"{url}?thumb=1", "url": url}}
            for url in urls
        ]
        message = {"msg_id": self._msg_id(), "attachments": attachments}
        return self._user_event("user_send_image", message | ({"text": caption} if caption else {}))

    def file(self, url: str, name: str, size: int) -> dict[str, Any]:
        payload = {
            "url": url,
            "name": name,
            "size": str(size),
            "type": name.rsplit(".", 1)[-1],
            "checksum": hashlib.md5(url.encode()).hexdigest(),
        }
        message = {"msg_id": self._msg_id(), "attachments": [{"type": "file", "payload": payload}]}
        return self._user_event("user_send_file", message)

    def location(
        self, latitude: float, longitude: float, place: str = "", *, as_numbers: bool = False
    ) -> dict[str, Any]:
        """Coordinates as strings, as seen from Zalo; `as_numbers` for the other form (⚠)."""
        coordinates: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
        if not as_numbers:
            coordinates = {"latitude": str(latitude), "longitude": str(longitude)}
        message = {
            "msg_id": self._msg_id(),
            "text": place,
            "attachments": [{"type": "location", "payload": {"coordinates": coordinates}}],
        }
        return self._user_event("user_send_location", message)

    def sticker(self) -> dict[str, Any]:
        payload = {"id": "a1b2", "url": "https://zalo-api.zadn.vn/api/emoticon/sticker/webpc?eid=1"}
        message = {
            "msg_id": self._msg_id(),
            "attachments": [{"type": "sticker", "payload": payload}],
        }
        return self._user_event("user_send_sticker", message)

    def submit_info(self, name: str, phone: str, shape: str = "nested") -> dict[str, Any]:
        """The answer to a request_user_info template, in one of the three shapes seen:
        "nested" (full_address), "flat" (address, city, district, ward) or "text" (JSON)."""
        if shape == "text":
            info = {"name": name, "phone": phone, "address": "12 Nguyễn Trãi"}
            message = {"msg_id": self._msg_id(), "text": json.dumps(info, ensure_ascii=False)}
            return self._user_event("user_submit_info", message)
        if shape == "nested":
            info = {
                "name": name,
                "phone": phone,
                "user_dob": "02/09/1990",
                "gender": "female",
                "full_address": {
                    "user_city": "Tây Ninh",
                    "user_ward": "Phường 1",
                    "user_address": "12 Nguyễn Trãi",
                },
            }
        else:
            info = {
                "name": name,
                "phone": phone,
                "address": "12 Nguyễn Trãi",
                "city": "Tây Ninh",
                "district": "Thành phố Tây Ninh",
                "ward": "Phường 1",
            }
        event = self._user_event("user_submit_info", None)
        event["info"] = info
        return event

    def follow(self, event_name: str = "follow") -> dict[str, Any]:
        return {
            "oa_id": self.oa_id,
            "follower": {"id": self.user_id},
            "user_id_by_app": f"55{self.user_id[2:]}",
            "event_name": event_name,
            "source": "oa_profile",
            "app_id": self.app_id,
            "timestamp": self._timestamp(),
        }

    def unfollow(self) -> dict[str, Any]:
        return self.follow("unfollow")

    def oa_text(self, text: str, admin_id: str | None = None) -> dict[str, Any]:
        """The echo of a message the OA sent; with `admin_id`, a person sent it from Zalo's OA
        manager rather than through the API."""
        sender = {"id": self.oa_id} | ({"admin_id": admin_id} if admin_id else {})
        return {
            "app_id": self.app_id,
            "event_name": "oa_send_text",
            "sender": sender,
            "recipient": {"id": self.user_id},
            "message": {"msg_id": self._msg_id(), "text": text},
            "timestamp": self._timestamp(),
        }

    def received(self, msg_id: str = "", tracking_id: str = "") -> dict[str, Any]:
        """user_received_message: of a consultation message (msg_id) or of a template message
        (msg_id, tracking_id, delivery_time)."""
        message: dict[str, Any] = {"msg_id": msg_id}
        if tracking_id:
            message |= {"tracking_id": tracking_id, "delivery_time": self._timestamp()}
        return self._receipt("user_received_message", message)

    def seen(self, *msg_ids: str) -> dict[str, Any]:
        return self._receipt("user_seen_message", {"msg_ids": list(msg_ids)})

    def _receipt(self, event_name: str, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "event_name": event_name,
            "sender": {"id": self.oa_id},
            "recipient": {"id": self.user_id},
            "message": message,
            "timestamp": self._timestamp(),
        }

    def signed(
        self, event: dict[str, Any], *, secret: str | None = None, oa_id_first: bool = False
    ) -> tuple[bytes, dict[str, str]]:
        """The body bytes and headers Zalo posts: `mac=` sha256 of app_id + body + timestamp +
        secret (`oa_id_first`: the variant some deployments use, oa_id in place of app_id)."""
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        first = event.get("oa_id", self.oa_id) if oa_id_first else event["app_id"]
        mac = signature(str(first), body, str(event["timestamp"]), secret or self.secret)
        return body, {"X-ZEvent-Signature": f"mac={mac}", "Content-Type": "application/json"}

    def post(self, client: httpx.Client, url: str, event: dict[str, Any]) -> httpx.Response:
        body, headers = self.signed(event)
        return client.post(url, content=body, headers=headers)


def signature(first: str, body: bytes, timestamp: str, secret: str) -> str:
    return hashlib.sha256(first.encode() + body + timestamp.encode() + secret.encode()).hexdigest()
