"""Security headers on every answer (webhook/security.py), and https read from PUBLIC_BASE_URL —
not from the request, which behind a TLS proxy arrives over plain http."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from webhook.app import create_app
from webhook.settings import Settings

PROXIED = "http://10.0.0.5:8000"  # how the app is reached behind the TLS proxy
PUBLIC = "https://hcc.example.vn"


def _app_client(sqlite_url: str, tmp_path: Path, public_base_url: str) -> Iterator[TestClient]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=sqlite_url,
        media_dir=tmp_path / "media",
        public_base_url=public_base_url,
        load_demo_data=False,
    )
    app = create_app(settings)
    with TestClient(app, base_url=PROXIED, follow_redirects=False) as client:
        yield client
    app.state.runtime.engine.dispose()


@pytest.fixture
def behind_proxy(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    yield from _app_client(sqlite_url, tmp_path, PUBLIC)


@pytest.fixture
def plain_http(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    yield from _app_client(sqlite_url, tmp_path, "http://127.0.0.1:8000")


@pytest.mark.parametrize(
    "path, accept",
    [
        ("/lookup", "text/html"),
        ("/chat", "text/html"),
        ("/admin/login", "text/html"),
        ("/admin/nowhere", "text/html"),  # an error page
        ("/lookup/000.00.10.H53-261207-0001", "application/json"),
        ("/static/chat.js", "*/*"),
    ],
)
def test_every_answer_forbids_framing_sniffing_and_inline_code(
    behind_proxy: TestClient, path: str, accept: str
) -> None:
    headers = behind_proxy.get(path, headers={"Accept": accept}).headers
    policy = headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy and "script-src" not in directives
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["strict-transport-security"].startswith("max-age=")


def test_no_hsts_for_a_plain_http_site(plain_http: TestClient) -> None:
    headers = plain_http.get("/lookup", headers={"Accept": "text/html"}).headers
    assert "strict-transport-security" not in headers
    assert headers["x-frame-options"] == "DENY"


def test_cookies_are_secure_when_the_public_site_is_https_even_over_plain_http(
    behind_proxy: TestClient, plain_http: TestClient
) -> None:
    for path, name in (("/chat", "hcc_chat"), ("/admin/login", "hcc_login_csrf")):
        cookie = behind_proxy.get(path).headers["set-cookie"]
        assert cookie.startswith(f"{name}=") and "Secure" in cookie
        assert "Secure" not in plain_http.get(path).headers["set-cookie"]


def test_web_chat_takes_posts_from_the_public_origin_behind_a_tls_proxy(
    behind_proxy: TestClient,
) -> None:
    behind_proxy.get("/chat")
    cookie = behind_proxy.cookies.jar  # a Secure cookie: httpx keeps it off plain http
    session = next(c.value for c in cookie if c.name == "hcc_chat")
    headers = {"Origin": PUBLIC, "Cookie": f"hcc_chat={session}"}
    sent = behind_proxy.post("/chat/api/send", data={"text": "/start"}, headers=headers)
    assert sent.status_code == 200 and sent.json()["replies"]
    headers["Origin"] = "https://evil.example"
    refused = behind_proxy.post("/chat/api/send", data={"text": "/start"}, headers=headers)
    assert refused.status_code == 403
    headers["Origin"] = PUBLIC
    assert behind_proxy.post("/chat/api/end", headers=headers).status_code == 200
