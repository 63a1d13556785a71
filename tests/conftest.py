"""Shared fixtures: real databases (SQLite file, PostgreSQL), the shipped catalog and calendar.

PostgreSQL and Redis come from TEST_POSTGRES_URL / TEST_REDIS_URL (set by .ci/run). Without them a
test skips with the reason shown; under CI=true it fails instead, so CI never silently skips.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from core.calendar import WorkingCalendar, load_calendar
from core.catalog import Catalog, load_catalog
from storage.db import make_engine, session_scope
from storage.dossiers import sync_catalog
from storage.migrate import upgrade
from tests.fakes.telegram import TELEGRAM_SECRET, TELEGRAM_TOKEN, FakeTelegram
from tests.servers import PostgresServer, live_server
from webhook.settings import REPO_ROOT, Settings

pytest_plugins = ["tests.fakes.s3"]  # the S3 server fixtures (s3, iam_s3, slow_s3)

IN_CI = os.environ.get("CI", "").lower() == "true"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

# The servers the suite may use. Taken out of the environment so that no test app picks them up
# by accident: a test that wants PostgreSQL or Redis asks for the fixture.
_env_database = os.environ.pop("DATABASE_URL", "")
_env_redis = os.environ.pop("REDIS_URL", "")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL") or (
    _env_database if _env_database.startswith("postgresql") else DEFAULT_POSTGRES_URL
)
REDIS_URL = os.environ.get("TEST_REDIS_URL") or _env_redis or DEFAULT_REDIS_URL


def unavailable(reason: str) -> None:
    """Skip outside CI; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(REPO_ROOT / "data" / "catalog" / "tay-ninh")


@pytest.fixture(scope="session")
def calendar() -> WorkingCalendar:
    return load_calendar(REPO_ROOT / "data" / "calendar" / "vn-overrides.toml")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> Path:
    """A migrated SQLite file with the catalog synced; each test gets a copy (fast, isolated)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        sync_catalog(session, catalog)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = POSTGRES_URL
    try:
        engine = make_engine(url, pool_size=1, max_overflow=0)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:
        unavailable(f"PostgreSQL not reachable at {url}: {type(error).__name__}")
    return url


def _admin_execute(admin_url: str, statement: str) -> None:
    engine = make_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=0)
    with engine.connect() as connection:
        connection.exec_driver_sql(statement)
    engine.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    from redis import Redis

    try:
        Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except Exception as error:
        unavailable(f"Redis not reachable at {REDIS_URL}: {type(error).__name__}")
    return REDIS_URL


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str, catalog: Catalog) -> Iterator[str]:
    """A migrated PostgreSQL database used as TEMPLATE for each test's own database."""
    name = f"hcc_template_{uuid.uuid4().hex[:8]}"
    _admin_execute(postgres_admin_url, f'CREATE DATABASE "{name}"')
    url = make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        sync_catalog(session, catalog)
    engine.dispose()
    yield name
    _admin_execute(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _postgres_database(admin_url: str, template: str) -> Iterator[str]:
    name = f"hcc_test_{uuid.uuid4().hex[:10]}"
    _admin_execute(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_admin_url: str, postgres_template: str) -> Iterator[str]:
    yield from _postgres_database(postgres_admin_url, postgres_template)


@pytest.fixture(scope="session")
def own_postgres_server(catalog: Catalog) -> Iterator[PostgresServer]:
    """A PostgreSQL instance of the suite's own (initdb + pg_ctl on a free port), for tests that
    stop and start the database; it holds a migrated template database `hcc_template`."""
    missing = PostgresServer.missing_requirement()
    if missing is not None:
        unavailable(missing)
    binaries = PostgresServer.find_binaries()
    assert binaries is not None
    server = PostgresServer(binaries)
    try:
        server.start()
        _admin_execute(server.url(), 'CREATE DATABASE "hcc_template"')
        url = server.url("hcc_template")
        upgrade(url)
        engine = make_engine(url)
        with session_scope(engine) as session:
            sync_catalog(session, catalog)
        engine.dispose()
        yield server
    finally:
        server.remove()


@pytest.fixture
def own_postgres(own_postgres_server: PostgresServer) -> Iterator[tuple[PostgresServer, str]]:
    """(the server, the URL of a fresh migrated database on it); the server is running at the
    start of each test even if the previous one left it stopped."""
    if not own_postgres_server.running():
        own_postgres_server.start()
    for url in _postgres_database(own_postgres_server.url(), "hcc_template"):
        yield own_postgres_server, url
        if not own_postgres_server.running():
            own_postgres_server.start()


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "hcc.sqlite3"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Run the test on both databases the product supports."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for a test app; never reads the developer's .env."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        media_dir=tmp_path / "media",
        public_base_url="https://hcc.example.vn",
        sms_webhook_secret="sms-test-secret",  # type: ignore[arg-type]
        load_demo_data=False,
    )


@pytest.fixture
def telegram() -> Iterator[tuple[FakeTelegram, str]]:
    """The fake Telegram Bot API on a loopback port: (recorder, base URL)."""
    fake = FakeTelegram(TELEGRAM_TOKEN)
    with live_server(fake.app) as base:
        yield fake, base


@pytest.fixture
def telegram_settings(settings: Settings, telegram: tuple[FakeTelegram, str]) -> Settings:
    """`settings` with the citizen bot configured against the fake Bot API."""
    return settings.model_copy(
        update={
            "telegram_citizen_token": SecretStr(TELEGRAM_TOKEN),
            "telegram_webhook_secret": SecretStr(TELEGRAM_SECRET),
            "telegram_api_base": telegram[1],
            "telegram_per_chat_interval": 0.0,
        }
    )
