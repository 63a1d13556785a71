"""Status lookup by code over HTTP at 100,000 stored dossiers, against the no-op baseline.

    .venv/bin/python -m bench.lookup [--db sqlite|postgresql|both] [--dossiers 100000] [--quick]

One uvicorn process serves both the product and the baseline (`bench.baseline`: a plain
Starlette route on the event loop, GET with the code as a path parameter, as the lookup gets).
Each request asks for a different code (2,000 random ones); the no-op, the HTML page and the JSON
answer are measured in interleaved rounds. Target (issue #10): lookup ≥ 0.35 × no-op on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import insert

from bench.baseline import NOOP, WEB_ONLY, verdict
from bench.databases import POSTGRES_ADMIN, chosen, fresh_database
from bench.loadgen import Result, free_port, hammer, interleaved, serve
from core.codes import format_code
from core.dossier import Status
from storage.db import session_scope
from storage.dossiers import sync_catalog
from storage.migrate import upgrade
from storage.models import Dossier
from webhook.runtime import build_runtime
from webhook.settings import Settings

TARGET = 0.35
ROUNDS = 5


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
    sample = random.Random(1).sample(codes, min(2000, len(codes)))
    port = free_port()
    env = {"DATABASE_URL": database_url, "LOAD_DEMO_DATA": "false", "REDIS_URL": WEB_ONLY}
    per_round = requests // ROUNDS
    json_accept = {"Accept": "application/json"}

    def measure(kind: str, prefix: str, headers: dict[str, str] | None = None) -> Result:
        return hammer("127.0.0.1", port, [prefix + c for c in sample], total=per_round,
                      concurrency=concurrency, kind=kind, headers=headers)  # fmt: skip

    with serve("bench.baseline:bench_app", env, port):
        for prefix in (NOOP + "/", "/lookup/"):
            hammer("127.0.0.1", port, [prefix + c for c in sample[:500]], total=500,
                   concurrency=8, kind="warm")  # fmt: skip
        results = interleaved(
            {
                "no-op": lambda _: measure("no-op", NOOP + "/"),
                "lookup-html": lambda _: measure("lookup-html", "/lookup/"),
                "lookup-json": lambda _: measure("lookup-json", "/lookup/", json_accept),
            },
            ROUNDS,
        )
    noop = results.pop("no-op")
    for result in results.values():
        assert result.statuses == {200: per_round * ROUNDS}, result.statuses
    print(f"[{label}] no-op (async)  : {noop.rate:8.0f} req/s  (median {noop.median:.1f} ms)")
    for name, result in results.items():
        ratio = result.rate / noop.rate
        print(
            f"[{label}] {name:<15}: {result.rate:8.0f} req/s  (median {result.median:.1f} ms, "
            f"p95 {result.percentile(95):.1f} ms)  ratio {ratio:.2f} (target ≥ {TARGET}) "
            f"{verdict(ratio >= TARGET)}"
        )
    return min(r.rate for r in results.values()) / noop.rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="20,000 dossiers, 2,000 requests")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN, help="admin URL to create a DB in")
    args = parser.parse_args()
    if args.quick:
        args.dossiers, args.requests = 20_000, 2000
    for kind in chosen(args.db):
        with fresh_database(kind, args.postgres) as url:
            run(url, kind, args.dossiers, args.requests, args.concurrency)


if __name__ == "__main__":
    main()
