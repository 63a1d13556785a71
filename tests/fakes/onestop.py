"""A fake province one-stop information system on 127.0.0.1, speaking the wire of
../shared/reference/onestop.md and issue #13's Interface section:

- the LGSP's OAuth2 client credentials: `POST /token` (form) → `{"access_token", "expires_in"}`;
- the REST services under `/api`: `DongBoHoSoMC?MaDinhDanhDV=..&isUpdating=True|False`
  `{"data": [item]}`, `CapNhatTienDoHoSoMC` `{"data": [...]}`, `TraCuuHoSo` `{"mahoso"}`, each
  answering `{"error_code": 0, ...}` (a bad bearer token: HTTP 401);
- the national sync adapter under `/adapter`: `POST /adapter/auth` `{"username", "password"}`
  (header `dstcode`) → `{"session", "error_code": 0}`, and `POST /adapter/integration`
  `{"session", "madonvi", "service", ...}` for the same three services (an unknown session:
  HTTP 401 ⚠).

It records every request, keeps the dossiers it was sent (so `TraCuuHoSo` answers them), can give
official codes, fail on demand, be really down (its port closed, `down()`), change a dossier on its
side only (`set_status`, for pull mode), call our webhook back signed (`callback`) and fetch a file
URL the way the system would (`fetch`). The signature is computed here independently of
`core.onestop`, from the Interface section's words.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.servers import LiveServer

CLIENT_ID = "hcc-intake"
CLIENT_SECRET = "lgsp-client-secret-1"
USERNAME = "hcc-adapter"
PASSWORD = "adapter-password-1"
DSTCODE = "H53"
SERVICES = ("DongBoHoSoMC", "CapNhatTienDoHoSoMC", "TraCuuHoSo")
FAILURES = ("500", "503", "429", "error", "slow")
VN = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # the JSON body, or the form as a dict, or the raw text

    @property
    def service(self) -> str:
        """The service called, in either form (REST path or the adapter's `service`)."""
        if self.path.startswith("/api/"):
            return self.path.removeprefix("/api/")
        if self.path == "/adapter/integration" and isinstance(self.body, dict):
            return str(self.body.get("service", ""))
        return ""


class FakeOnestop:
    def __init__(
        self,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        username: str = USERNAME,
        password: str = PASSWORD,
        dstcode: str = DSTCODE,
        code_field: str = "MaHoSo",
        status_field: str = "TrangThaiHoSo",
        assign_official_codes: bool = False,
        token_seconds: int = 3600,
        slow_seconds: float = 2.0,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.username, self.password, self.dstcode = username, password, dstcode
        self.code_field, self.status_field = code_field, status_field
        self.assign_official_codes = assign_official_codes
        self.token_seconds, self.slow_seconds = token_seconds, slow_seconds
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self.requests: list[Recorded] = []
        self.tokens: dict[str, float] = {}  # access token → expiry (time.time())
        self.sessions: set[str] = set()
        self.dossiers: dict[str, dict[str, Any]] = {}  # by the code first sent
        self.official: dict[str, str] = {}  # our code → the official code given
        self.progress: list[dict[str, Any]] = []
        self.creates: list[str] = []  # codes created, in order (a repeat shows twice)
        self.updates: list[str] = []
        self._failures: list[tuple[str, str]] = []  # (kind, message) of the next service calls
        self.app = Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/api/{service}", self._rest, methods=["POST"]),
                Route("/adapter/auth", self._login, methods=["POST"]),
                Route("/adapter/integration", self._integration, methods=["POST"]),
            ]
        )
        self.server = LiveServer(self.app)

    # ------------------------------------------------------------------ the server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        """ONESTOP_BASE_URL of the REST form."""
        return f"{self.url}/api"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def adapter_url(self) -> str:
        """The session form's adapter_url (auth_path "auth", integration_path "integration")."""
        return f"{self.url}/adapter"

    def start(self) -> FakeOnestop:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> FakeOnestop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextmanager
    def down(self) -> Iterator[None]:
        """The system is down meanwhile: its port refuses connections; then it comes back with
        everything it had."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    # ------------------------------------------------------------------ knobs for tests

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (the next service call answers 401)."""
        with self._lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def fail_next(self, n: int, kind: str, message: str = "Dữ liệu không hợp lệ") -> None:
        """The next `n` service calls fail: HTTP "500" / "503" / "429" (Retry-After: 7),
        "error" (HTTP 200, error_code -1 with `message`) or "slow" (answered after
        `slow_seconds`, beyond the client's timeout — the call is still carried out)."""
        assert kind in FAILURES, kind
        self._failures.extend([(kind, message)] * n)

    def set_status(self, code: str, status: int | str, **fields: Any) -> None:
        """Change a dossier on the system's side only (what pull mode must notice)."""
        item = self.dossiers[self._key(code)]
        item[self.status_field] = str(status)
        item.update(fields)

    def dossier(self, code: str) -> dict[str, Any] | None:
        """The dossier as the system holds it, by either code."""
        return self.dossiers.get(self._key(code))

    def calls(self, service: str) -> list[Recorded]:
        """The requests that called `service` (REST or adapter form)."""
        return [r for r in self.requests if r.service == service]

    def callback(
        self, url: str, secret: str, body: dict[str, Any], timestamp: int | None = None
    ) -> httpx.Response:
        """POST a status message to our webhook, signed as the Interface says:
        X-Onestop-Timestamp (Unix seconds), X-Onestop-Signature: sha256=<hex HMAC-SHA256 of
        "<timestamp>.<raw body>">."""
        raw = json.dumps(body, ensure_ascii=False).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        mac = hmac.new(secret.encode(), f"{stamp}.".encode() + raw, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Onestop-Timestamp": stamp,
            "X-Onestop-Signature": f"sha256={mac}",
        }
        return httpx.post(url, content=raw, headers=headers, timeout=10)

    def fetch(self, url: str) -> httpx.Response:
        """GET a file URL of a dossier item, as the system does (no cookie, no redirect)."""
        return httpx.get(url, timeout=10, follow_redirects=False)

    # ------------------------------------------------------------------ OAuth

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self._record(request, form)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = f"tok-{secrets.token_hex(12)}"
        with self._lock:
            self.tokens[token] = time.time() + self.token_seconds
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_seconds}
        )

    # ------------------------------------------------------------------ REST form

    async def _rest(self, request: Request) -> Response:
        body = await self._json(request)
        service = request.path_params["service"]
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if self.tokens.get(token, 0.0) <= time.time():
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        failed = await self._failure()
        if failed is not None:
            return failed
        if not isinstance(body, dict):
            return _refuse(-1, "Dữ liệu gửi lên không phải JSON")
        match service:
            case "DongBoHoSoMC":
                updating = request.query_params.get("isUpdating", "")
                unit = request.query_params.get("MaDinhDanhDV", "")
                return self._sync(body.get("data"), unit, updating)
            case "CapNhatTienDoHoSoMC":
                return self._progress(body.get("data"))
            case "TraCuuHoSo":
                return self._lookup(body.get("mahoso"))
        return JSONResponse({"error": "not_found"}, status_code=404)

    # ------------------------------------------------------------------ adapter form

    async def _login(self, request: Request) -> Response:
        body = await self._json(request)
        if not isinstance(body, dict) or request.headers.get("dstcode") != self.dstcode:
            return _refuse(1, "Sai mã đơn vị (dstcode)")
        if body.get("username") != self.username or body.get("password") != self.password:
            return _refuse(1, "Sai tên đăng nhập hoặc mật khẩu")
        session = f"ses-{secrets.token_hex(12)}"
        self.sessions.add(session)
        return JSONResponse({"session": session, "error_code": 0})

    async def _integration(self, request: Request) -> Response:
        body = await self._json(request)
        if not isinstance(body, dict) or body.get("session") not in self.sessions:
            return JSONResponse(
                {"error_code": 401, "message": "Phiên làm việc hết hạn"}, status_code=401
            )
        failed = await self._failure()
        if failed is not None:
            return failed
        unit = body.get("madonvi")
        if not isinstance(unit, str) or not unit:
            return _refuse(-1, "Thiếu madonvi")
        match body.get("service"):
            case "DongBoHoSoMC":
                return self._sync(body.get("data"), unit, body.get("isUpdating", ""))
            case "CapNhatTienDoHoSoMC":
                return self._progress(body.get("data"))
            case "TraCuuHoSo":
                return self._lookup(body.get("mahoso"))
        return _refuse(-1, f"Không có dịch vụ {body.get('service')!r}")

    # ------------------------------------------------------------------ the services

    def _sync(self, items: Any, unit: str, updating: Any) -> Response:
        if updating not in ("True", "False"):
            return _refuse(-1, "isUpdating phải là True hoặc False")
        if not unit:
            return _refuse(-1, "Thiếu mã định danh đơn vị")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            return _refuse(-1, "data phải là danh sách hồ sơ")
        answer: dict[str, Any] = {"error_code": 0, "message": "Thành công"}
        with self._lock:
            for item in items:
                code = item.get(self.code_field)
                if not isinstance(code, str) or not code:
                    return _refuse(-1, f"Thiếu {self.code_field}")
                key = self._key(code)
                if updating == "True" and key not in self.dossiers:
                    return _refuse(2, f"Không tìm thấy hồ sơ {code} để cập nhật")
                (self.updates if updating == "True" else self.creates).append(key)
                stored = dict(item)
                if self.assign_official_codes and key not in self.official:
                    day, serial = datetime.now(VN), next(self._serial)
                    self.official[key] = f"{unit}-{day:%y%m%d}-{serial:04d}"
                if key in self.official:
                    stored[self.code_field] = self.official[key]
                    answer[self.code_field] = self.official[key]
                self.dossiers[key] = stored
        return JSONResponse(answer)

    def _progress(self, items: Any) -> Response:
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            return _refuse(-1, "data phải là danh sách tiến độ")
        for item in items:
            if self._key(str(item.get(self.code_field, ""))) not in self.dossiers:
                return _refuse(2, f"Không tìm thấy hồ sơ {item.get(self.code_field)}")
        self.progress.extend(items)
        return JSONResponse({"error_code": 0, "message": "Thành công"})

    def _lookup(self, code: Any) -> Response:
        if not isinstance(code, str) or not code:
            return _refuse(-1, "Thiếu mahoso")
        return JSONResponse({"error_code": 0, "data": self.dossiers.get(self._key(code))})

    # ------------------------------------------------------------------ plumbing

    def _key(self, code: str) -> str:
        """Our code for either code of a dossier."""
        for ours, official in self.official.items():
            if code == official:
                return ours
        return code

    async def _json(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        self._record(request, body)
        return body

    def _record(self, request: Request, body: Any) -> None:
        self.requests.append(
            Recorded(
                request.url.path,
                dict(request.query_params),
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )

    async def _failure(self) -> Response | None:
        if not self._failures:
            return None
        kind, message = self._failures.pop(0)
        match kind:
            case "500" | "503":
                return JSONResponse({"message": "Internal error"}, status_code=int(kind))
            case "429":
                return JSONResponse(
                    {"message": "Too many requests"}, status_code=429, headers={"Retry-After": "7"}
                )
            case "error":
                return _refuse(-1, message)
        await asyncio.sleep(self.slow_seconds)  # "slow": then carried out, too late
        return None


def app_from_env() -> Starlette:
    """For benchmarks: `uvicorn --factory tests.fakes.onestop:app_from_env`. Nothing kept but
    the codes created (`GET /_creates`: each create's code, a repeat twice), so a long run does
    not grow the fake; FAKE_ONESTOP_CLIENT_ID/SECRET are the client credentials."""
    fake = FakeOnestop(
        client_id=os.environ.get("FAKE_ONESTOP_CLIENT_ID", CLIENT_ID),
        client_secret=os.environ.get("FAKE_ONESTOP_CLIENT_SECRET", CLIENT_SECRET),
    )
    fake._record = lambda request, body: None  # type: ignore[method-assign]

    async def creates(request: Request) -> Response:
        return JSONResponse(fake.creates)

    fake.app.add_route("/_creates", creates, methods=["GET"])
    return fake.app


def _refuse(code: int, message: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message})
