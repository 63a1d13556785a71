"""The `hcc` command: catalog listing and checks, database preparation with demo data."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from webhook.cli import main, prepare_database
from webhook.settings import REPO_ROOT, get_settings


def test_catalog_lists_the_procedures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog"]) == 0
    out = capsys.readouterr().out
    assert "Đăng ký khai sinh" in out and "Cấp Phiếu lý lịch tư pháp" in out
    assert main(["catalog", "--lang", "en"]) == 0
    assert "Birth registration" in capsys.readouterr().out


def test_catalog_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = REPO_ROOT / "data" / "catalog" / "tay-ninh" / "procedures" / "khai-tu.toml"
    assert main(["catalog", "--check", str(good)]) == 0
    bad = tmp_path / "x.toml"
    bad.write_text('code = "1"\nname = { vi = "Thử" }\nprocessing_days = "ba"\n')
    assert main(["catalog", "--check", str(bad)]) == 1
    assert "x.toml: processing_days: must be a whole number" in capsys.readouterr().err


def test_prepare_database_migrates_and_seeds_demo_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'hcc.sqlite3'}")
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "media"))
    get_settings.cache_clear()
    try:
        codes = prepare_database()
        assert len(codes) == 5 and all("-" in code for code in codes)
        assert prepare_database() == []  # not seeded twice
    finally:
        get_settings.cache_clear()


def test_serve_refuses_a_public_address_with_development_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://hcc.tayninh.gov.vn")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("LOAD_DEMO_DATA", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["serve"]) == 2
    finally:
        get_settings.cache_clear()
    error = capsys.readouterr().err
    assert "SECRET_KEY is the development default" in error and "LOAD_DEMO_DATA is on" in error


def test_a_copied_env_example_runs_the_embedded_product(tmp_path: Path) -> None:
    """Copying .env.example to .env leaves tokens empty: they mean "not set", so no Telegram bot
    with an empty token, no SMS gateway, no Redis — the embedded defaults."""
    from webhook.settings import REPO_ROOT, Settings

    settings = Settings(_env_file=REPO_ROOT / ".env.example")  # type: ignore[call-arg]
    assert settings.telegram_citizen_token is None and settings.redis_url is None
    assert settings.sms_gateway_url is None and settings.secret_key.get_secret_value()
    assert settings.unsafe_for_public_use() == []


def test_every_variable_in_env_example_is_a_setting() -> None:
    """Settings ignore unknown variables, so one documented but not read would do nothing."""
    from webhook.settings import Settings

    lines = (REPO_ROOT / ".env.example").read_text().splitlines()
    names = {line.split("=", 1)[0].lower() for line in lines if line and not line.startswith("#")}
    assert names - set(Settings.model_fields) == set()


def test_serve_on_another_port_prints_links_for_that_port(
    tmp_path: Path,
) -> None:
    """`hcc serve --port N` without PUBLIC_BASE_URL: the demo links it prints, and the links the
    product makes (QR codes carry them), point at port N — where the server really is."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'hcc.sqlite3'}",
        "MEDIA_DIR": str(tmp_path / "media"),
        "SMS_WEBHOOK_SECRET": "sms-secret",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "webhook.cli", "serve", "--port", str(port)],
        cwd=tmp_path,  # no .env here
        env={**env, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        links = []
        for line in server.stdout:
            if "demo dossier:" in line:
                links.append(line.split("demo dossier:")[1].strip())
            if len(links) == 5:
                break
        assert all(link.startswith(f"http://127.0.0.1:{port}/lookup/") for link in links)
        deadline = time.time() + 30
        while True:
            try:
                page = httpx.get(links[0])
                break
            except httpx.TransportError:
                assert time.time() < deadline, "hcc serve did not answer"
                time.sleep(0.2)
        code = links[0].rsplit("/", 1)[1]
        assert page.status_code == 200 and code in page.text
        # The links the server itself makes (here its SMS answer; QR codes carry the same).
        sent = {"id": "gw-1", "from": "0912345678", "to": "8088", "text": f"HS {code}",
                "received_at": "2026-11-28T09:00:00+07:00"}  # fmt: skip
        body = json.dumps(sent)
        signature = hmac.new(b"sms-secret", body.encode(), hashlib.sha256).hexdigest()
        sms = httpx.post(f"http://127.0.0.1:{port}/webhook/sms", content=body,
                         headers={"X-Signature": f"sha256={signature}"})  # fmt: skip
        assert links[0] in sms.json()["reply"]
    finally:
        server.terminate()
        server.wait(10)


def test_staff_reset_finds_the_account_as_sign_in_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The name is typed as the officer signs in with it ("LAN.ttphcc " is lan.ttphcc)."""
    from datetime import UTC, datetime

    from storage.db import make_engine, session_scope
    from storage.staff import Login, authenticate

    database = f"sqlite:///{tmp_path / 'hcc.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "media"))
    get_settings.cache_clear()
    try:
        agency = "000.00.10.H53"
        assert main(["staff", "create", "lan.ttphcc", "--name", "Lan", "--agency", agency]) == 0
        capsys.readouterr()
        assert main(["staff", "reset", " LAN.ttphcc"]) == 0
        out = capsys.readouterr().out
        assert "lan.ttphcc: " in out
        password = out.split("lan.ttphcc: ", 1)[1].split(" — ", 1)[0]
        assert main(["staff", "reset", "mai.ttphcc"]) == 1
        assert "Không có tài khoản mai.ttphcc" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
    engine = make_engine(database)
    with session_scope(engine) as session:
        result = authenticate(
            session, "LAN.ttphcc", password, datetime.now(UTC), address="127.0.0.1", per_minute=10
        ).result
    engine.dispose()
    assert result is Login.OK  # the reset's one-time password is the one that signs in


def test_staff_link_prints_a_deep_link_and_setup_registers_the_staff_webhook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hcc staff link NAME.UNIT` and `hcc telegram setup --staff`, against the fake Bot API."""
    from tests.fakes.telegram import STAFF_SECRET, STAFF_TOKEN, FakeTelegram
    from tests.servers import live_server

    fake = FakeTelegram("123456:TEST-citizen", also=(STAFF_TOKEN,))
    database = f"sqlite:///{tmp_path / 'hcc.sqlite3'}"
    with live_server(fake.app) as base:
        for name, value in (("DATABASE_URL", database), ("MEDIA_DIR", str(tmp_path / "media")),
                            ("TELEGRAM_STAFF_TOKEN", STAFF_TOKEN), ("TELEGRAM_API_BASE", base),
                            ("TELEGRAM_STAFF_WEBHOOK_SECRET", STAFF_SECRET),
                            ("PUBLIC_BASE_URL", "https://hcc.example.vn")):  # fmt: skip
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            agency = "000.00.10.H53"
            assert main(["staff", "create", "lan.ttphcc", "--name", "Lan", "--agency", agency]) == 0
            capsys.readouterr()
            assert main(["staff", "link", "lan.ttphcc"]) == 0
            link = capsys.readouterr().out.strip()
            assert link.startswith("https://t.me/hcc_staff_bot?start=") and len(link) > 40
            assert main(["staff", "link", "mai.ttphcc"]) == 1
            assert main(["telegram", "setup", "--staff"]) == 0
        finally:
            get_settings.cache_clear()
    [webhook] = fake.by(STAFF_TOKEN, "setWebhook")
    assert webhook.params["url"] == "https://hcc.example.vn/webhook/telegram/staff"
    assert webhook.params["secret_token"] == STAFF_SECRET
    menus = fake.by(STAFF_TOKEN, "setMyCommands")
    assert [m.params["language_code"] for m in menus] == ["vi", "en"]
    assert "hangdoi" in json.dumps(menus[0].params["commands"])
