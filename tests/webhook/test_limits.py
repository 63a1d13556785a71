"""The app-wide body limit (webhook/limits.py) on a live uvicorn: a declared Content-Length over a
route's ceiling is refused before the body is read (before the SMS signature is checked), a
chunked body is cut at the ceiling, and both answers come from the error layer."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from core.messages import render
from tests.servers import live_server
from webhook.app import create_app
from webhook.limits import DEFAULT_BODY_LIMIT, body_limit
from webhook.settings import Settings


@pytest.fixture
def base_url(sqlite_url: str, tmp_path: Path) -> Iterator[str]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=sqlite_url,
        media_dir=tmp_path / "media",
        public_base_url="https://hcc.example.vn",
        sms_webhook_secret="sms-test-secret",  # type: ignore[arg-type]
        load_demo_data=False,
    )
    app = create_app(settings)
    with live_server(app) as url:
        yield url
    app.state.runtime.engine.dispose()


def _raw_exchange(base_url: str, head: bytes, body_start: bytes) -> tuple[bytes, float]:
    """Send request headers and the first bytes of a body, then read what the server says
    (without ever sending the rest); (the answer, seconds it took)."""
    address = urlparse(base_url)
    started = time.monotonic()
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(head + body_start)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer, time.monotonic() - started


def test_sms_webhook_refuses_a_declared_200_mb_body_before_reading_it(base_url: str) -> None:
    """A wrong signature on 200 MB: answered 413 at once — neither the body is read nor the
    signature checked (before: the server waited for all 200 MB to compute the HMAC)."""
    head = (
        b"POST /webhook/sms HTTP/1.1\r\nHost: hcc.example.vn\r\nContent-Type: application/json\r\n"
        b"X-Signature: sha256=00\r\nContent-Length: 209715200\r\n\r\n"
    )
    answer, took = _raw_exchange(base_url, head, b'{"id": "x", "text": "')
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"413", answer[:300]
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body == {"error": "too_large", "message": render("http.too_large", "vi")}
    assert took < 3


def test_a_chunked_body_is_cut_at_the_ceiling(base_url: str) -> None:
    """No Content-Length (chunked): the bytes are counted as they come; past the ceiling the
    answer is 413, not the signature check's 401."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(4 * 1024):  # 4 MB in 1 KB chunks, if nobody stops it
            sent += 1024
            yield b" " * 1024

    with httpx.Client(base_url=base_url, timeout=10) as client:
        response = client.post(
            "/webhook/sms",
            content=chunks(),
            headers={"X-Signature": "sha256=00", "Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def test_a_body_under_the_ceiling_reaches_the_route(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        response = client.post(
            "/webhook/sms",
            content=b" " * (body_limit("/webhook/sms") - 10),
            headers={"X-Signature": "sha256=00"},
        )
    assert response.status_code == 401  # read whole, then refused by its signature


def test_an_over_long_panel_form_gets_the_vietnamese_page(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        response = client.post(
            "/admin/login",
            content=b"username=" + b"a" * (2 * DEFAULT_BODY_LIMIT),
            headers={
                "Accept": "text/html",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
    assert response.status_code == 413
    assert render("http.too_large", "vi") in response.text
    assert 'href="/admin"' in response.text  # a way back
