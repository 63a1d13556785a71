"""Media store for document photos: content-addressed files written atomically.

Names are the SHA-256 of the content, so a re-sent photo is stored once and a stored file can be
verified against its name. An S3-compatible store can implement the same `MediaStore` protocol.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}
_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}\.(jpg|png|pdf|bin)$")


@dataclass(frozen=True)
class StoredMedia:
    key: str
    sha256: str
    size: int
    content_type: str


class MediaStore(Protocol):
    def put(self, data: bytes, content_type: str) -> StoredMedia: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...


def media_key(digest: str, content_type: str) -> str:
    return f"{digest[:2]}/{digest[2:4]}/{digest}.{_EXTENSIONS.get(content_type, 'bin')}"


class DiskMediaStore:
    """Files under `root`; temp file + fsync + rename, so a reader never sees half a photo."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise KeyError(key)
        return self.root / key

    def put(self, data: bytes, content_type: str) -> StoredMedia:
        digest = hashlib.sha256(data).hexdigest()
        key = media_key(digest, content_type)
        path = self._path(key)
        if not path.exists():
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
        return StoredMedia(key, digest, len(data), content_type)

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
