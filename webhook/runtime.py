"""What a running process holds: settings, database engine, catalog, calendar, media store.

Built once per process (web worker, rq worker, CLI) from `Settings`; stateless otherwise, so
several web workers can serve side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import Engine

from core.calendar import WorkingCalendar, load_calendar
from core.catalog import Catalog, load_catalog
from core.flows import NO_ONESTOP, FlowRules
from storage.db import DatabaseTimeouts, autocommit, make_async_reader, make_engine
from storage.media import DiskMediaStore, MediaStore
from webhook.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    reader: Engine  # autocommit view of `engine` for hot single-statement reads (lookups)
    async_reader: AsyncConnectionPool | None  # PostgreSQL only: hot reads off the event loop
    catalog: Catalog
    calendar: WorkingCalendar
    media: MediaStore
    flow_rules: FlowRules = field(default=NO_ONESTOP)  # which agencies forward to a one-stop system


def build_runtime(settings: Settings) -> Runtime:
    timeouts = DatabaseTimeouts(
        connect=settings.database_connect_timeout_seconds,
        statement=settings.database_statement_timeout_seconds,
        pool=settings.database_pool_timeout_seconds,
    )
    engine = make_engine(settings.database_url, timeouts, settings.database_pool_size)
    return Runtime(
        settings=settings,
        engine=engine,
        reader=autocommit(engine),
        async_reader=make_async_reader(
            settings.database_url, timeouts, settings.database_pool_size
        ),
        catalog=load_catalog(settings.catalog_dir),
        calendar=load_calendar(settings.calendar_overrides),
        media=DiskMediaStore(settings.media_dir),
    )
