"""Where one GET of the lookup page or of the desk inbox spends its time, against the baseline.

    .venv/bin/python -m bench.profile_request --what lookup|inbox [--db sqlite|postgresql]
        [--dossiers 100000] [--requests 300]

The real app with the baseline route (`bench.baseline`), seeded as bench/lookup.py or
bench/inbox.py seed it, driven through its ASGI interface one request at a time (no HTTP server:
uvicorn's cost is the same on both sides), each request for another code or page. cProfile runs
on the event loop and in the worker threads; their own time is summed by layer (database driver
and SQLAlchemy, templates, web framework, our code, waiting on I/O, this profile's own HTTP
driver) and divided by the number of requests, for the product path and for the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import threading
import time
from collections import defaultdict
from typing import Any

import httpx

from bench.baseline import NOOP, WEB_ONLY, bench_app
from bench.databases import POSTGRES_ADMIN, fresh_database
from bench.profile_turn import profile_threads

LAYERS = (
    (
        "waiting on I/O",
        ("select.epoll", "_thread.lock", "psycopg/waiting", "psycopg/connection.py:479"),
    ),
    ("this profile's HTTP driver", ("httpx/", "importlib", "posix.stat", "sniffio")),
    ("database driver + SQLAlchemy", ("psycopg", "sqlalchemy/", "sqlmodel/", "sqlite3")),
    ("templates", ("jinja2/", "markupsafe", "templates/")),
    ("web framework", ("starlette/", "fastapi/", "anyio/", "pydantic", "uvicorn/")),
    ("our code", ("/core/", "/storage/", "/webhook/", "/bots/")),
)


def layer(function: tuple[str, int, str]) -> str:
    where = f"{function[0]}:{function[1]}({function[2]})"
    for name, marks in LAYERS:
        if any(mark in where for mark in marks):
            return name
    return "other (stdlib, builtins)"


async def drive(app: Any, paths: list[str], headers: dict[str, str]) -> float:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        began = time.perf_counter()
        for path in paths:
            response = await client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.status_code)
        return time.perf_counter() - began


async def profile(app: Any, paths: list[str], headers: dict[str, str]) -> None:
    profiles: list[cProfile.Profile] = []
    active = threading.Event()
    profile_threads(profiles, active)
    async with app.router.lifespan_context(app):
        for label, chosen in (("baseline", [f"{NOOP}/{i}" for i in range(len(paths))]),
                              ("product", paths)):  # fmt: skip
            await drive(app, chosen[:50], headers)  # warm: templates, prepared statements
            plain = await drive(app, chosen, headers) / len(chosen) * 1000
            profiles.clear()
            main = cProfile.Profile()
            active.set()
            main.enable()
            profiled = await drive(app, chosen, headers) / len(chosen) * 1000
            main.disable()
            active.clear()
            stats = pstats.Stats(main)
            for one in profiles:
                one.disable()
                stats.add(one)
            by_layer: dict[str, float] = defaultdict(float)
            raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
            for function, (_, _, own, _, _) in raw.items():
                by_layer[layer(function)] += own
            print(f"{label}: {plain:.2f} ms per request ({profiled:.2f} ms profiled); own time "
                  "per request by layer:")  # fmt: skip
            for name, seconds in sorted(by_layer.items(), key=lambda item: -item[1]):
                print(f"    {name:<30} {seconds / len(chosen) * 1000:6.2f} ms")
            if label == "product":
                stats.sort_stats("tottime").print_stats(15)
    threading.setprofile(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--what", choices=["lookup", "inbox", "search-name"], default="inbox")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--postgres", default=POSTGRES_ADMIN)
    args = parser.parse_args()
    with fresh_database(args.db, args.postgres) as url:
        headers: dict[str, str] = {}
        rng = random.Random(5)
        if args.what == "lookup":
            from bench.lookup import seed as seed_lookup

            codes = seed_lookup(url, args.dossiers)
            paths = [f"/lookup/{code}" for code in rng.sample(codes, args.requests)]
        else:
            from bench.inbox import SECRET
            from bench.inbox import seed as seed_inbox

            cookie, _ = seed_inbox(url, args.dossiers)
            headers = {"Cookie": f"hcc_staff={cookie}"}
            os.environ["SECRET_KEY"] = SECRET
            if args.what == "inbox":
                paths = ["/admin"] * args.requests
            else:
                picks = [rng.randrange(args.dossiers) for _ in range(args.requests)]
                paths = [f"/admin?queue=all&q=d%C3%A2n%20{i}" for i in picks]
        os.environ.update(DATABASE_URL=url, LOAD_DEMO_DATA="false", REDIS_URL=WEB_ONLY)
        from webhook.settings import get_settings

        get_settings.cache_clear()
        asyncio.run(profile(bench_app(), paths, headers))


if __name__ == "__main__":
    main()
