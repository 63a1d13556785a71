"""Security headers on every answer, and the one rule for what "our site" is.

Every page forbids being framed (clickjacking), sniffing content types and leaking its address
in the Referer to other sites, and runs only scripts and styles served from /static (no inline
script, handler or style: a stray injection cannot run). Behind a TLS proxy the app sees plain
http, so whether the site is https is read from PUBLIC_BASE_URL, never from the request.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000"  # a year; sent only when PUBLIC_BASE_URL is https


def is_https(public_base_url: str) -> bool:
    """The site citizens and staff reach is served over TLS (cookies then carry `Secure`)."""
    return public_base_url.lower().startswith("https://")


def security_headers(public_base_url: str) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }
    if is_https(public_base_url):
        headers["Strict-Transport-Security"] = HSTS
    return headers


class SecurityHeaders:
    """Pure ASGI middleware: adds the headers to every HTTP answer (a route's own value wins)."""

    def __init__(self, app: ASGIApp, public_base_url: str) -> None:
        self.app = app
        self.headers = security_headers(public_base_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)
