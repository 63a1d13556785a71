"""What a running process holds: settings, database engine, catalog, calendar, media store.

Built once per process (web worker, rq worker, CLI) from `Settings`; stateless otherwise, so
several web workers can serve side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from core.calendar import WorkingCalendar, load_calendar
from core.catalog import Catalog, load_catalog
from storage.db import make_engine
from storage.media import DiskMediaStore, MediaStore
from webhook.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    catalog: Catalog
    calendar: WorkingCalendar
    media: MediaStore


def build_runtime(settings: Settings) -> Runtime:
    return Runtime(
        settings=settings,
        engine=make_engine(settings.database_url),
        catalog=load_catalog(settings.catalog_dir),
        calendar=load_calendar(settings.calendar_overrides),
        media=DiskMediaStore(settings.media_dir, settings.media_url),
    )
