"""Status lookup by code over HTTP at 100,000 stored dossiers, against a no-op endpoint.

    .venv/bin/python -m bench.lookup [--db sqlite|postgresql|both] [--dossiers 100000]

Both endpoints are served by the same uvicorn process in the same run; the target is
lookup ≥ 0.5 × no-op on SQLite and on PostgreSQL (issue #2).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from bench.loadgen import free_port, hammer, serve
from core.codes import format_code
from core.dossier import Status
from storage.db import make_engine, session_scope
from storage.dossiers import sync_catalog
from storage.migrate import upgrade
from storage.models import Dossier
from webhook.app import create_app
from webhook.runtime import build_runtime
from webhook.settings import Settings

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
TARGET = 0.5


def bench_app() -> FastAPI:
    """The product app plus the baseline: a no-op endpoint in the same process."""
    app = create_app()

    @app.get("/bench/noop")
    def noop() -> dict[str, bool]:
        return {"ok": True}

    return app


def seed(database_url: str, count: int) -> list[str]:
    """`count` dossiers spread over every receiving agency and 200 days; returns their codes."""
    upgrade(database_url)
    runtime = build_runtime(Settings(_env_file=None, database_url=database_url))  # type: ignore[call-arg]
    catalog = runtime.catalog
    pairs = [
        (procedure.code, agency.code)
        for procedure in catalog.procedures.values()
        for agency in catalog.receiving_agencies(procedure)
    ]
    statuses = [s.value for s in Status if s is not Status.DRAFT]
    first_day = date(2026, 1, 5)
    per_day: dict[tuple[str, date], int] = {}
    rows, codes = [], []
    rng = random.Random(7)
    for _ in range(count):
        procedure_code, agency_code = rng.choice(pairs)
        day = first_day + timedelta(days=rng.randrange(200))
        sequence = per_day[(agency_code, day)] = per_day.get((agency_code, day), 0) + 1
        code = format_code(agency_code, day, sequence)
        at = datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)
        rows.append(
            {
                "code": code,
                "procedure_code": procedure_code,
                "agency_code": agency_code,
                "channel": "telegram",
                "status": rng.choice(statuses),
                "submitted_at": at,
                "last_activity_at": at,
                "appointment_date": day + timedelta(days=5),
                "extended": False,
            }
        )
        codes.append(code)
    with session_scope(runtime.engine) as session:
        sync_catalog(session, catalog)
        table = Dossier.__table__  # type: ignore[attr-defined]
        for start in range(0, len(rows), 5000):
            session.execute(insert(table), rows[start : start + 5000])
    runtime.engine.dispose()
    return codes


def run(database_url: str, label: str, dossiers: int, requests: int, concurrency: int) -> float:
    print(f"[{label}] seeding {dossiers:,} dossiers …", flush=True)
    codes = seed(database_url, dossiers)
    sample = random.Random(1).sample(codes, 2000)
    port = free_port()
    env = {"DATABASE_URL": database_url, "LOAD_DEMO_DATA": "false", "REDIS_URL": ""}
    with serve("bench.lookup:bench_app", env, port):
        hammer("127.0.0.1", port, ["/bench/noop"], total=500, concurrency=8, kind="warm")
        hammer(
            "127.0.0.1",
            port,
            [f"/lookup/{c}" for c in sample[:500]],
            total=500,
            concurrency=8,
            kind="warm",
        )
        noop = hammer(
            "127.0.0.1", port, ["/bench/noop"], total=requests, concurrency=concurrency, kind="noop"
        )
        html = hammer(
            "127.0.0.1",
            port,
            [f"/lookup/{c}" for c in sample],
            total=requests,
            concurrency=concurrency,
            kind="lookup-html",
        )
        json_ = hammer(
            "127.0.0.1",
            port,
            [f"/lookup/{c}" for c in sample],
            total=requests,
            concurrency=concurrency,
            kind="lookup-json",
            headers={"Accept": "application/json"},
        )
    for result in (html, json_):
        assert result.statuses == {200: requests}, result.statuses
    print(f"[{label}] no-op endpoint : {noop.rate:8.0f} req/s  (median {noop.median:.1f} ms)")
    for result in (html, json_):
        ratio = result.rate / noop.rate
        verdict = "OK" if ratio >= TARGET else "BELOW TARGET"
        print(
            f"[{label}] {result.path_kind:<15}: {result.rate:8.0f} req/s  (median "
            f"{result.median:.1f} ms, p95 {result.percentile(95):.1f} ms)  ratio {ratio:.2f} "
            f"(target ≥ {TARGET}) {verdict}"
        )
    return min(html.rate, json_.rate) / noop.rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--postgres", default=POSTGRES_ADMIN, help="admin URL to create a DB in")
    args = parser.parse_args()
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
            run(url, "sqlite", args.dossiers, args.requests, args.concurrency)
    if args.db in ("postgresql", "both"):
        name = f"hcc_bench_{uuid.uuid4().hex[:8]}"
        admin = make_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(args.postgres).set(database=name).render_as_string(False)
            run(url, "postgresql", args.dossiers, args.requests, args.concurrency)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


if __name__ == "__main__":
    main()
