"""The app-wide error layer (webhook/errors.py): Vietnamese pages for people, `{"error",
"message"}` for programs, and a bounded 503 with Retry-After while PostgreSQL is down — on a
PostgreSQL instance of the test's own, stopped and started again."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.messages import render
from tests.servers import PostgresServer
from tests.webhook.conftest import submitted_code
from tests.webhook.test_sms import SECRET, send
from webhook.app import create_app
from webhook.settings import Settings

PAGE = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends
JSON = {"Accept": "application/json"}
UNAVAILABLE = render("http.unavailable", "vi")
BOUND = 3.0  # seconds an answer may take while the database is down


def _client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        media_dir=tmp_path / "media",
        public_base_url="https://hcc.example.vn",
        sms_webhook_secret=SecretStr(SECRET),
        load_demo_data=False,
        database_connect_timeout_seconds=2,
        database_pool_timeout_seconds=1,
    )
    app = create_app(settings)
    with TestClient(app, base_url="https://testserver") as client:
        yield client
    app.state.runtime.engine.dispose()


@pytest.fixture
def on_own_postgres(
    own_postgres: tuple[PostgresServer, str], tmp_path: Path
) -> Iterator[TestClient]:
    yield from _client(own_postgres[1], tmp_path)


@pytest.fixture
def on_sqlite(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(sqlite_url, tmp_path)


def _timed(client: TestClient, url: str, headers: dict[str, str]) -> tuple[float, object]:
    started = time.monotonic()
    response = client.get(url, headers=headers)
    return time.monotonic() - started, response


def test_lookup_answers_503_try_again_later_while_postgres_is_down_then_200(
    on_own_postgres: TestClient, own_postgres: tuple[PostgresServer, str]
) -> None:
    client, (server, _) = on_own_postgres, own_postgres
    code = submitted_code(client.app.state.runtime, "khai-sinh")  # type: ignore[attr-defined]
    url = f"/lookup/{code}"
    assert client.get(url, headers=PAGE).status_code == 200
    server.stop()

    for _ in range(2):  # the pool's broken connection first, then no connection at all
        took, page = _timed(client, url, PAGE)
        assert took < BOUND
        assert page.status_code == 503  # type: ignore[attr-defined]
        assert page.headers["retry-after"].isdigit()  # type: ignore[attr-defined]
        assert UNAVAILABLE in page.text and f'href="{url}"' in page.text  # type: ignore[attr-defined]
        took, answer = _timed(client, url, JSON)
        assert took < BOUND
        assert answer.status_code == 503 and answer.headers["retry-after"]  # type: ignore[attr-defined]
        assert answer.json() == {"error": "unavailable", "message": UNAVAILABLE}  # type: ignore[attr-defined]
    started = time.monotonic()
    status, body = send(client, f"HS {code}")  # a webhook through the ORM engine
    assert time.monotonic() - started < BOUND
    assert status == 503 and body["error"] == "unavailable"

    server.start()
    statuses = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and statuses[-1:] != [200]:
        statuses.append(client.get(url, headers=PAGE).status_code)
        time.sleep(0.2)
    assert statuses[-1] == 200 and set(statuses) <= {503, 200}, statuses
    assert send(client, f"HS {code}")[0] == 200


@pytest.mark.parametrize(
    ("method", "url", "status", "message", "way_back"),
    [
        ("GET", "/lookup/a/b", 404, "http.not_found", "/lookup"),
        ("POST", "/lookup", 405, "http.method_not_allowed", "/lookup"),
        ("GET", "/admin/no-such-page", 404, "http.not_found", "/admin"),
        ("GET", "/admin/logout", 405, "http.method_not_allowed", "/admin"),
        ("POST", "/admin/login", 403, "admin.error.csrf", "/admin"),  # the route's own sentence
    ],
)
def test_people_get_a_vietnamese_page_with_a_way_back(
    on_sqlite: TestClient, method: str, url: str, status: int, message: str, way_back: str
) -> None:
    page = on_sqlite.request(method, url, headers=PAGE)
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert render(message, "vi") in page.text
    assert f'href="{way_back}"' in page.text
    as_json = on_sqlite.request(method, url, headers=JSON)
    assert as_json.status_code == status
    assert as_json.json()["message"] == render(message, "vi")


def test_programs_get_json_and_the_api_description_is_not_public(on_sqlite: TestClient) -> None:
    missing = on_sqlite.get("/chat/api/nothing", headers=PAGE)  # an API path, even from a browser
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": render("http.not_found", "vi")}
    for url in ("/openapi.json", "/docs", "/redoc"):
        assert on_sqlite.get(url).status_code == 404, url


def test_an_unexpected_failure_is_a_vietnamese_page_or_json_never_a_trace(
    on_sqlite: TestClient,
) -> None:
    """A dossier whose procedure left the catalog (edited by hand) breaks its panel page: the
    officer sees the Vietnamese 500 page with a way back, a program the JSON body."""
    from tests.webhook.test_admin import first_agency, signed_in

    runtime = on_sqlite.app.state.runtime  # type: ignore[attr-defined]
    code = submitted_code(runtime, "khai-sinh")
    path = runtime.engine.url.database  # by hand, as an operator would (no foreign keys)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE dossier SET procedure_code = 'gone' WHERE code = ?", (code,))
    quiet = TestClient(
        on_sqlite.app,
        base_url="https://testserver",
        raise_server_exceptions=False,
        follow_redirects=False,
    )
    signed_in(quiet, runtime, "lan.ttphcc", first_agency(runtime.catalog))
    page = quiet.get(f"/admin/dossiers/{code}", headers=PAGE)
    assert page.status_code == 500
    assert render("http.internal_error", "vi") in page.text and 'href="/admin"' in page.text
    assert "Traceback" not in page.text and "KeyError" not in page.text
    answer = quiet.get(f"/admin/dossiers/{code}", headers=JSON)
    assert answer.status_code == 500
    assert answer.json() == {
        "error": "internal_error",
        "message": render("http.internal_error", "vi"),
    }


def test_an_invalid_parameter_is_a_vietnamese_page_with_a_way_back(on_sqlite: TestClient) -> None:
    page = on_sqlite.get("/chat?kiosk=perhaps", headers=PAGE)
    assert page.status_code == 422
    assert render("http.invalid", "vi") in page.text and 'href="/lookup"' in page.text
