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
from core.flows import NO_ONESTOP, FlowRules, ForwardOn
from core.onestop import Connections, load_connections
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
    onestop: Connections = field(default_factory=Connections)  # how (docs/onestop.md)


def build_runtime(settings: Settings) -> Runtime:
    timeouts = DatabaseTimeouts(
        connect=settings.database_connect_timeout_seconds,
        statement=settings.database_statement_timeout_seconds,
        pool=settings.database_pool_timeout_seconds,
    )
    engine = make_engine(settings.database_url, timeouts, settings.database_pool_size)
    catalog = load_catalog(settings.catalog_dir)
    onestop = load_connections(settings.onestop_agencies_file, settings.onestop_defaults)
    return Runtime(
        settings=settings,
        engine=engine,
        reader=autocommit(engine),
        async_reader=make_async_reader(
            settings.database_url, timeouts, settings.database_pool_size
        ),
        catalog=catalog,
        calendar=load_calendar(settings.calendar_overrides),
        media=DiskMediaStore(settings.media_dir),
        flow_rules=flow_rules(catalog, onestop),
        onestop=onestop,
    )


def flow_rules(catalog: Catalog, onestop: Connections) -> FlowRules:
    """Which of the catalog's agencies send their dossiers to a one-stop system, and when."""
    forward_on = {}
    for code in catalog.agencies:
        connection = onestop.get(code)
        if connection is not None:
            forward_on[code] = ForwardOn(connection.forward_on)
    return FlowRules(forward_on)
