"""Media store for document photos: content-addressed files written atomically.

Names are the SHA-256 of the content, so a re-sent photo is stored once and a stored file can be
verified against its name. `storage.media_s3.S3MediaStore` implements the same `MediaStore`
protocol on S3-compatible object storage (`MEDIA_URL=s3://bucket/prefix`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.documents import MAX_BYTES, StorageUnavailable

log = logging.getLogger(__name__)

_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}
_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}\.(jpg|png|pdf|bin)$")


@dataclass(frozen=True)
class StoredMedia:
    key: str
    sha256: str
    size: int
    content_type: str


class MediaStore(Protocol):
    def put(self, data: bytes, content_type: str) -> StoredMedia:
        """Keep `data`; `StorageUnavailable` when the store cannot take it now."""
        ...

    def get(self, key: str) -> bytes:
        """The stored bytes; KeyError when `key` holds nothing."""
        ...

    def exists(self, key: str) -> bool: ...

    def presigned_url(self, key: str, seconds: int) -> str | None:
        """A URL another system may GET `key` from for `seconds`; None when the store has none
        (the disk: our own signed links serve its files)."""
        ...

    def problem(self) -> str | None:
        """Why the store cannot take files now (for /healthz and the panel), or None."""
        ...


# A disk with less room than this cannot take the next photo (plus its temporary copy).
MIN_FREE_BYTES = 2 * MAX_BYTES
FAILURE_MEMORY = 300.0  # seconds a failed write is reported after it happened


def media_key(digest: str, content_type: str) -> str:
    return f"{digest[:2]}/{digest[2:4]}/{digest}.{_EXTENSIONS.get(content_type, 'bin')}"


class DiskMediaStore:
    """Files under `root`; temp file + fsync + rename, so a reader never sees half a photo."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._failed: tuple[float, str] | None = None  # (monotonic time, reason) of the last

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise KeyError(key)
        return self.root / key

    def put(self, data: bytes, content_type: str) -> StoredMedia:
        digest = hashlib.sha256(data).hexdigest()
        key = media_key(digest, content_type)
        path = self._path(key)
        if not path.exists():
            try:
                self._write(path, data)
            except OSError as error:  # full, read-only, gone: nothing half-written is left
                reason = os.strerror(error.errno) if error.errno else type(error).__name__
                self._failed = (time.monotonic(), reason)
                log.error("media store %s cannot take files: %s", self.root, reason)
                raise StorageUnavailable(reason) from error
            self._failed = None
        return StoredMedia(key, digest, len(data), content_type)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def problem(self) -> str | None:
        """A write failed lately, or the disk has no room for the next photo."""
        if self._failed is not None and time.monotonic() - self._failed[0] < FAILURE_MEMORY:
            return self._failed[1]
        try:
            free = shutil.disk_usage(self.root if self.root.exists() else self.root.parent).free
        except OSError as error:
            return os.strerror(error.errno) if error.errno else type(error).__name__
        if free < MIN_FREE_BYTES:
            return f"{free // (1024 * 1024)} MB free"
        return None

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).exists()
        except KeyError:
            return False

    def presigned_url(self, key: str, seconds: int) -> str | None:
        return None

    def stored_keys(self) -> list[str]:
        """Every stored key (backups, the move to S3); temporary files are not keys."""
        if not self.root.exists():
            return []
        found = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(key for key in found if _KEY.match(key))
