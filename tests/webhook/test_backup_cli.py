"""`hcc backup` / `hcc restore` of the embedded install, and `hcc media migrate --to s3://`.

The backup is taken while a thread keeps submitting dossiers with photos the way the product
does (the photo stored first, then the rows that name it), so the snapshot is a live one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from core.calendar import WorkingCalendar
from core.catalog import Catalog
from storage.db import make_engine, session_scope
from storage.media import DiskMediaStore
from storage.models import ChannelIdentity, DocumentFile, Feedback
from tests.dossiers import citizen_dossier
from tests.fakes.s3 import S3Bucket
from webhook.cli import main
from webhook.settings import get_settings


@pytest.fixture
def install(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, DiskMediaStore]]:
    """An embedded install (migrated SQLite file, media dir) that the `hcc` commands use."""
    database = tmp_path / "live" / "hcc.sqlite3"
    database.parent.mkdir()
    shutil.copy(sqlite_template, database)
    yield from _configured(monkeypatch, f"sqlite:///{database}", tmp_path / "live" / "media")


def _configured(
    monkeypatch: pytest.MonkeyPatch, url: str, media: Path
) -> Iterator[tuple[str, DiskMediaStore]]:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("MEDIA_DIR", str(media))
    for name in ("MEDIA_URL", "S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield url, DiskMediaStore(media)
    get_settings.cache_clear()


def use_s3(monkeypatch: pytest.MonkeyPatch, s3: S3Bucket) -> None:
    """The `hcc` commands reach the test's S3 server (`--to` names the bucket)."""
    env = {"S3_ENDPOINT_URL": s3.endpoint, "S3_REGION": "us-east-1",
           "S3_ACCESS_KEY_ID": "test", "S3_SECRET_ACCESS_KEY": "test"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def photo(n: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + hashlib.sha256(str(n).encode()).digest() * 64


def submit_with_photos(
    engine: Engine, media: DiskMediaStore, catalog: Catalog, calendar: WorkingCalendar, n: int
) -> None:
    """A dossier with two photos, as the product stores them: the files, then the rows."""
    dossier_id, _ = citizen_dossier(engine, catalog, calendar, external_id=f"chat-{n}")
    stored = [media.put(photo(2 * n), "image/jpeg"), media.put(photo(2 * n + 1), "image/jpeg")]
    with session_scope(engine) as session:
        for file in stored:
            row = DocumentFile(dossier_id=dossier_id, component_code="c1", media_key=file.key,
                               sha256=file.sha256, size=file.size,
                               content_type=file.content_type)  # fmt: skip
            session.add(row)


def test_a_backup_taken_while_writing_restores_into_an_empty_install(
    install: tuple[str, DiskMediaStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    catalog: Catalog, calendar: WorkingCalendar, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    url, media = install
    engine = make_engine(url)  # held open as a serving process does: commits sit in the WAL
    for n in range(5):
        submit_with_photos(engine, media, catalog, calendar, n)
    stop, written = threading.Event(), [0]

    def keep_writing() -> None:
        n = 100
        while not stop.is_set():
            submit_with_photos(engine, media, catalog, calendar, n)
            n, written[0] = n + 1, written[0] + 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        while written[0] < 3:  # the writer is under way before the backup starts
            threading.Event().wait(0.01)
        before = written[0]
        assert main(["backup", str(tmp_path / "backup")]) == 0
    finally:
        stop.set()
        writer.join()
        engine.dispose()
    with sqlite3.connect(tmp_path / "backup" / "hcc.sqlite3") as connection:
        kept = connection.execute("SELECT count(*) FROM dossier").fetchone()[0]
    connection.close()
    assert 5 + before <= kept <= 5 + written[0]  # what was committed before the snapshot is in
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert len(manifest["media"]) >= 16

    fresh = tmp_path / "fresh"
    for _ in _configured(monkeypatch, f"sqlite:///{fresh / 'hcc.sqlite3'}", fresh / "media"):
        assert main(["restore", str(tmp_path / "backup")]) == 0
        with sqlite3.connect(fresh / "hcc.sqlite3") as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            files = connection.execute("SELECT media_key, sha256 FROM documentfile").fetchall()
        connection.close()
        assert len(files) >= 10
        restored = DiskMediaStore(fresh / "media")
        for key, digest in files:  # every document the restored database names is there, intact
            assert hashlib.sha256(restored.get(key)).hexdigest() == digest
        assert set(restored.stored_keys()) == set(manifest["media"])

        capsys.readouterr()
        assert main(["restore", str(tmp_path / "backup")]) == 1  # not over an install with data
        assert "Không khôi phục: cơ sở dữ liệu" in capsys.readouterr().err


def test_restore_refuses_a_tampered_backup_and_writes_nothing(
    install: tuple[str, DiskMediaStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    catalog: Catalog, calendar: WorkingCalendar, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    url, media = install
    engine = make_engine(url)
    submit_with_photos(engine, media, catalog, calendar, 1)
    engine.dispose()
    backup = tmp_path / "backup"
    assert main(["backup", str(backup)]) == 0
    assert main(["backup", str(backup)]) == 1  # never into a directory that holds something
    assert "không trống" in capsys.readouterr().err
    victim = next(p for p in (backup / "media").rglob("*.jpg"))
    victim.write_bytes(b"\xff\xd8 not the photo")
    fresh = tmp_path / "fresh"
    for _ in _configured(monkeypatch, f"sqlite:///{fresh / 'hcc.sqlite3'}", fresh / "media"):
        assert main(["restore", str(backup)]) == 1
        assert "không khớp mã băm" in capsys.readouterr().err
        assert not (fresh / "hcc.sqlite3").exists() and not (fresh / "media").exists()


def test_backup_of_postgresql_or_s3_media_points_to_their_own_tools(
    install: tuple[str, DiskMediaStore],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("MEDIA_URL", "s3://hcc-media/x")
    get_settings.cache_clear()
    assert main(["backup", str(tmp_path / "backup")]) == 1
    assert "Ảnh đang lưu trên S3" in capsys.readouterr().err
    url = "postgresql://postgres@127.0.0.1:5432/test"
    for _ in _configured(monkeypatch, url, tmp_path / "media"):
        assert main(["backup", str(tmp_path / "backup")]) == 1
        assert "pg_dump" in capsys.readouterr().err
    assert not (tmp_path / "backup").exists()


def test_media_migrate_copies_verifies_resumes_and_reports_a_bad_copy(
    install: tuple[str, DiskMediaStore], s3: S3Bucket, monkeypatch: pytest.MonkeyPatch,
    catalog: Catalog, calendar: WorkingCalendar, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    url, media = install
    engine = make_engine(url)
    for n in range(3):
        submit_with_photos(engine, media, catalog, calendar, n)
    attachment = media.put(b"%PDF-1.4 feedback", "application/pdf")
    with session_scope(engine) as session:
        session.add(Feedback(citizen_id=1, channel="telegram", text="ảnh kèm",
                             media_keys=[attachment.key]))  # fmt: skip
    engine.dispose()
    use_s3(monkeypatch, s3)

    assert main(["media", "migrate", "--to", s3.url]) == 0
    out = capsys.readouterr().out
    assert "[7/7] copied" in out and "7 tệp đã chép" in out
    target = s3.store()
    for key in media.stored_keys():  # the S3 store serves the very bytes of the disk
        assert target.get(key) == media.get(key)

    assert main(["media", "migrate", "--to", s3.url]) == 0  # again: nothing copied twice
    assert "0 tệp đã chép, 7 tệp đã có sẵn" in capsys.readouterr().out

    bad = media.stored_keys()[0]
    s3.client.put_object(Bucket=s3.bucket, Key=f"media/{bad}", Body=b"corrupted")
    lost = "ab/cd/" + "ab" * 32 + ".jpg"  # named by the database, on neither store
    engine = make_engine(url)
    with session_scope(engine) as session:
        session.add(Feedback(citizen_id=1, channel="telegram", text="?", media_keys=[lost]))
    engine.dispose()
    assert main(["media", "migrate", "--to", s3.url]) == 1
    err = capsys.readouterr().err
    assert f"mismatch {bad}" in err and f"missing  {lost}" in err
    assert s3.objects()[f"media/{bad}"] == b"corrupted"  # reported, not overwritten

    assert main(["media", "migrate", "--to", "https://not-s3"]) == 2


@pytest.mark.postgres
def test_media_migrate_reads_the_keys_of_a_postgresql_install(
    postgres_url: str, s3: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    catalog: Catalog, calendar: WorkingCalendar, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for _, media in _configured(monkeypatch, postgres_url, tmp_path / "media"):
        engine = make_engine(postgres_url)
        submit_with_photos(engine, media, catalog, calendar, 1)
        lost = "ab/cd/" + "ab" * 32 + ".jpg"  # named in a dialogue in progress, not on disk
        with session_scope(engine) as session:
            identity = session.get(ChannelIdentity, 1)
            assert identity is not None
            identity.conversation = {"files": {"c1": [{"key": lost, "sha256": "ab" * 32}]}}
        engine.dispose()
        use_s3(monkeypatch, s3)
        assert main(["media", "migrate", "--to", s3.url]) == 1
        captured = capsys.readouterr()
        assert "[3/3]" in captured.out and "2 tệp đã chép" in captured.out
        assert f"missing  {lost}" in captured.err
