"""Media on disk: content-addressed, written atomically, stored once, safe keys only."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from storage.media import DiskMediaStore


def test_round_trip(tmp_path: Path) -> None:
    store = DiskMediaStore(tmp_path)
    stored = store.put(b"%PDF-1.4 demo", "application/pdf")
    assert stored.key.endswith(".pdf") and stored.size == 13
    assert store.get(stored.key) == b"%PDF-1.4 demo"
    assert store.exists(stored.key)
    assert stored.key.split("/")[-1].startswith(stored.sha256)


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    store = DiskMediaStore(tmp_path)
    first = store.put(b"\xff\xd8photo", "image/jpeg")
    second = store.put(b"\xff\xd8photo", "image/jpeg")
    assert first == second
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1


def test_concurrent_puts_leave_one_file_and_no_temp_files(tmp_path: Path) -> None:
    store = DiskMediaStore(tmp_path)
    data = b"\x89PNG" + bytes(range(256)) * 4000
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: store.put(data, "image/png").key, range(8)))
    assert len(keys) == 1
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1 and not files[0].name.startswith(".tmp")
    assert store.get(keys.pop()) == data


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "/etc/passwd", "ab/cd/../../x.jpg", "ab/cd/notahash.jpg", ""]
)
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    store = DiskMediaStore(tmp_path)
    with pytest.raises(KeyError):
        store.get(key)
    assert not store.exists(key)


def test_missing_key_is_a_key_error(tmp_path: Path) -> None:
    store = DiskMediaStore(tmp_path)
    with pytest.raises(KeyError):
        store.get("ab/cd/" + "ab" * 32 + ".jpg")
