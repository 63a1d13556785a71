"""A small keep-alive HTTP/1.1 load generator (asyncio, raw sockets) and a server runner.

A full HTTP client library would be slower than the server under test on a 2-core machine and
flatten every ratio; this one only writes GET requests and reads Content-Length bodies.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Result:
    path_kind: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]
    bodies: list[bytes] | None = None  # the response bodies, when asked to keep them

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies_ms)


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    path: str,
    headers: str,
    body: bytes | None,
) -> tuple[int, bytes]:
    """One request on a keep-alive connection: GET, or POST of `body` as JSON."""
    if body is None:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode())
    else:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return int(status_line.split()[1]), await reader.readexactly(length)


def _record(result: Result, began: float, status: int, body: bytes) -> None:
    if result.bodies is not None:
        result.bodies.append(body)
    result.latencies_ms.append((time.perf_counter() - began) * 1000)
    result.statuses[status] = result.statuses.get(status, 0) + 1


async def _worker(
    host: str,
    port: int,
    paths: Sequence[str],
    start: int,
    step: int,
    total: int,
    result: Result,
    headers: str,
    bodies: Sequence[bytes] | None,
    body_headers: Sequence[str] | None = None,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    index = start
    while index < total:
        path = paths[index % len(paths)]
        body = None if bodies is None else bodies[index % len(bodies)]
        own = "" if body_headers is None else body_headers[index % len(body_headers)]
        began = time.perf_counter()
        status, answer = await _exchange(reader, writer, host, path, headers + own, body)
        _record(result, began, status, answer)
        index += step
    writer.close()


def hammer(
    host: str,
    port: int,
    paths: Sequence[str],
    *,
    total: int,
    concurrency: int,
    kind: str,
    headers: dict[str, str] | None = None,
    bodies: Sequence[bytes] | None = None,
    keep_bodies: bool = False,
    body_headers: Sequence[dict[str, str]] | None = None,
) -> Result:
    """Send `total` requests over `concurrency` keep-alive connections, cycling through `paths`
    (GET, or POST of `bodies[i]` as JSON when bodies are given, with `body_headers[i]` too: a
    signature over each body)."""
    result = Result(kind, total, 0.0, [], {}, [] if keep_bodies else None)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    own = None
    if body_headers is not None:
        own = ["".join(f"{k}: {v}\r\n" for k, v in h.items()) for h in body_headers]

    async def run() -> None:
        await asyncio.gather(
            *(
                _worker(host, port, paths, i, concurrency, total, result, extra, bodies, own)
                for i in range(concurrency)
            )
        )

    began = time.perf_counter()
    asyncio.run(run())
    result.seconds = time.perf_counter() - began
    return result


def conversations(
    host: str,
    port: int,
    path: str,
    scripts: Sequence[Sequence[bytes]],
    *,
    concurrency: int,
    kind: str,
    headers: dict[str, str] | None = None,
) -> Result:
    """POST each script's bodies in order on one connection (one simulated user, who waits for
    each answer before the next message), `concurrency` users at a time; every turn is counted."""
    result = Result(kind, 0, 0.0, [], {}, [])
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    waiting = iter(scripts)

    async def user() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        for script in waiting:  # a shared iterator: each script is taken by one user
            for body in script:
                began = time.perf_counter()
                status, answer = await _exchange(reader, writer, host, path, extra, body)
                _record(result, began, status, answer)
                result.requests += 1
        writer.close()

    async def run() -> None:
        await asyncio.gather(*(user() for _ in range(concurrency)))

    began = time.perf_counter()
    asyncio.run(run())
    result.seconds = time.perf_counter() - began
    return result


def merge(total: Result, part: Result) -> None:
    """Add one round's measurement to the run's total."""
    total.requests += part.requests
    total.seconds += part.seconds
    total.latencies_ms += part.latencies_ms
    for status, count in part.statuses.items():
        total.statuses[status] = total.statuses.get(status, 0) + count
    if total.bodies is not None:
        total.bodies += part.bodies or []


def interleaved(
    measures: Mapping[str, Callable[[int], Result]], rounds: int, keep_bodies: bool = False
) -> dict[str, Result]:
    """Run every measure once per round, in turn (measure(round_number) → its Result), so that
    all of them see the same moments of a shared machine, whose speed drifts over minutes."""
    totals = {name: Result(name, 0, 0.0, [], {}, [] if keep_bodies else None) for name in measures}
    for number in range(rounds):
        for name, measure in measures.items():
            merge(totals[name], measure(number))
    return totals


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(factory: str, env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run uvicorn (one worker, as in production per process) on loopback until the block ends."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            factory,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, **env},
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)
