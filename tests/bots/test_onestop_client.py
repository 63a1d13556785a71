"""The one-stop transport against the fake system on 127.0.0.1: both auth forms, the token and
session kept and renewed, official codes, and every failure in the outbox's words."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bots.delivery import Rejected, TryLater
from bots.onestop import OAuthTokens, RestOnestop, SessionOnestop, make_client, secret_lookup
from core.onestop import (
    ClientCredentials,
    Connection,
    OnestopConfigError,
    SessionLogin,
    load_mapping,
    verify_callback,
)
from tests.fakes.onestop import (
    CLIENT_ID,
    CLIENT_SECRET,
    DSTCODE,
    PASSWORD,
    USERNAME,
    FakeOnestop,
)
from tests.servers import live_server
from webhook.settings import REPO_ROOT, Settings

UNIT = "000.00.01.H22"
CODE = "000.00.10.H53-261207-0001"


def item(code: str = CODE, status: str = "2") -> dict[str, Any]:
    return {"MaHoSo": code, "MaTTHC": "2.000575", "ChuHoSo": "Nguyễn Văn An",
            "TrangThaiHoSo": status}  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeOnestop]:
    with FakeOnestop() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def rest(
    fake: FakeOnestop,
    http: httpx.Client,
    *,
    secret: str = CLIENT_SECRET,
    clock: Clock | None = None,
    timeout: float = 5.0,
) -> RestOnestop:
    tokens = OAuthTokens(
        http, fake.token_url, CLIENT_ID, secret, timeout=timeout, clock=clock or Clock()
    )
    return RestOnestop(http, fake.base_url, tokens, timeout=timeout)


def session(
    fake: FakeOnestop, http: httpx.Client, *, password: str = PASSWORD, timeout: float = 5.0
) -> SessionOnestop:
    login = SessionLogin(fake.adapter_url, "auth", "integration", USERNAME, "PW", DSTCODE)
    return SessionOnestop(http, login, password, UNIT, timeout=timeout)


# ---------------------------------------------------------------------------- REST form


def test_rest_create_update_lookup_and_progress(fake: FakeOnestop, http: httpx.Client) -> None:
    client = rest(fake, http)
    assert client.send_dossier(item(), UNIT, updating=False) is None  # no official code given
    [create] = fake.calls("DongBoHoSoMC")
    assert create.query == {"MaDinhDanhDV": UNIT, "isUpdating": "False"}
    assert create.body == {"data": [item()]}
    assert create.headers["authorization"].startswith("Bearer tok-")
    assert client.lookup(CODE) == item()
    assert fake.calls("TraCuuHoSo")[0].body == {"mahoso": CODE}
    assert client.lookup("000.00.10.H53-261207-0999") is None
    client.send_dossier(item(status="4"), UNIT, updating=True)
    assert fake.calls("DongBoHoSoMC")[1].query["isUpdating"] == "True"
    assert (fake.creates, fake.updates) == ([CODE], [CODE])
    steps = [{"MaHoSo": CODE, "NguoiXuLy": "Trần Thị Bình", "TrangThai": "4"}]
    client.send_progress(steps)
    assert fake.calls("CapNhatTienDoHoSoMC")[0].body == {"data": steps}
    assert fake.progress == steps


def test_the_official_code_of_the_answer_is_returned(http: httpx.Client) -> None:
    with FakeOnestop(assign_official_codes=True) as fake:
        client = rest(fake, http)
        official = client.send_dossier(item(), UNIT, updating=False)
        assert official is not None and official.startswith(f"{UNIT}-")
        assert official.endswith("-0001") and len(official) == len("000.00.01.H22-261201-0001")
        # Later calls name the dossier by its official code: nothing new to report.
        assert client.send_dossier(item(official, "4"), UNIT, updating=True) is None
        assert client.lookup(official) == item(official, "4")
        assert client.lookup(CODE) == item(official, "4")  # either code finds it


def test_the_token_is_kept_until_shortly_before_it_expires(http: httpx.Client) -> None:
    clock = Clock()
    with FakeOnestop(token_seconds=600) as fake:
        client = rest(fake, http, clock=clock)
        client.send_dossier(item(), UNIT, updating=False)
        client.lookup(CODE)
        tokens = [r for r in fake.requests if r.path == "/token"]
        assert len(tokens) == 1
        assert tokens[0].body == {"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                  "client_secret": CLIENT_SECRET}  # fmt: skip
        clock.now += 600 - 61  # a minute before the end: still good
        client.lookup(CODE)
        assert len([r for r in fake.requests if r.path == "/token"]) == 1
        clock.now += 2  # within the last minute: a new one before the call, no 401
        client.lookup(CODE)
        assert len([r for r in fake.requests if r.path == "/token"]) == 2
        assert [r.path for r in fake.requests][-2:] == ["/token", "/api/TraCuuHoSo"]


def test_a_refused_token_gets_one_new_token_and_one_retry(
    fake: FakeOnestop, http: httpx.Client
) -> None:
    client = rest(fake, http)
    client.lookup(CODE)
    fake.expire_tokens()
    client.send_dossier(item(), UNIT, updating=False)
    paths = [r.path for r in fake.requests]
    assert paths == ["/token", "/api/TraCuuHoSo", "/api/DongBoHoSoMC", "/token",
                     "/api/DongBoHoSoMC"]  # fmt: skip
    assert fake.creates == [CODE]


def test_wrong_client_credentials_are_retried_later_and_the_secret_never_shows(
    fake: FakeOnestop, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = rest(fake, http, secret="not-the-secret-xyz")
    with pytest.raises(TryLater) as raised:
        client.send_dossier(item(), UNIT, updating=False)
    assert "token refused" in str(raised.value) and "invalid_client" in str(raised.value)
    assert "not-the-secret-xyz" not in str(raised.value)
    assert "not-the-secret-xyz" not in caplog.text
    assert fake.calls("DongBoHoSoMC") == []


def test_a_system_that_keeps_refusing_the_token_is_retried_later(
    fake: FakeOnestop, http: httpx.Client
) -> None:
    client = rest(fake, http)
    client.lookup(CODE)
    fake.client_secret = "rotated"  # the operator changed it on the system's side
    fake.expire_tokens()
    with pytest.raises(TryLater, match="token refused"):
        client.lookup(CODE)


def test_an_error_code_is_a_rejection_with_the_systems_message(
    fake: FakeOnestop, http: httpx.Client
) -> None:
    fake.fail_next(1, "error", "Mã thủ tục 2.000575 không tồn tại")
    with pytest.raises(Rejected) as raised:
        rest(fake, http).send_dossier(item(), UNIT, updating=False)
    assert "Mã thủ tục 2.000575 không tồn tại" in str(raised.value)
    assert "error_code -1" in str(raised.value)


def test_the_systems_own_refusals_are_rejections(fake: FakeOnestop, http: httpx.Client) -> None:
    client = rest(fake, http)
    with pytest.raises(Rejected, match="Không tìm thấy hồ sơ"):
        client.send_dossier(item(), UNIT, updating=True)  # an update of nothing
    with pytest.raises(Rejected, match="Không tìm thấy hồ sơ"):
        client.send_progress([{"MaHoSo": CODE, "TrangThai": "4"}])  # before the create


@pytest.mark.parametrize(("kind", "retry_after"), [("500", None), ("503", None), ("429", 7.0)])
def test_overload_and_server_errors_are_retried_later(
    fake: FakeOnestop, http: httpx.Client, kind: str, retry_after: float | None
) -> None:
    client = rest(fake, http)
    fake.fail_next(1, kind)
    with pytest.raises(TryLater) as raised:
        client.send_dossier(item(), UNIT, updating=False)
    assert f"HTTP {kind}" in str(raised.value)
    assert raised.value.retry_after == retry_after
    assert client.send_dossier(item(), UNIT, updating=False) is None  # the next one goes


def test_a_slow_system_is_retried_later(http: httpx.Client) -> None:
    with FakeOnestop(slow_seconds=0.8) as fake:
        client = rest(fake, http, timeout=0.2)
        client.lookup(CODE)  # the token first, while the system is quick
        fake.fail_next(1, "slow")
        with pytest.raises(TryLater, match="Timeout"):
            client.send_dossier(item(), UNIT, updating=False)


def test_a_system_that_is_down_is_retried_later_and_reached_when_back(
    fake: FakeOnestop, http: httpx.Client
) -> None:
    client = rest(fake, http)
    client.lookup(CODE)
    with fake.down():
        with pytest.raises(TryLater, match="ConnectError"):
            client.send_dossier(item(), UNIT, updating=False)
        with pytest.raises(TryLater, match="ConnectError"):
            rest(fake, http).lookup(CODE)  # the token endpoint is down too
    assert client.send_dossier(item(), UNIT, updating=False) is None
    assert fake.creates == [CODE]


# ---------------------------------------------------------------------------- session form


def test_session_login_then_services_through_the_integration_endpoint(
    fake: FakeOnestop, http: httpx.Client
) -> None:
    client = session(fake, http)
    client.send_dossier(item(), "000.00.02.H22", updating=False)
    client.send_progress([{"MaHoSo": CODE, "TrangThai": "4"}])
    assert client.lookup(CODE) == item()
    [login] = [r for r in fake.requests if r.path == "/adapter/auth"]
    assert login.body == {"username": USERNAME, "password": PASSWORD}
    assert login.headers["dstcode"] == DSTCODE
    create, progress, lookup = (r.body for r in fake.requests if r.path == "/adapter/integration")
    ses = create["session"]
    assert create == {"session": ses, "madonvi": "000.00.02.H22", "service": "DongBoHoSoMC",
                      "isUpdating": "False", "data": [item()]}  # fmt: skip
    assert progress == {"session": ses, "madonvi": UNIT, "service": "CapNhatTienDoHoSoMC",
                        "data": [{"MaHoSo": CODE, "TrangThai": "4"}]}  # fmt: skip
    assert lookup == {"session": ses, "madonvi": UNIT, "service": "TraCuuHoSo", "mahoso": CODE}


def test_an_expired_session_logs_in_again_once(fake: FakeOnestop, http: httpx.Client) -> None:
    client = session(fake, http)
    client.lookup(CODE)
    fake.expire_sessions()
    client.send_dossier(item(), UNIT, updating=False)
    assert [r.path for r in fake.requests] == [
        "/adapter/auth", "/adapter/integration", "/adapter/integration", "/adapter/auth",
        "/adapter/integration",
    ]  # fmt: skip
    assert fake.creates == [CODE]


def test_session_failures_in_the_outbox_words(fake: FakeOnestop, http: httpx.Client) -> None:
    with pytest.raises(TryLater, match="login refused") as raised:
        session(fake, http, password="wrong-password-xyz").lookup(CODE)
    assert "wrong-password-xyz" not in str(raised.value)
    client = session(fake, http)
    fake.fail_next(1, "error", "Mã đơn vị không hợp lệ")
    with pytest.raises(Rejected, match="Mã đơn vị không hợp lệ"):
        client.send_dossier(item(), UNIT, updating=False)
    fake.fail_next(1, "500")
    with pytest.raises(TryLater):
        client.send_dossier(item(), UNIT, updating=False)
    with fake.down(), pytest.raises(TryLater, match="ConnectError"):
        client.send_dossier(item(), UNIT, updating=False)


# ---------------------------------------------------------------------------- from configuration


def test_make_client_follows_the_connection(http: httpx.Client) -> None:
    """The form, the secrets by variable name, and the mapping's name of the dossier code (the
    official code comes back under the system's own name for it)."""
    renamed = load_mapping(REPO_ROOT / "tests" / "data" / "onestop" / "renamed.toml")
    secrets = {"ONESTOP_CLIENT_SECRET": CLIENT_SECRET, "PW_20_02": PASSWORD}
    with FakeOnestop(code_field="dossierNo", assign_official_codes=True) as fake:
        oauth = Connection(
            "000.00.10.H53",
            fake.base_url,
            ClientCredentials(fake.token_url, CLIENT_ID),
            UNIT,
            renamed,
        )
        client = make_client(oauth, http, secrets.get)
        assert isinstance(client, RestOnestop)
        official = client.send_dossier({"dossierNo": CODE}, UNIT, updating=False)
        assert official == fake.official[CODE]
        adapter = Connection(
            "000.20.02.H53",
            "",
            SessionLogin(fake.adapter_url, "auth", "integration", USERNAME, "PW_20_02", DSTCODE),
            "000.20.02.H22",
            renamed,
        )
        client = make_client(adapter, http, secrets.get)
        assert isinstance(client, SessionOnestop)
        assert client.lookup(official) == {"dossierNo": official}
        with pytest.raises(OnestopConfigError, match="PW_20_02 is not set"):
            make_client(adapter, http, {}.get)


# ---------------------------------------------------------------------------- the fake's own calls


def test_the_fakes_callbacks_carry_the_signature_core_verifies(fake: FakeOnestop) -> None:
    """The fake signs on its own (from the Interface's words); `verify_callback` must accept
    exactly what it sends, and its `fetch` gets a file the way the system would."""
    received: list[bool] = []

    async def webhook(request: Request) -> Response:
        ok = verify_callback(
            "callback-secret-1",
            request.headers.get("x-onestop-timestamp"),
            request.headers.get("x-onestop-signature"),
            await request.body(),
            datetime.now(UTC),
        )
        received.append(ok)
        return JSONResponse({"ok": True} if ok else {"error": "unauthorized"}, 200 if ok else 401)

    async def file(request: Request) -> Response:
        return Response(b"%PDF-1.4", media_type="application/pdf")

    app = Starlette(routes=[Route("/webhook/onestop", webhook, methods=["POST"]),
                            Route("/f/1", file)])  # fmt: skip
    body = {"MaHoSo": CODE, "TrangThaiHoSo": "4", "NoiDungXuLy": "Chuyển phòng chuyên môn"}
    with live_server(app) as url:
        assert fake.callback(f"{url}/webhook/onestop", "callback-secret-1", body).status_code == 200
        assert fake.callback(f"{url}/webhook/onestop", "forged", body).status_code == 401
        stale = int(time.time()) - 301
        answer = fake.callback(f"{url}/webhook/onestop", "callback-secret-1", body, stale)
        assert answer.status_code == 401
        assert fake.fetch(f"{url}/f/1").content == b"%PDF-1.4"
    assert received == [True, False, False]


def test_secrets_by_name_from_settings_environment_and_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ONESTOP_PASSWORD_H53=from-the-file\nONESTOP_CLIENT_SECRET=ignored\n")
    monkeypatch.setenv("ONESTOP_CLIENT_SECRET_H53", "from-the-environment")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        onestop_client_secret=SecretStr("from-settings"),
    )
    secret = secret_lookup(settings, str(env_file))
    assert secret("ONESTOP_CLIENT_SECRET") == "from-settings"
    assert secret("ONESTOP_CLIENT_SECRET_H53") == "from-the-environment"
    assert secret("ONESTOP_PASSWORD_H53") == "from-the-file"
    assert secret("ONESTOP_CALLBACK_SECRET") is None
    assert secret("ONESTOP_NOTHING") is None
