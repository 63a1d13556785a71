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
        media=media_store(settings),
        flow_rules=flow_rules(catalog, onestop),
        onestop=onestop,
    )


def media_store(settings: Settings, media_url: str | None = None) -> MediaStore:
    """The store of MEDIA_URL (or `media_url`): S3 for `s3://…`, else the disk at MEDIA_DIR."""
    url = media_url or settings.media_url
    if not url:
        return DiskMediaStore(settings.media_dir)
    from storage.media_s3 import S3MediaStore, S3Options, parse_media_url  # boto3 only if used

    secret = settings.s3_secret_access_key
    options = S3Options(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
        sse=settings.s3_sse,
        sse_kms_key_id=settings.s3_sse_kms_key_id,
        connect_timeout=settings.s3_connect_timeout_seconds,
        read_timeout=settings.s3_read_timeout_seconds,
        max_attempts=settings.s3_max_attempts,
        addressing_style=settings.s3_addressing_style,
    )
    return S3MediaStore(parse_media_url(url), options)


def flow_rules(catalog: Catalog, onestop: Connections) -> FlowRules:
    """Which of the catalog's agencies send their dossiers to a one-stop system, and when."""
    forward_on = {}
    for code in catalog.agencies:
        connection = onestop.get(code)
        if connection is not None:
            forward_on[code] = ForwardOn(connection.forward_on)
    return FlowRules(forward_on)
