"""The desk panel's reads at 10,000 and 100,000 dossiers of one agency, against a no-DB async
endpoint in the same process.

    .venv/bin/python -m bench.inbox [--db sqlite|postgresql|both] [--sizes 10000 100000] [--quick]

For each database and size: a fresh database, the real app (`bench.baseline:bench_app`) in its
own uvicorn process, a signed-in officer; one connection sends requests one after another (render
time, not throughput), in interleaved rounds of:
- the baseline: a plain Starlette route, GET with the same session cookie, no database;
- `/healthz` (one `SELECT 1`), a second reference line;
- the inbox (`/admin`, queue "new": counts, list, reminders, stamp);
- the search box over the whole history (queue "all"): by code, by phone, and by name (the
  `ILIKE` over the applicants), each request for another dossier or citizen;
- the feedback queue (50 unanswered citizens' feedback of the agency).
Target (issue #10): inbox median ≤ 8 × the baseline at 100k dossiers.

The history is what grows: 1,200 dossiers are open (the desk's current workload, spread over
every queue) whatever the size; the rest are closed (returned, refused, withdrawn). Every tenth
citizen sent feedback; 60 of those are still unanswered.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import insert, text, update

from bench.baseline import NOOP, verdict
from bench.databases import POSTGRES_ADMIN, chosen, fresh_database
from bench.loadgen import Result, free_port, hammer, interleaved, serve
from core.codes import format_code
from core.dossier import Status
from core.staff import Role
from storage.db import make_engine, session_scope
from storage.dossiers import sync_catalog
from storage.migrate import upgrade
from storage.models import Citizen, Dossier, Feedback, StaffUser
from storage.staff import create_staff
from webhook.runtime import build_runtime
from webhook.settings import Settings
from webhook.staff_session import issue

SECRET = "bench-secret-key-that-is-long-enough-0123456789"
AGENCY = "000.00.10.H53"
OPEN = 1200
ROUNDS = 8
TARGET = 8.0
UNANSWERED = 60
OPEN_STATUSES = [
    Status.SUBMITTED,
    Status.RESUBMITTED,
    Status.SUPPLEMENT_REQUESTED,
    Status.ACCEPTED,
    Status.PROCESSING,
    Status.RESULT_READY,
]
CLOSED_STATUSES = [Status.RETURNED] * 8 + [Status.REFUSED, Status.WITHDRAWN]


def seed(database_url: str, count: int) -> tuple[str, list[str]]:
    """`count` dossiers with their citizens; the officer's session cookie and the codes."""
    upgrade(database_url)
    runtime = build_runtime(Settings(_env_file=None, database_url=database_url))  # type: ignore[call-arg]
    catalog = runtime.catalog
    procedures = [
        p.code for p in catalog.procedures.values() if p.agency_kind == "provincial_centre"
    ]
    rng = random.Random(7)
    today = datetime.now(UTC).date()
    first_day = today - timedelta(days=400)
    with session_scope(runtime.engine) as session:
        sync_catalog(session, catalog)
        citizen_table = Citizen.__table__  # type: ignore[attr-defined]
        dossier_table = Dossier.__table__  # type: ignore[attr-defined]
        now = datetime.now(UTC)
        for start in range(0, count, 5000):
            size = min(5000, count - start)
            session.execute(
                insert(citizen_table),
                [
                    {
                        "full_name": f"Công dân {start + i}",
                        "phone": f"+8491{start + i:07d}",
                        "created_at": now,
                    }
                    for i in range(size)
                ],
            )
        per_day: dict[date, int] = {}
        rows: list[dict[str, Any]] = []
        for i in range(count):
            is_open = i >= count - OPEN
            day = (
                today - timedelta(days=rng.randrange(20))
                if is_open
                else first_day + timedelta(days=rng.randrange(380))
            )
            sequence = per_day[day] = per_day.get(day, 0) + 1
            at = datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC) + timedelta(
                minutes=rng.randrange(480)
            )
            status = rng.choice(OPEN_STATUSES if is_open else CLOSED_STATUSES)
            rows.append(
                {
                    "code": format_code(AGENCY, day, sequence),
                    "procedure_code": rng.choice(procedures),
                    "agency_code": AGENCY,
                    "citizen_id": i + 1,
                    "channel": "telegram",
                    "status": status.value,
                    "submitted_at": at,
                    "last_activity_at": at,
                    "appointment_date": day + timedelta(days=rng.randrange(1, 12)),
                    "extended": False,
                }
            )
        for start in range(0, len(rows), 5000):
            session.execute(insert(dossier_table), rows[start : start + 5000])
        feedback: list[dict[str, Any]] = [
            {
                "citizen_id": i + 1,
                "channel": "telegram",
                "agency_code": AGENCY,
                "text": "Xin hỏi thời gian trả kết quả",
                "media_keys": [],
                "created_at": now,
                "answered_at": None if i >= count - UNANSWERED * 10 else now,
            }
            for i in range(0, count, 10)
        ]
        session.execute(insert(Feedback.__table__), feedback)  # type: ignore[attr-defined]
        user, _ = create_staff(
            session,
            username="lan.ttphcc",
            full_name="Trần Thị Lan",
            agency_code=AGENCY,
            role=Role.DESK_OFFICER,
        )
        session.execute(update(StaffUser).values(must_change_password=False))
        assert user.id is not None
        cookie = issue(SECRET, user.id, user.session_generation)
    if not database_url.startswith("sqlite"):  # SQLite: the product never runs ANALYZE
        with runtime.engine.connect() as connection:  # what autovacuum does after a bulk load
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE"
            )
    runtime.engine.dispose()
    return cookie, [row["code"] for row in rows]


def settle(database_url: str) -> None:
    """Wait until the web process has delivered the reminders its first tick queued (once per
    due dossier): the steady state a desk works in, not the first minute after an upgrade."""
    engine = make_engine(database_url)
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 3:
        with engine.connect() as connection:
            waiting = connection.execute(
                text("SELECT count(*) FROM outboxmessage WHERE state <> 'sent'")
            ).scalar_one()
        if waiting:
            quiet_since = time.monotonic()
        time.sleep(0.5)
    engine.dispose()


def run(url: str, kind: str, size: int, requests: int) -> float:
    print(f"[{kind} {size:,}] seeding …", flush=True)
    cookie, codes = seed(url, size)
    rng = random.Random(3)
    per_round = requests // ROUNDS
    picks = [rng.randrange(size) for _ in range(per_round * ROUNDS)]
    searches = {  # each request another dossier or citizen, over the whole history
        "search code": [f"/admin?queue=all&q={codes[i]}" for i in picks],
        "search phone": [f"/admin?queue=all&q=091{i:07d}" for i in picks],
        "search name": [f"/admin?queue=all&q={quote(f'dân {i}')}" for i in picks],
    }
    paths = {
        "no-op (no DB)": [f"{NOOP}/{i}" for i in picks],
        "/healthz": ["/healthz"],
        "inbox": ["/admin"],
        **searches,
        "feedback queue": ["/admin?queue=feedback"],
    }
    port = free_port()
    env = {"DATABASE_URL": url, "LOAD_DEMO_DATA": "false", "SECRET_KEY": SECRET, "REDIS_URL": ""}
    headers = {"Cookie": f"hcc_staff={cookie}"}

    def measure(name: str) -> Callable[[int], Result]:
        def one_round(n: int) -> Result:
            chosen_paths = paths[name]
            if len(chosen_paths) > 1:
                chosen_paths = chosen_paths[n * per_round : (n + 1) * per_round]
            total = per_round // 4 if name == "search name" else per_round  # ~1 s each on SQLite
            return hammer("127.0.0.1", port, chosen_paths[:total], total=total, concurrency=1,
                          kind=name, headers=headers)  # fmt: skip

        return one_round

    with serve("bench.baseline:bench_app", env, port):
        settle(url)
        for warm in paths.values():
            hammer("127.0.0.1", port, warm[:50], total=50, concurrency=1, kind="warm",
                   headers=headers)  # fmt: skip
        results = interleaved({name: measure(name) for name in paths}, ROUNDS)
    for name, result in results.items():
        assert result.statuses == {200: result.requests}, (name, result.statuses)
    base = results["no-op (no DB)"].median
    for name, result in results.items():
        line = (
            f"[{kind} {size:,}] {name:<15} median {result.median:6.2f} ms, p95 "
            f"{result.percentile(95):6.2f} ms  → {result.median / base:5.2f} × no-op"
        )
        if name == "inbox":
            line += f" (target ≤ {TARGET:g}) {verdict(result.median / base <= TARGET)}"
        print(line)
    return results["inbox"].median / base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--requests", type=int, default=240, help="per measure (name: a quarter)")
    parser.add_argument("--quick", action="store_true", help="100,000 dossiers only, 160 requests")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN)
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.requests = [100_000], 160
    for kind in chosen(args.db):
        for size in args.sizes:
            with fresh_database(kind, args.postgres) as url:
                run(url, kind, size, args.requests)


if __name__ == "__main__":
    main()
