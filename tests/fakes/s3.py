"""A real S3-protocol server on loopback (moto's standalone server), and a TCP proxy in front of
it that can hold every answer back, for the slow-store tests.

`s3` (fixture): a fresh bucket on a moto server shared by the session, and a client to look at it.
`iam_s3`: a moto server of the test's own that checks credentials and IAM policies (moto does so
once its first few unauthenticated calls, used here to create the bucket and a user, are spent).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from storage.media_s3 import S3Location, S3MediaStore, S3Options
from tests.servers import free_port, wait_until

REGION = "us-east-1"


@dataclass
class S3Bucket:
    endpoint: str
    bucket: str
    client: Any  # boto3 S3 client with the test's own (valid) credentials

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/media"

    def options(self, **changes: Any) -> S3Options:
        base = {"endpoint_url": self.endpoint, "region": REGION, "access_key_id": "test",
                "secret_access_key": "test", "connect_timeout": 1.0, "read_timeout": 2.0,
                "max_attempts": 1}  # fmt: skip
        return S3Options(**{**base, **changes})

    def store(self, **changes: Any) -> S3MediaStore:
        return S3MediaStore(S3Location(self.bucket, "media"), self.options(**changes))

    def objects(self) -> dict[str, bytes]:
        listed = self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {o["Key"]: self.client.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()
                for o in listed}  # fmt: skip


def client_for(endpoint: str, key: str = "test", secret: str = "test") -> Any:
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=key, aws_secret_access_key=secret,
    )  # fmt: skip


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint: str) -> S3Bucket:
    bucket = f"hcc-{uuid.uuid4().hex[:12]}"
    client = client_for(moto_endpoint)
    client.create_bucket(Bucket=bucket)
    return S3Bucket(moto_endpoint, bucket, client)


@dataclass
class IamS3:
    endpoint: str
    bucket: str
    reader: tuple[str, str]  # access key id, secret of a user who may only read


@pytest.fixture
def iam_s3() -> Iterator[IamS3]:
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _accepts(port), "moto server did not start")
        client_for(endpoint).create_bucket(Bucket="hcc-media")  # the 4 free calls
        iam = boto3.session.Session().client(
            "iam",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        iam.create_user(UserName="reader")
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}
            ],
        }
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        yield IamS3(endpoint, "hcc-media", (key["AccessKeyId"], key["SecretAccessKey"]))
    finally:
        process.terminate()
        process.wait(10)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


class DelayProxy:
    """TCP on loopback to `upstream`; while `delay` is set, the first answer bytes of each
    connection are held back that long (a store that accepts but is slow to answer)."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self.delay = 0.0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                downstream, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            for args in ((downstream, upstream, 0.0), (upstream, downstream, self.delay)):
                threading.Thread(target=self._pipe, args=args, daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, delay: float) -> None:
        first = True
        try:
            while data := source.recv(65536):
                if first and delay:
                    time.sleep(delay)
                first = False
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


@pytest.fixture
def slow_s3(s3: S3Bucket) -> Iterator[tuple[S3Bucket, DelayProxy]]:
    """The `s3` bucket reached through a `DelayProxy` (start with no delay)."""
    proxy = DelayProxy(s3.endpoint)
    yield S3Bucket(proxy.endpoint, s3.bucket, s3.client), proxy
    proxy.close()
