"""Connecting the Zalo Official Account and watching its token: `hcc zalo connect | token |
templates --check`, the consent callback against the fake OAuth v4 endpoint, the token's state
on /healthz and the system admin's banner."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from bots.zalo import TokenBroken, ZaloTokens
from core.messages import render
from core.staff import Role
from storage.db import make_engine, session_scope
from storage.zalo import StoredToken, get_token
from tests.fakes.zalo import (
    ZALO_APP_ID,
    ZALO_APP_SECRET,
    ZALO_OA_ID,
    ZALO_OA_SECRET,
    FakeZalo,
    Template,
    pkce_challenge,
    zalo_settings,
)
from tests.servers import live_server
from tests.webhook.test_admin import first_agency, signed_in
from webhook.app import create_app
from webhook.cli import main
from webhook.runtime import Runtime
from webhook.settings import Settings, get_settings

CALLBACK = "https://hcc.example.vn/zalo/oauth/callback"
PAGE = {"Accept": "text/html"}
LINK = re.compile(r"https?://\S+/v4/oa/permission\?\S+")
BANNER_LINK = re.compile(r'class="system-problem"[^>]*>.*?<a href="([^"]+)"', re.S)


@dataclass
class Zalo:
    fake: FakeZalo
    base: str
    settings: Settings  # the test app's settings with the channel on, against the fake

    def tokens(self, client: httpx.Client, engine: Engine) -> ZaloTokens:
        return ZaloTokens(
            engine,
            client,
            oauth_base=self.base,
            app_id=ZALO_APP_ID,
            app_secret=ZALO_APP_SECRET,
            oa_id=ZALO_OA_ID,
        )


@pytest.fixture
def zalo(settings: Settings) -> Iterator[Zalo]:
    fake = FakeZalo()
    with live_server(fake.app) as base:
        on = settings.model_copy(update=zalo_settings(base))
        yield Zalo(fake, base, on)


@pytest.fixture
def zalo_env(zalo: Zalo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Zalo]:
    """The same settings as environment variables, for `hcc` run in-process."""
    variables = {
        "DATABASE_URL": zalo.settings.database_url,
        "PUBLIC_BASE_URL": zalo.settings.public_base_url,
        "LOAD_DEMO_DATA": "false",
        "MEDIA_DIR": str(tmp_path / "media"),
        "ZALO_APP_ID": ZALO_APP_ID,
        "ZALO_APP_SECRET": ZALO_APP_SECRET,
        "ZALO_OA_ID": ZALO_OA_ID,
        "ZALO_OA_SECRET_KEY": ZALO_OA_SECRET,
        "ZALO_API_BASE": zalo.base,
        "ZALO_OAUTH_BASE": zalo.base,
        "ZALO_BUSINESS_API_BASE": zalo.base,
        "ZALO_TEMPLATES": str(tmp_path / "templates.toml"),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield zalo
    get_settings.cache_clear()


@pytest.fixture
def app_runtime(zalo: Zalo) -> Iterator[tuple[TestClient, Runtime]]:
    app = create_app(zalo.settings)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        yield client, app.state.runtime
    app.state.runtime.engine.dispose()


def query(link: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(link).query).items()}


def stored(runtime: Runtime) -> StoredToken | None:
    with session_scope(runtime.engine) as session:
        return get_token(session, ZALO_OA_ID)


def test_connect_prints_a_consent_link_whose_challenge_is_its_states_verifier(
    zalo_env: Zalo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["zalo", "connect"]) == 0
    assert main(["zalo", "connect"]) == 0
    first, second = LINK.findall(capsys.readouterr().out)
    asked, again = query(first), query(second)
    assert first.startswith(f"{zalo_env.base}/v4/oa/permission?")
    assert asked["app_id"] == ZALO_APP_ID and asked["redirect_uri"] == CALLBACK
    assert len(asked["state"]) >= 32 and asked["state"] != again["state"]  # random each time
    engine = make_engine(zalo_env.settings.database_url)
    with httpx.Client() as client:
        verifier = zalo_env.tokens(client, engine).verifier(asked["state"])
    engine.dispose()
    assert len(verifier) == 43 and pkce_challenge(verifier) == asked["code_challenge"]


def test_connect_without_the_zalo_settings_says_what_to_set(
    zalo_env: Zalo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ZALO_APP_SECRET")
    get_settings.cache_clear()
    assert main(["zalo", "connect"]) == 2
    assert render("zalo.cli.not_configured") in capsys.readouterr().err


def test_the_callback_exchanges_the_code_once_and_refuses_anything_else(
    zalo: Zalo, app_runtime: tuple[TestClient, Runtime]
) -> None:
    client, runtime = app_runtime
    link = query(_consent_link(runtime))
    code = zalo.fake.grant_code(link["code_challenge"])

    def callback(**params: str) -> httpx.Response:
        return client.get("/zalo/oauth/callback", params=params, headers=PAGE)

    # Another OA's grant: refused before any call to Zalo, nothing stored, the code still usable.
    other = callback(code=code, oa_id="1111111111111111111", state=link["state"])
    assert other.status_code == 400
    wrong_oa = render("zalo.oauth.wrong_oa", oa_id="1111111111111111111")
    assert html.escape(wrong_oa, quote=False) in other.text
    assert stored(runtime) is None and zalo.fake.calls == []
    # A code Zalo never issued, or the right code with another state (so another verifier).
    refused = html.escape(render("zalo.oauth.refused"), quote=False)
    for params in ({"code": "code-forged", "state": link["state"]}, {"code": code, "state": "x"}):
        answer = callback(oa_id=ZALO_OA_ID, **params)
        assert answer.status_code == 400 and refused in answer.text
        assert stored(runtime) is None
    assert callback(code=code, state=link["state"]).status_code == 400  # no oa_id

    code = zalo.fake.grant_code(link["code_challenge"])  # the forged-state try spent the first
    connected = callback(code=code, oa_id=ZALO_OA_ID, state=link["state"])
    assert connected.status_code == 200
    assert render("zalo.oauth.connected", oa_id=ZALO_OA_ID) in connected.text
    with httpx.Client() as http:
        access = zalo.tokens(http, runtime.engine).access_token()
    assert access in zalo.fake.access_tokens and access not in connected.text

    reused = callback(code=code, oa_id=ZALO_OA_ID, state=link["state"])  # single use
    assert reused.status_code == 400 and refused in reused.text
    with httpx.Client() as http:
        assert zalo.tokens(http, runtime.engine).access_token() == access  # pair unchanged


def test_hcc_zalo_token_seeds_the_pair(zalo_env: Zalo, capsys: pytest.CaptureFixture[str]) -> None:
    access, refresh = zalo_env.fake.issue_pair()
    base = ["zalo", "token", "--access-token", access, "--refresh-token", refresh]
    assert main([*base, "--expires-in", "0"]) == 2
    assert render("zalo.cli.token_bad") in capsys.readouterr().err
    engine = make_engine(zalo_env.settings.database_url)
    with session_scope(engine) as session:
        assert get_token(session, ZALO_OA_ID) is None  # nothing stored
    assert main([*base, "--expires-in", "3600"]) == 0
    out = capsys.readouterr().out
    assert "valid until" in out and access not in out and refresh not in out
    with httpx.Client() as client:
        assert zalo_env.tokens(client, engine).access_token() == access
    engine.dispose()


def test_healthz_and_the_banner_follow_the_token_from_missing_to_valid_to_broken(
    zalo: Zalo, app_runtime: tuple[TestClient, Runtime]
) -> None:
    client, runtime = app_runtime
    root = signed_in(client, runtime, "root.sotttt", runtime.catalog.province.code,
                     Role.SYSTEM_ADMIN)  # fmt: skip
    missing = client.get("/healthz")
    assert missing.status_code == 200
    assert missing.json() == {"ok": False, "database": "ok", "media": "ok", "zalo": "not connected"}
    not_connected = html.escape(render("admin.system.zalo_not_connected"), quote=False)
    assert not_connected in root.get("/admin").text  # type: ignore[attr-defined]

    access, refresh = zalo.fake.issue_pair()
    with httpx.Client() as http:
        tokens = zalo.tokens(http, runtime.engine)
        tokens.store_pair(access, refresh, 90000)
        valid = client.get("/healthz")
        assert valid.status_code == 200 and valid.json()["ok"] is True
        assert valid.json()["zalo"].startswith("valid until ")
        assert 'class="system-problem"' not in root.get("/admin").text  # type: ignore[attr-defined]

        zalo.fake.refresh_tokens.clear()  # Zalo no longer takes the refresh token
        with pytest.raises(TokenBroken):
            tokens.refresh(access)
    broken = client.get("/healthz")
    assert broken.status_code == 200 and broken.json()["ok"] is False
    reason = "zalo refused the refresh token: -14014: Invalid refresh token"
    assert broken.json()["zalo"] == f"broken: {reason}"
    assert access not in broken.text and refresh not in broken.text
    page = root.get("/admin").text  # type: ignore[attr-defined]
    assert html.escape(render("admin.system.zalo_broken", reason=reason), quote=False) in page

    desk = signed_in(client, runtime, "lan.ttphcc", first_agency(runtime.catalog))
    assert 'class="system-problem"' not in desk.get("/admin").text  # type: ignore[attr-defined]

    # The banner's link is a working consent link: the OA admin opens it and all is well again.
    found = BANNER_LINK.search(page)
    assert found is not None
    link = query(html.unescape(found.group(1)))
    code = zalo.fake.grant_code(link["code_challenge"])
    params = {"code": code, "oa_id": ZALO_OA_ID, "state": link["state"]}
    assert client.get("/zalo/oauth/callback", params=params).status_code == 200
    assert client.get("/healthz").json()["zalo"].startswith("valid until ")
    root = signed_in(client, runtime, "root2.sotttt", runtime.catalog.province.code,
                     Role.SYSTEM_ADMIN)  # fmt: skip
    assert 'class="system-problem"' not in root.get("/admin").text  # type: ignore[attr-defined]


def test_healthz_says_nothing_of_zalo_when_the_channel_is_off(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app, base_url="https://testserver") as client:
        assert "zalo" not in client.get("/healthz").json()
    app.state.runtime.engine.dispose()


def test_templates_check_reports_a_parameter_zalo_does_not_declare(
    zalo_env: Zalo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    access, refresh = zalo_env.fake.issue_pair()
    assert main(["zalo", "token", "--access-token", access, "--refresh-token", refresh]) == 0
    zalo_env.fake.templates["301245"] = Template(
        params=["ma_ho_so", "ngay_hen_tra"], required={"ma_ho_so", "ngay_hen_tra"}
    )
    mapping = tmp_path / "templates.toml"
    mapping.write_text(
        '[templates."notice.accepted"]\ntemplate_id = "301245"\n'
        '[templates."notice.accepted".params]\nma_ho_so = "code"\nngay_hen = "appointment_date"\n'
    )
    capsys.readouterr()
    assert main(["zalo", "templates", "--check"]) == 1
    err = capsys.readouterr().err
    assert "notice.accepted (template 301245): parameter 'ngay_hen' is not declared" in err
    assert "required parameter 'ngay_hen_tra' is not filled" in err

    mapping.write_text(mapping.read_text().replace("ngay_hen =", "ngay_hen_tra ="))
    assert main(["zalo", "templates", "--check"]) == 0
    assert render("zalo.cli.templates_ok", path=mapping, count=1) in capsys.readouterr().out


def _consent_link(runtime: Runtime) -> str:
    from bots.channels import zalo_tokens
    from webhook.zalo_oauth import new_consent_link

    with httpx.Client() as client:
        tokens = zalo_tokens(runtime, client)
        assert tokens is not None
        return new_consent_link(runtime, tokens)
