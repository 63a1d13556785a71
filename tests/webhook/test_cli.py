"""The `hcc` command: catalog listing and checks, database preparation with demo data."""

from __future__ import annotations

from pathlib import Path

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
