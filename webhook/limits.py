"""Bounded request bodies, for the whole app in one place: every request body is counted while
it arrives and refused past its route's ceiling with a 413 (through the error layer), whatever
Content-Length says and for chunked uploads too — nothing larger is ever held.

A declared Content-Length over the ceiling is answered before the route runs (the SMS webhook
never reads, let alone verifies, a body it will refuse); a body without one, or one that lies,
is cut as soon as the bytes counted pass the ceiling. The reverse proxy in front should refuse
the same sizes first (docs/operations.md).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.documents import MAX_BYTES

# What a webhook event, a lookup or a panel form needs: a few KB (a Telegram update with a
# 4,096-character text and its entities stays well under it).
DEFAULT_BODY_LIMIT = 64 * 1024
# One web chat send: each file at most MAX_BYTES (checked while reading, webhook/webchat.py),
# and all of them together less than ten full-size files — three, plus the form's text fields.
MAX_SEND_BYTES = 3 * MAX_BYTES + DEFAULT_BODY_LIMIT
MAX_ROW_ID = 2**63 - 1  # an id in a URL or query fits the database's BIGINT, or is a 422
# An SMS gateway's request: one SMS of at most ten parts, and its few fields (a GET carries them
# in the query, bounded the same way). An 8 KB text is no SMS.
SMS_REQUEST_LIMIT = 6 * 1024
# Routes allowed more, or less, than the default: exact paths, then path prefixes (the SMS
# gateways' routes carry a secret segment).
BODY_LIMITS = {"/chat/api/send": MAX_SEND_BYTES}
PREFIX_LIMITS = {"/webhook/sms": SMS_REQUEST_LIMIT}
# Query strings bounded by the same ceiling as the body (a GET webhook's fields are there).
QUERY_LIMITED = ("/webhook/sms",)


class BodyTooLarge(HTTPException):
    """The body passed its route's ceiling while it was being read (a route may say more)."""

    def __init__(self) -> None:
        super().__init__(413)


def body_limit(path: str) -> int:
    """The most bytes a request body to `path` may have."""
    if path in BODY_LIMITS:
        return BODY_LIMITS[path]
    for prefix, limit in PREFIX_LIMITS.items():
        if path == prefix or path.startswith(prefix + "/"):
            return limit
    return DEFAULT_BODY_LIMIT


def query_too_long(path: str, query: bytes) -> bool:
    """A GET webhook's fields are its query: bounded like a body, before anything reads it."""
    limited = any(path == p or path.startswith(p + "/") for p in QUERY_LIMITED)
    return limited and len(query) > body_limit(path)


class BodyLimit:
    """Pure ASGI middleware: refuses over-long bodies early, and counts the others as they are
    read (a route reading past the ceiling gets an HTTPException(413), answered by the app's
    exception handlers like any other refusal)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = _content_length(scope)
        over = declared is not None and declared > limit
        if over or query_too_long(scope["path"], scope.get("query_string", b"")):
            from webhook.errors import error_response  # the one error layer

            response = error_response(Request(scope), 413)
            response.headers["Connection"] = "close"  # the rest of the body is not read
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
