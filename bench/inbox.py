"""The desk inbox at 10,000 and 100,000 dossiers of one agency (PostgreSQL), against /healthz.

    .venv/bin/python -m bench.inbox [--sizes 10000 100000] [--requests 400]

For each size: a fresh database, the real app in its own uvicorn process, a signed-in officer;
one connection sends requests one after another (render time, not throughput), in interleaved
rounds of /healthz and of the inbox (`/admin`, queue "new": counts, list, reminders, stamp).
Targets: inbox median ≤ 5 × /healthz, and flat: the 100k ratio ≤ 1.3 × the 10k ratio.

The history is what grows: 1,200 dossiers are open (the desk's current workload, spread over
every queue) whatever the size; the rest are closed (returned, refused, withdrawn).
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import insert, text, update
from sqlalchemy.engine import make_url

from bench.loadgen import Result, free_port, hammer, serve
from core.codes import format_code
from core.dossier import Status
from core.staff import Role
from storage.db import make_engine, session_scope
from storage.dossiers import sync_catalog
from storage.migrate import upgrade
from storage.models import Citizen, Dossier, StaffUser
from storage.staff import create_staff, session_fingerprint
from webhook.runtime import build_runtime
from webhook.settings import Settings
from webhook.staff_session import issue

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SECRET = "bench-secret-key-that-is-long-enough-0123456789"
AGENCY = "000.00.10.H53"
OPEN = 1200
ROUNDS = 8
OPEN_STATUSES = [
    Status.SUBMITTED,
    Status.RESUBMITTED,
    Status.SUPPLEMENT_REQUESTED,
    Status.ACCEPTED,
    Status.PROCESSING,
    Status.RESULT_READY,
]
CLOSED_STATUSES = [Status.RETURNED] * 8 + [Status.REFUSED, Status.WITHDRAWN]


def seed(database_url: str, count: int) -> str:
    """`count` dossiers with their citizens; returns the officer's session cookie."""
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
        rows = []
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
        user, _ = create_staff(
            session,
            username="lan.ttphcc",
            full_name="Trần Thị Lan",
            agency_code=AGENCY,
            role=Role.DESK_OFFICER,
        )
        session.execute(update(StaffUser).values(must_change_password=False))
        assert user.id is not None
        cookie = issue(SECRET, user.id, session_fingerprint(user))
    with runtime.engine.connect() as connection:  # what autovacuum does after a bulk load
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    runtime.engine.dispose()
    return cookie


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


def run(admin_url: str, size: int, requests: int) -> float:
    name = f"hcc_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(admin_url).set(database=name).render_as_string(False)
        print(f"[{size:,}] seeding …", flush=True)
        cookie = seed(url, size)
        port = free_port()
        env = {"DATABASE_URL": url, "LOAD_DEMO_DATA": "false", "SECRET_KEY": SECRET}
        headers = {"Cookie": f"hcc_staff={cookie}"}
        with serve("webhook.app:create_app", env, port):
            settle(url)
            hammer("127.0.0.1", port, ["/healthz"], total=200, concurrency=1, kind="warm")
            hammer(
                "127.0.0.1",
                port,
                ["/admin"],
                total=100,
                concurrency=1,
                kind="warm",
                headers=headers,
            )
            # Interleaved rounds, so both see the same background noise of a shared machine.
            health = Result("healthz", 0, 0.0, [], {})
            inbox = Result("inbox", 0, 0.0, [], {})
            for _ in range(ROUNDS):
                for result, path, extra in ((health, "/healthz", None), (inbox, "/admin", headers)):
                    part = hammer("127.0.0.1", port, [path], total=requests // ROUNDS,
                                  concurrency=1, kind=result.path_kind, headers=extra)  # fmt: skip
                    result.latencies_ms += part.latencies_ms
                    for status, count in part.statuses.items():
                        result.statuses[status] = result.statuses.get(status, 0) + count
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    assert inbox.statuses == {200: requests // ROUNDS * ROUNDS}, inbox.statuses
    ratio = inbox.median / health.median
    print(f"[{size:,}] /healthz median {health.median:.2f} ms, p95 {health.percentile(95):.2f} ms")
    print(
        f"[{size:,}] inbox    median {inbox.median:.2f} ms, p95 {inbox.percentile(95):.2f} ms"
        f"  → {ratio:.2f} × /healthz (target ≤ 5)"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--postgres", default=POSTGRES_ADMIN)
    args = parser.parse_args()
    ratios = [run(args.postgres, size, args.requests) for size in args.sizes]
    if len(ratios) >= 2:
        growth = ratios[-1] / ratios[0]
        print(f"flatness: {args.sizes[-1]:,} vs {args.sizes[0]:,} → {growth:.2f} (target ≤ 1.3)")


if __name__ == "__main__":
    main()
