"""A fake outbound SMS gateway on 127.0.0.1: a JSON POST per SMS, behind a bearer token."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
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
