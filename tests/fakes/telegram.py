"""A fake Telegram Bot API on 127.0.0.1: records every call, serves files, speaks the real format.

Methods answer as the Bot API does (`{"ok": true, "result": ...}`); files registered with
`add_file` are served from `/file/bot<token>/<file_path>` after `getFile`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TELEGRAM_TOKEN = "123456:TEST-citizen"
TELEGRAM_SECRET = "webhook-secret-1"
STAFF_TOKEN = "654321:TEST-staff"  # the staff bot: another bot of the same Bot API
STAFF_SECRET = "staff-webhook-secret-2"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)  # when the request arrived
    token: str = ""  # which bot made the call


class FakeTelegram:
    def __init__(
        self, token: str, files_dir: Path | None = None, *, also: tuple[str, ...] = ()
    ) -> None:
        self.token = token
        self.tokens = {token, *also}  # the bots this Bot API serves (each its own token)
        self.files_dir = files_dir  # files named <file_id>.jpg here are served too
        self.calls: list[Call] = []
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id → (file_path, content)
        self.said_sizes: dict[str, int | None] = {}  # file_id → the file_size getFile says
        self.file_statuses: dict[str, int] = {}  # file_path → the file server's error status
        self.file_requests: list[str] = []  # paths asked of the file server
        self._ids = itertools.count(1000)
        self.rate_limited: dict[str, list[int]] = {}  # method → retry_after of the next 429s
        self.failing: dict[str, list[int]] = {}  # method → HTTP status of the next failures
        self.blocked: set[int] = set()  # chats whose user blocked the bot (403)
        # While `hold` is clear, send* requests wait unanswered; a request whose client goes
        # away meanwhile was never answered, so it is listed in `aborted`, not in `calls`.
        self.hold = threading.Event()
        self.hold.set()
        self.waiting = threading.Event()  # set when a request starts waiting on `hold`
        self.aborted: list[Call] = []
        self.delivered: list[Call] = []  # send* calls answered ok: what reached the chat
        # Run (in a thread) for each send* call before it is answered: lets a test act at the
        # moment Telegram has decided, before the sender learns the outcome.
        self.before_answer: Callable[[Call], None] | None = None
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._method, methods=["POST", "GET"]),
                Route("/file/bot{token}/{path:path}", self._file, methods=["GET"]),
                Route("/_delivered", self._delivered, methods=["GET"]),
            ]
        )

    def add_file(
        self,
        file_id: str,
        content: bytes,
        path: str | None = None,
        *,
        said_size: int | Literal["actual"] | None = "actual",
        status: int = 200,
    ) -> None:
        """Serve `content` for `file_id`. `getFile` says `said_size` (a lie, or None: no
        file_size at all) and the file server answers `status` (404, 500: no content)."""
        self.files[file_id] = (path or f"photos/{file_id}.jpg", content)
        if said_size != "actual":
            self.said_sizes[file_id] = said_size
        if status != 200:
            self.file_statuses[self.files[file_id][0]] = status

    def deliver(
        self, client: httpx.Client, url: str, update: dict[str, Any], secret: str = TELEGRAM_SECRET
    ) -> httpx.Response:
        """POST an update to a webhook as Telegram does, then run the method its answer gives."""
        response = client.post(
            url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}
        )
        if response.status_code == 200:
            self.run_webhook_answer(response.headers.get("content-type", ""), response.content)
        return response

    def run_webhook_answer(self, content_type: str, body: bytes) -> None:
        """A webhook may answer with one method; Telegram runs it and reports nothing back."""
        if content_type.startswith("application/x-www-form-urlencoded"):
            params = {k: _maybe_json(v) for k, v in parse_qsl(body.decode())}
        elif content_type.startswith("application/json") and body:
            params = json.loads(body)
        else:
            return
        method = params.pop("method", None)
        if not isinstance(method, str):
            return
        call = Call(method, params)
        self.calls.append(call)
        if method.startswith("send") and int(params.get("chat_id", 0)) not in self.blocked:
            self.delivered.append(call)

    def sent(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def by(self, token: str, method: str = "sendMessage") -> list[Call]:
        """The calls of one bot (the citizen bot's are those without a token: webhook answers)."""
        return [call for call in self.calls if call.token == token and call.method == method]

    async def _method(self, request: Request) -> Response:
        if request.path_params["token"] not in self.tokens:
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, 401
            )
        method = request.path_params["method"]
        params: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            for key, value in form.multi_items():
                if hasattr(value, "read"):
                    files[key] = await value.read()
                else:
                    params[key] = _maybe_json(str(value))
        elif content_type.startswith("application/x-www-form-urlencoded"):
            form = await request.form()
            params = {k: _maybe_json(str(v)) for k, v in form.multi_items()}
        elif await request.body():
            params = await request.json()
        for name, value in list(params.items()):  # aiogram uploads as "attach://<field>"
            if isinstance(value, str) and value.startswith("attach://"):
                files[name] = files.get(value.removeprefix("attach://"), b"")
        call = Call(method, params, files, token=request.path_params["token"])
        if method.startswith("send") and not self.hold.is_set():
            self.waiting.set()
            while not self.hold.is_set():
                if await request.is_disconnected():
                    self.aborted.append(call)
                    return Response(status_code=499)
                await asyncio.sleep(0.02)
        self.calls.append(call)
        if method.startswith("send") and self.before_answer is not None:
            await asyncio.to_thread(self.before_answer, call)
        failing = self.failing.get(method)
        if failing:
            status = failing.pop(0)
            return JSONResponse(
                {"ok": False, "error_code": status, "description": "Bad Request: failed"}, status
            )
        if "chat_id" in params and int(params["chat_id"]) in self.blocked:
            return JSONResponse(
                {
                    "ok": False,
                    "error_code": 403,
                    "description": "Forbidden: bot was blocked by the user",
                },
                status_code=403,
            )
        pending = self.rate_limited.get(method)
        if pending:
            retry_after = pending.pop(0)
            return JSONResponse(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {retry_after}",
                    "parameters": {"retry_after": retry_after},
                },
                status_code=429,
            )
        if method.startswith("send"):
            self.delivered.append(call)
        return JSONResponse({"ok": True, "result": self._result(method, params, call.token)})

    def _result(self, method: str, params: dict[str, Any], token: str = "") -> Any:
        if method == "getFile":
            file_id = params["file_id"]
            if file_id not in self.files and self.files_dir is not None:
                self.add_file(file_id, (self.files_dir / f"{file_id}.jpg").read_bytes())
            path, content = self.files[file_id]
            result = {
                "file_id": params["file_id"],
                "file_unique_id": f"u{params['file_id']}",
                "file_size": self.said_sizes.get(file_id, len(content)),
                "file_path": path,
            }
            return {k: v for k, v in result.items() if v is not None}
        if method in ("sendMessage", "sendPhoto", "sendDocument"):
            chat_id = int(params["chat_id"])
            message: dict[str, Any] = {
                "message_id": next(self._ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
            }
            if method == "sendMessage":
                message["text"] = params.get("text", "")
            else:
                message["caption"] = params.get("caption", "")
                message["photo"] = [
                    {"file_id": "sent", "file_unique_id": "sent", "width": 1, "height": 1}
                ]
            return message
        if method == "getMe":
            if token == STAFF_TOKEN:
                return {"id": 2, "is_bot": True, "first_name": "HCC", "username": "hcc_staff_bot"}
            return {"id": 1, "is_bot": True, "first_name": "HCC", "username": "hcc_bot"}
        return True

    async def _delivered(self, request: Request) -> Response:
        """For benchmarks running the fake in its own process: chat ids of delivered messages."""
        return JSONResponse([call.params.get("chat_id") for call in self.delivered])

    async def _file(self, request: Request) -> Response:
        path = request.path_params["path"]
        self.file_requests.append(path)
        if path in self.file_statuses:
            return Response(b"error", status_code=self.file_statuses[path])
        for file_path, content in self.files.values():
            if file_path == path:
                return Response(content, media_type="application/octet-stream")
        return Response(status_code=404)


def app_from_env() -> Starlette:
    """For benchmarks: `uvicorn --factory tests.fakes.telegram:app_from_env`."""
    files = os.environ.get("FAKE_TELEGRAM_FILES")
    return FakeTelegram(os.environ["FAKE_TELEGRAM_TOKEN"], Path(files) if files else None).app


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


class Updates:
    """Real-shaped Bot API updates from one private chat."""

    def __init__(
        self, chat_id: int = 424242, first_update_id: int = 5000, chat_type: str = "private"
    ) -> None:
        self.chat_id = chat_id
        self.chat_type = chat_type  # "group", "supergroup", "channel": not a private chat
        self._update_ids = itertools.count(first_update_id)
        self._message_ids = itertools.count(1)

    def _chat(self) -> dict[str, Any]:
        if self.chat_type != "private":
            return {"id": self.chat_id, "type": self.chat_type, "title": "Tổ dân phố 3"}
        return {"id": self.chat_id, "type": "private", "first_name": "Mai"}

    def _user(self) -> dict[str, Any]:
        user_id = abs(self.chat_id)  # a group's id is negative, its members' are not
        return {"id": user_id, "is_bot": False, "first_name": "Mai", "language_code": "vi"}

    def _message(self, **content: Any) -> dict[str, Any]:
        return {
            "update_id": next(self._update_ids),
            "message": {
                "message_id": next(self._message_ids),
                "from": self._user(),
                "chat": self._chat(),
                "date": int(time.time()),
                **content,
            },
        }

    def text(self, text: str, reply_to: int | None = None) -> dict[str, Any]:
        """A text; `reply_to`: the id of the bot's message it answers (Telegram's "Reply")."""
        entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        extra: dict[str, Any] = {"entities": entities} if text.startswith("/") else {}
        if reply_to is not None:
            extra["reply_to_message"] = {
                "message_id": reply_to, "date": int(time.time()), "chat": self._chat(),
                "from": {"id": 2, "is_bot": True, "first_name": "HCC"}, "text": "…",
            }  # fmt: skip
        return self._message(text=text, **extra)

    def contact(self, phone: str) -> dict[str, Any]:
        contact = {"phone_number": phone, "first_name": "Mai", "user_id": self.chat_id}
        return self._message(contact=contact)

    def photo(
        self, file_id: str, width: int = 1200, height: int = 1600, album: str | None = None
    ) -> dict[str, Any]:
        """A photo as Telegram sends it: several sizes, the largest last."""
        sizes = [
            {"file_id": f"{file_id}-s", "file_unique_id": f"{file_id}s", "width": 90,
             "height": 120, "file_size": 2000},
            {"file_id": f"{file_id}-m", "file_unique_id": f"{file_id}m", "width": 600,
             "height": 800, "file_size": 40000},
            {"file_id": file_id, "file_unique_id": f"{file_id}x", "width": width,
             "height": height, "file_size": 180000},
        ]  # fmt: skip
        return self._message(photo=sizes, **({"media_group_id": album} if album else {}))

    def document(self, file_id: str, name: str, mime: str, size: int) -> dict[str, Any]:
        document = {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_name": name,
                    "mime_type": mime, "file_size": size}  # fmt: skip
        return self._message(document=document)

    def location(self, latitude: float, longitude: float) -> dict[str, Any]:
        """What the "send my location" keyboard button sends (floats, as Telegram does)."""
        return self._message(location={"latitude": latitude, "longitude": longitude})

    def sticker(self) -> dict[str, Any]:
        sticker = {"file_id": "st", "file_unique_id": "st", "type": "regular", "width": 512,
                   "height": 512, "is_animated": False, "is_video": False}  # fmt: skip
        return self._message(sticker=sticker)

    def button(self, data: str) -> dict[str, Any]:
        return {
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": str(next(self._message_ids)),
                "from": self._user(),
                "chat_instance": "ci-1",
                "data": data,
                "message": {
                    "message_id": 1,
                    "date": int(time.time()),
                    "chat": self._chat(),
                    "from": {"id": 1, "is_bot": True, "first_name": "HCC"},
                    "text": "…",
                },
            },
        }
