"""A fresh database per benchmark run: a SQLite file in a temporary folder, or a PostgreSQL
database created on the shared server and dropped afterwards."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from storage.db import make_engine

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
KINDS = ("sqlite", "postgresql")


def chosen(db: str) -> list[str]:
    """`--db sqlite|postgresql|both` as the list of kinds to run."""
    return list(KINDS) if db == "both" else [db]


@contextmanager
def fresh_database(kind: str, admin_url: str = POSTGRES_ADMIN) -> Iterator[str]:
    """The URL of an empty database of `kind`, removed when the block ends."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        return
    name = f"hcc_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def prepare(database_url: str) -> None:
    """What `hcc migrate` does: the schema, then the catalog's agencies and procedures."""
    from storage.db import session_scope
    from storage.dossiers import sync_catalog
    from storage.migrate import upgrade
    from webhook.runtime import build_runtime
    from webhook.settings import Settings

    upgrade(database_url)
    runtime = build_runtime(Settings(_env_file=None, database_url=database_url))  # type: ignore[call-arg]
    with session_scope(runtime.engine) as session:
        sync_catalog(session, runtime.catalog)
    runtime.engine.dispose()
