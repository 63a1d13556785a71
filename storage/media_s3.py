"""Media on S3-compatible object storage (AWS S3, MinIO, Ceph, …), for several web processes on
several machines: the same content-addressed keys as the disk store, under a bucket prefix.

An object is written once: one PUT with `If-None-Match: *`, so an object already there (a re-sent
photo, a concurrent writer) is never replaced — 412 means it is there, which is success. A store
that ignores the condition rewrites the same bytes (the key is their hash). The body carries its
MD5 for the store to check, and its SHA-256 as metadata. Any failure to store
(refused, timed out, 5xx, access denied) is `StorageUnavailable`: nothing was kept.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.documents import StorageUnavailable
from storage.media import _KEY, FAILURE_MEMORY, StoredMedia, media_key

log = logging.getLogger(__name__)

PROBE_SECONDS = 10.0  # /healthz, the panel and /metrics share one bucket probe this long
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's limit on a pre-signed URL
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_MISSING = {"404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # without slashes at either end; "" for the bucket's root

    def object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def parse_media_url(url: str) -> S3Location:
    """`s3://bucket/prefix` → its bucket and prefix; ValueError for anything else."""
    if not url.startswith("s3://"):
        raise ValueError(f"MEDIA_URL must look like s3://bucket/prefix, not {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError(f"not an S3 bucket name: {bucket!r}")
    return S3Location(bucket, prefix.strip("/"))


@dataclass(frozen=True)
class S3Options:
    """How to reach the store (the S3_* settings)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    sse: str | None = None  # "AES256" or "aws:kms"
    sse_kms_key_id: str | None = None
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    max_attempts: int = 2
    addressing_style: str = "auto"


def make_client(options: S3Options) -> Any:
    config = Config(
        signature_version="s3v4",
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"total_max_attempts": options.max_attempts, "mode": "standard"},
        s3={"addressing_style": options.addressing_style},
        # Only the checksums S3 requires: several S3-compatible stores refuse the newer ones.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=options.endpoint_url,
        region_name=options.region,
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=options.secret_access_key,
        config=config,
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{_code(error) or 'error'} ({status})"
    return type(error).__name__


class S3MediaStore:
    """A `storage.media.MediaStore` on one bucket prefix."""

    def __init__(self, location: S3Location, options: S3Options, client: Any = None) -> None:
        self.location, self.options = location, options
        self.client = client if client is not None else make_client(options)
        self._failed: tuple[float, str] | None = None
        self._probe: tuple[float, str | None] | None = None
        self._lock = threading.Lock()

    def _object(self, key: str) -> str:
        if not _KEY.match(key):
            raise KeyError(key)
        return self.location.object_key(key)

    def put(self, data: bytes, content_type: str) -> StoredMedia:
        digest = hashlib.sha256(data).hexdigest()
        key = media_key(digest, content_type)
        try:
            self._put_once(self._object(key), data, content_type, digest)
        except (BotoCoreError, ClientError) as error:
            reason = _reason(error)
            self._failed = (time.monotonic(), reason)
            log.error("media store %s cannot take files: %s", self.location, reason)
            raise StorageUnavailable(reason) from error
        self._failed = self._probe = None
        return StoredMedia(key, digest, len(data), content_type)

    def _head(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.location.bucket, Key=name)
        except ClientError as error:
            if _code(error) in _MISSING:
                return False
            raise
        return True

    def _put_once(self, name: str, data: bytes, content_type: str, digest: str) -> None:
        extra: dict[str, str] = {}
        if self.options.sse:
            extra["ServerSideEncryption"] = self.options.sse
            if self.options.sse_kms_key_id:
                extra["SSEKMSKeyId"] = self.options.sse_kms_key_id
        try:
            self.client.put_object(
                Bucket=self.location.bucket,
                Key=name,
                Body=data,
                ContentType=content_type,
                ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode(),
                Metadata={"sha256": digest},
                IfNoneMatch="*",
                **extra,
            )
        except ClientError as error:
            if _code(error) != "PreconditionFailed":  # 412: another writer stored it first
                raise

    def get(self, key: str) -> bytes:
        """The object's bytes; KeyError when there is none, `StorageUnavailable` when the store
        cannot answer."""
        name = self._object(key)
        try:
            answer = self.client.get_object(Bucket=self.location.bucket, Key=name)
            return bytes(answer["Body"].read())
        except ClientError as error:
            if _code(error) in _MISSING:
                raise KeyError(key) from None
            raise StorageUnavailable(_reason(error)) from error
        except BotoCoreError as error:
            raise StorageUnavailable(_reason(error)) from error

    def exists(self, key: str) -> bool:
        try:
            return self._head(self._object(key))
        except KeyError:
            return False
        except (BotoCoreError, ClientError) as error:
            raise StorageUnavailable(_reason(error)) from error

    def presigned_url(self, key: str, seconds: int) -> str | None:
        """A GET URL for `key` that expires after `seconds` (at most 7 days, SigV4's limit)."""
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.location.bucket, "Key": self._object(key)},
                ExpiresIn=max(1, min(seconds, MAX_PRESIGN_SECONDS)),
            )
        )

    def problem(self) -> str | None:
        """A write failed lately, or the bucket does not answer a HEAD (probed at most every
        `PROBE_SECONDS`, so health checks and scrapes do not hammer the store)."""
        if self._failed is not None and time.monotonic() - self._failed[0] < FAILURE_MEMORY:
            return self._failed[1]
        with self._lock:
            if self._probe is not None and time.monotonic() - self._probe[0] < PROBE_SECONDS:
                return self._probe[1]
            try:
                self.client.head_bucket(Bucket=self.location.bucket)
                found: str | None = None
            except (BotoCoreError, ClientError) as error:
                found = _reason(error)
            self._probe = (time.monotonic(), found)
            return found
