"""Media on S3-compatible storage, against moto's S3 server on loopback: the same keys as the disk
store, written once, and every failure to store is `StorageUnavailable` (nothing half-kept)."""

from __future__ import annotations

import hashlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from core.documents import StorageUnavailable
from storage.media import DiskMediaStore
from storage.media_s3 import S3Location, S3MediaStore, S3Options, parse_media_url
from tests.fakes.s3 import DelayProxy, IamS3, S3Bucket
from tests.servers import free_port
from webhook.runtime import media_store
from webhook.settings import Settings

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


def test_put_get_exists_and_the_disk_stores_key(s3: S3Bucket, tmp_path: Path) -> None:
    store = s3.store(sse="AES256")
    stored = store.put(JPEG, "image/jpeg")
    assert stored == DiskMediaStore(tmp_path).put(JPEG, "image/jpeg")  # same content address
    assert store.get(stored.key) == JPEG and store.exists(stored.key)
    name = f"media/{stored.key}"
    head = s3.client.head_object(Bucket=s3.bucket, Key=name)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["Metadata"]["sha256"] == hashlib.sha256(JPEG).hexdigest()
    assert head["ContentType"] == "image/jpeg"


def test_a_missing_key_is_a_key_error_and_unsafe_keys_are_refused(s3: S3Bucket) -> None:
    store = s3.store()
    with pytest.raises(KeyError):
        store.get("ab/cd/" + "ab" * 32 + ".jpg")
    for key in ("../x", "media/../../x.jpg", ""):
        with pytest.raises(KeyError):
            store.get(key)
        assert not store.exists(key)


def test_the_same_content_is_one_object_and_is_never_overwritten(s3: S3Bucket) -> None:
    store = s3.store()
    with ThreadPoolExecutor(max_workers=6) as pool:
        keys = set(pool.map(lambda _: store.put(JPEG, "image/jpeg").key, range(6)))
    assert len(keys) == 1 and list(s3.objects()) == [f"media/{keys.pop()}"]
    other = b"%PDF-1.4 other"
    key = store.put(other, "application/pdf").key
    s3.client.put_object(Bucket=s3.bucket, Key=f"media/{key}", Body=b"planted")
    store.put(other, "application/pdf")
    assert s3.objects()[f"media/{key}"] == b"planted"  # the stored object was left alone


@pytest.mark.parametrize("who", ["reader", "stranger"])
def test_access_denied_and_unknown_credentials_are_storage_unavailable(
    iam_s3: IamS3, who: str
) -> None:
    """A user who may only read is denied the PUT; an unknown key id is refused outright."""
    key_id, secret = iam_s3.reader if who == "reader" else ("AKIAUNKNOWN0000", "nope")
    options = S3Options(endpoint_url=iam_s3.endpoint, region="us-east-1", max_attempts=1,
                        access_key_id=key_id, secret_access_key=secret)  # fmt: skip
    store = S3MediaStore(S3Location(iam_s3.bucket, "media"), options)
    expected = "AccessDenied (403)" if who == "reader" else "InvalidAccessKeyId (403)"
    with pytest.raises(StorageUnavailable, match=re.escape(expected)):
        store.put(JPEG, "image/jpeg")
    assert store.problem() == expected


def test_a_stopped_store_is_storage_unavailable_at_once() -> None:
    options = S3Options(endpoint_url=f"http://127.0.0.1:{free_port()}", region="us-east-1",
                        access_key_id="t", secret_access_key="t", max_attempts=2)  # fmt: skip
    store = S3MediaStore(S3Location("hcc-media", ""), options)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="EndpointConnectionError"):
        store.put(JPEG, "image/jpeg")
    assert time.monotonic() - started < 3
    assert store.problem() == "EndpointConnectionError"


def complete(objects: dict[str, bytes]) -> bool:
    """Every object is whole: its bytes hash to its name."""
    return all(name.rsplit("/", 1)[1].startswith(hashlib.sha256(data).hexdigest())
               for name, data in objects.items())  # fmt: skip


def test_a_slow_store_times_out_into_storage_unavailable(
    slow_s3: tuple[S3Bucket, DelayProxy],
) -> None:
    """Within attempts × (read timeout + botocore's 1 s wait for `100 Continue` on a PUT). The
    store may have kept the whole object before its answer was lost: never a part of one, and
    the citizen's second try finds it there."""
    bucket, proxy = slow_s3
    store = bucket.store(read_timeout=0.5, max_attempts=2)
    kept = store.put(b"%PDF-1.4 kept", "application/pdf")
    proxy.delay = 10.0
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="ReadTimeoutError"):
        store.put(JPEG, "image/jpeg")
    assert time.monotonic() - started < 5  # 2 × 1.5 s, not the store's 10 s
    with pytest.raises(StorageUnavailable):
        store.get(kept.key)
    assert f"media/{kept.key}" in bucket.objects() and complete(bucket.objects())
    proxy.delay = 0.0
    assert store.put(JPEG, "image/jpeg").size == len(JPEG)
    assert store.problem() is None
    assert len(bucket.objects()) == 2 and complete(bucket.objects())


def test_health_probe_sees_a_missing_bucket(s3: S3Bucket) -> None:
    assert s3.store().problem() is None
    gone = S3MediaStore(S3Location("hcc-no-such-bucket", ""), s3.options())
    assert gone.problem() == "404 (404)"


def test_presigned_urls_serve_the_object_and_expire(s3: S3Bucket, tmp_path: Path) -> None:
    store = s3.store()
    key = store.put(JPEG, "image/jpeg").key
    url = store.presigned_url(key, 60)
    assert url is not None and "X-Amz-Expires=60" in url
    assert httpx.get(url).content == JPEG
    assert "X-Amz-Expires=604800" in str(store.presigned_url(key, 30 * 86400))  # SigV4's cap
    assert DiskMediaStore(tmp_path).presigned_url(key, 60) is None


def test_media_url_chooses_the_store(s3: S3Bucket, tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        media_dir=tmp_path, media_url=s3.url, s3_endpoint_url=s3.endpoint, s3_region="us-east-1",
        s3_access_key_id="test", s3_secret_access_key=SecretStr("test"),
    )  # fmt: skip
    store = media_store(settings)
    assert isinstance(store, S3MediaStore) and store.location == S3Location(s3.bucket, "media")
    assert store.get(store.put(JPEG, "image/jpeg").key) == JPEG
    assert isinstance(media_store(settings.model_copy(update={"media_url": None})), DiskMediaStore)
    assert parse_media_url("s3://hcc-media") == S3Location("hcc-media", "")
    for bad in ("https://x/y", "s3://", "s3://UPPER/x", "/var/media"):
        with pytest.raises(ValueError):
            parse_media_url(bad)
