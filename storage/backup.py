"""Copies of an embedded install: backups and restores (SQLite + media on disk), and the move of
the media to S3-compatible storage when a commune outgrows the disk.

A backup takes the database first (the sqlite3 online backup API: a consistent snapshot while
the product writes) and the media after it: a file is stored before the row that names it is
committed, so every file the snapshot names is already on disk when the media are copied. The
manifest, written last, lists every file's SHA-256; a directory without one is no backup.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from storage.media import _KEY, DiskMediaStore, MediaStore

MANIFEST = "manifest.json"
DATABASE_FILE = "hcc.sqlite3"
MEDIA_DIR = "media"
_CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "pdf": "application/pdf"}


class BackupError(Exception):
    """Why a backup or restore cannot go on; `key` names its sentence (messages/backup.toml)."""

    def __init__(self, message_key: str, /, **values: object) -> None:
        self.key, self.values = message_key, values
        super().__init__(message_key)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_digest(key: str) -> str:
    """The SHA-256 a content-addressed key names."""
    return key.rsplit("/", 1)[-1].split(".", 1)[0]


def content_type_of(key: str) -> str:
    return _CONTENT_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")


def sqlite_path(database_url: str) -> Path:
    """The file of a SQLite URL; BackupError for PostgreSQL (pg_dump, docs/operations.md)."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database:
        raise BackupError("backup.not_sqlite")
    return Path(url.database)


# --- which media the database names -----------------------------------------------------------


Query = Callable[[str], Iterable[Any]]  # SQL → rows, for sqlite3 and SQLAlchemy alike


def sqlite_query(connection: sqlite3.Connection) -> Query:
    return lambda sql: connection.execute(sql).fetchall()


def referenced_media(query: Query) -> set[str]:
    """Every media key the database names: documents of dossiers, feedback attachments, and the
    photos of dialogues still in progress (in the conversation state)."""
    keys: set[str] = {row[0] for row in query("SELECT media_key FROM documentfile")}
    for (value,) in query("SELECT media_keys FROM feedback"):
        keys.update(_keys_in(_json(value)))
    for (value,) in query("SELECT conversation FROM channelidentity"):
        keys.update(_keys_in(_json(value)))
    return {key for key in keys if _KEY.match(key)}


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _keys_in(value: Any) -> Iterator[str]:
    if isinstance(value, str) and _KEY.match(value):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _keys_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys_in(item)


# --- backup and restore -------------------------------------------------------------------------


@dataclass
class Manifest:
    created_at: str
    database_sha256: str
    media: dict[str, str] = field(default_factory=dict)  # key → sha256

    def write(self, directory: Path) -> None:
        body = {"version": 1, "created_at": self.created_at, "database": DATABASE_FILE,
                "database_sha256": self.database_sha256, "media": self.media}  # fmt: skip
        temp = directory / (MANIFEST + ".tmp")
        temp.write_text(json.dumps(body, indent=1, sort_keys=True), encoding="utf-8")
        temp.replace(directory / MANIFEST)

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        try:
            body = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
            return cls(body["created_at"], body["database_sha256"], dict(body["media"]))
        except (OSError, ValueError, KeyError, TypeError):
            raise BackupError("backup.no_manifest", path=directory) from None


def _snapshot(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (online backup API, not a file copy), in one
    step: a read transaction that WAL lets writers work beside (a backup in several steps starts
    again after each write by another connection, and could never end under load)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)
    finally:
        dst.close()
        src.close()


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def backup(
    database_url: str, media: DiskMediaStore, directory: Path,
    progress: Callable[[str], None] = lambda _: None,
) -> Manifest:  # fmt: skip
    """Database snapshot, then every media file (named by it or on disk), then the manifest."""
    source = sqlite_path(database_url)
    if not source.exists():
        raise BackupError("backup.no_database", path=source)
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise BackupError("backup.target_not_empty", path=directory)
    database = directory / DATABASE_FILE
    _snapshot(source, database)
    progress(f"database {database}")
    with sqlite3.connect(database) as connection:
        named = referenced_media(sqlite_query(connection))
    connection.close()
    manifest = Manifest(datetime.now(UTC).isoformat(), _file_hash(database))
    target = DiskMediaStore(directory / MEDIA_DIR)
    missing = []
    for key in sorted(named | set(media.stored_keys())):
        try:
            data = media.get(key)
        except KeyError:
            missing.append(key)
            continue
        if sha256(data) != key_digest(key):
            raise BackupError("backup.source_corrupt", key=key)
        stored = target.put(data, content_type_of(key))
        assert stored.key == key
        manifest.media[key] = stored.sha256
        progress(f"media {key}")
    if missing:  # named by a dossier but not on disk: the backup would restore a broken install
        raise BackupError("backup.media_missing", count=len(missing), keys=", ".join(missing[:5]))
    manifest.write(directory)
    return manifest


def verify(directory: Path) -> list[str]:
    """What in a backup does not match its manifest (empty: all of it does)."""
    manifest = Manifest.read(directory)
    problems = []
    database = directory / DATABASE_FILE
    if not database.exists() or _file_hash(database) != manifest.database_sha256:
        problems.append(DATABASE_FILE)
    for key, digest in manifest.media.items():
        path = directory / MEDIA_DIR / key
        if not _KEY.match(key) or not path.exists() or _file_hash(path) != digest:
            problems.append(key)
    return problems


def _empty_database(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return True
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        tables = connection.execute("SELECT count(*) FROM sqlite_master WHERE type='table'")
        empty = tables.fetchone()[0] == 0
    connection.close()
    return bool(empty)


def restore(
    directory: Path, database_url: str, media: DiskMediaStore,
    progress: Callable[[str], None] = lambda _: None,
) -> Manifest:  # fmt: skip
    """Into an empty install only; the backup is verified before anything is written, and the
    restored database and files after."""
    target = sqlite_path(database_url)
    manifest = Manifest.read(directory)
    if not _empty_database(target):
        raise BackupError("backup.restore_database_not_empty", path=target)
    if media.stored_keys():
        raise BackupError("backup.restore_media_not_empty", path=media.root)
    problems = verify(directory)
    if problems:
        raise BackupError("backup.mismatch", count=len(problems), keys=", ".join(problems[:5]))
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    _snapshot(directory / DATABASE_FILE, target)
    progress(f"database {target}")
    source = DiskMediaStore(directory / MEDIA_DIR)
    for key, digest in manifest.media.items():
        stored = media.put(source.get(key), content_type_of(key))
        if stored.key != key or sha256(media.get(key)) != digest:
            raise BackupError("backup.mismatch", count=1, keys=key)
        progress(f"media {key}")
    with sqlite3.connect(target) as connection:
        check = connection.execute("PRAGMA integrity_check").fetchone()[0]
    connection.close()
    if check != "ok":
        raise BackupError("backup.restored_corrupt", detail=check)
    return manifest


# --- the move to S3 -----------------------------------------------------------------------------


@dataclass
class MediaMove:
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already there, verified
    mismatched: list[str] = field(default_factory=list)  # the target's bytes differ from the name
    missing: list[str] = field(default_factory=list)  # named by the database, not on the source


def move_media(
    source: MediaStore, target: MediaStore, keys: Iterable[str],
    progress: Callable[[int, int, str, str], None] = lambda *_: None,
) -> MediaMove:  # fmt: skip
    """Copy each key to `target` and read it back to check its SHA-256. Resumable: a key already
    on the target is verified and skipped; a bad copy there is reported, never overwritten."""
    result = MediaMove()
    todo = sorted(set(keys))
    for number, key in enumerate(todo, 1):
        outcome = _move_one(source, target, key)
        getattr(result, outcome).append(key)
        progress(number, len(todo), key, outcome)
    return result


def _move_one(source: MediaStore, target: MediaStore, key: str) -> str:
    digest = key_digest(key)
    if target.exists(key):
        return "skipped" if sha256(target.get(key)) == digest else "mismatched"
    try:
        data = source.get(key)
    except KeyError:
        return "missing"
    if sha256(data) != digest:
        return "mismatched"
    stored = target.put(data, content_type_of(key))
    if stored.key != key or sha256(target.get(key)) != digest:
        return "mismatched"
    return "copied"
