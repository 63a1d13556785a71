"""The embedded database holds personal data: only the product's own user may read it."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import text

from storage.db import make_engine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_folder_are_private(tmp_path: Path) -> None:
    folder = tmp_path / "var"
    database = folder / "hcc.sqlite3"
    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as connection:  # WAL: the -wal and -shm files appear too
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
        assert mode(Path(f"{database}-wal")) == 0o600
    engine.dispose()
    assert mode(folder) == 0o700
    assert mode(database) == 0o600


def test_an_older_world_readable_database_is_narrowed(tmp_path: Path) -> None:
    database = tmp_path / "hcc.sqlite3"
    database.touch(mode=0o644)
    database.chmod(0o644)
    make_engine(f"sqlite:///{database}").dispose()
    assert mode(database) == 0o600
