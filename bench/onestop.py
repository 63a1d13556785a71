"""Accepted dossiers forwarded to the one-stop system: outbox → rq → one worker → a fake one-stop
system, against trivial rq jobs that each make one HTTP POST of the same size to the same fake.

    .venv/bin/python -m bench.onestop [--dossiers 1000] [--quick]

Like for like, in 5 interleaved rounds (a shared VM's speed drifts by 2× over minutes), one
message per rq job on both sides (`JOB_BATCH` set to 1 for the run):
- a create: the dispatcher reads the due row from PostgreSQL and enqueues it; the job claims it,
  checks no earlier change of the dossier is unsent, reads the dossier (snapshot: citizen,
  files, supplement rounds), builds the national item, POSTs DongBoHoSoMC with a cached OAuth2
  token and marks it sent;
- a trivial job: enqueued the same way and run by the same worker class, it POSTs the same
  bytes (a product item, its code replaced by a distinct one of the same length) to the same
  DongBoHoSoMC with the same bearer token over a kept-alive connection, and checks the answer.
The fake one-stop system is its own uvicorn process on loopback (`tests.fakes.onestop:
app_from_env`) and records each create's code. Each round's dossiers are submitted and accepted
before it (not timed; acceptance writes the one-stop create to the outbox in its transaction),
each a distinct dossier. Target: ≥ 0.5 × the trivial jobs, and every dossier created exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import update
from sqlmodel import Session, select

from bench.baseline import verdict
from bench.databases import POSTGRES_ADMIN, fresh_database, prepare
from bench.loadgen import free_port, serve
from core.dossier import Action, Actor, Command
from core.onestop import dossier_item
from storage.db import session_scope
from storage.dossiers import apply_command, submit_dossier
from storage.models import Citizen, Dossier, OutboxMessage
from storage.onestop import dossier_snapshot
from tests.fakes.onestop import CLIENT_ID, CLIENT_SECRET
from webhook import jobs
from webhook.jobs import QUEUE, Dispatcher, _context

ROUNDS = 5
SLOT = "@CODE@"  # where a trivial job writes its own code
_trivial: dict[str, Any] = {}  # what a trivial job posts, set before the runs (same process)


def trivial_job(number: int) -> int:
    """One POST of a product-sized body, as the sender makes it (kept-alive client, token)."""
    body = _trivial["body"].replace(SLOT, f"{number:0{_trivial['width']}d}")  # same length
    response = _trivial["http"].post(
        _trivial["url"],
        params={"MaDinhDanhDV": _trivial["unit"], "isUpdating": "False"},
        content=body.encode(),
        headers={"Authorization": f"Bearer {_trivial['token']}",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    response.raise_for_status()
    assert response.json()["error_code"] == 0
    return number


def run_trivial(queue: Queue, count: int, first: int) -> float:
    began = time.perf_counter()
    queue.enqueue_many(
        [
            queue.prepare_data(trivial_job, (first + i,), result_ttl=0, failure_ttl=86400)
            for i in range(count)
        ]
    )
    SimpleWorker([queue], connection=queue.connection).work(burst=True, logging_level="WARNING")
    return time.perf_counter() - began


def accept_dossiers(runtime: Any, count: int) -> list[str]:
    """`count` dossiers submitted by distinct citizens and accepted by the desk (untimed): each
    acceptance writes its one-stop create to the outbox. Their codes."""
    procedure = runtime.catalog.procedure_by_slug("ho-kinh-doanh")
    agency = runtime.catalog.receiving_agencies(procedure)[0].code
    codes = []
    now = datetime.now(UTC)
    for n in range(count):
        with session_scope(runtime.engine) as session:
            citizen = Citizen(full_name="Nguyễn Văn An", phone=f"+8491{n % 10_000_000:07d}")
            session.add(citizen)
            session.flush()
            dossier, _ = submit_dossier(session, catalog=runtime.catalog,
                                        calendar=runtime.calendar, procedure_code=procedure.code,
                                        agency_code=agency, citizen_id=citizen.id, channel="web",
                                        at=now)  # fmt: skip
            assert dossier.id is not None
            apply_command(session, dossier.id, Command(Action.ACCEPT, Actor.DESK_OFFICER, now),
                          catalog=runtime.catalog, calendar=runtime.calendar,
                          rules=runtime.flow_rules)  # fmt: skip
            codes.append(dossier.code)
    with session_scope(runtime.engine) as session:  # only the creates are measured
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.channel != "onestop", OutboxMessage.state == "pending")  # type: ignore[arg-type]
            .values(state="sent")
        )
    return codes


def run_creates(dispatcher: Dispatcher, queue: Queue, count: int) -> float:
    """Dispatch `count` due creates to rq, one per job, then let one worker deliver them."""
    began = time.perf_counter()
    taken = 0
    while taken < count:
        batch = dispatcher.dispatch()
        if not batch:
            break
        taken += len(batch)
    SimpleWorker([queue], connection=queue.connection).work(burst=True, logging_level="WARNING")
    return time.perf_counter() - began


def sample_body(runtime: Any, code: str) -> str:
    """The DongBoHoSoMC body the product sends for this dossier."""
    with Session(runtime.engine) as session:
        dossier = session.exec(select(Dossier).where(Dossier.code == code)).one()
        connection = runtime.onestop.get(dossier.agency_code)
        snapshot = dossier_snapshot(session, dossier, runtime.catalog, lambda f: "")
        item = dossier_item(snapshot, connection.mapping)
    return json.dumps({"data": [item]}, ensure_ascii=False)


def unit_of(runtime: Any, code: str) -> str:
    with Session(runtime.engine) as session:
        dossier = session.exec(select(Dossier).where(Dossier.code == code)).one()
    return str(runtime.onestop.get(dossier.agency_code).unit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=1000, help="per measure")
    parser.add_argument("--quick", action="store_true", help="250 dossiers per measure")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN, help="admin URL to create a DB in")
    # A database of its own: the tests use 0, bench.notify 13, the web-only benches 14.
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    if args.quick:
        args.dossiers = 250
    per_round = args.dossiers // ROUNDS
    total = per_round * ROUNDS
    seconds = {"trivial": 0.0, "creates": 0.0}
    port = free_port()
    fake = f"http://127.0.0.1:{port}"
    with fresh_database("postgresql", args.postgres) as url:
        prepare(url)
        with serve("tests.fakes.onestop:app_from_env", {}, port):
            os.environ.update(
                DATABASE_URL=url,
                REDIS_URL=args.redis,
                LOAD_DEMO_DATA="false",
                PUBLIC_BASE_URL="https://hcc.example.vn",
                ONESTOP_BASE_URL=f"{fake}/api",
                ONESTOP_TOKEN_URL=f"{fake}/token",
                ONESTOP_CLIENT_ID=CLIENT_ID,
                ONESTOP_CLIENT_SECRET=CLIENT_SECRET,
            )
            runtime, senders = _context()  # an `hcc worker`'s, from the settings just set
            redis = Redis.from_url(args.redis)
            queue = Queue(QUEUE, connection=redis)
            trivial_queue = Queue("bench-trivial", connection=redis)
            queue.empty()
            trivial_queue.empty()
            dispatcher = Dispatcher(runtime, senders, queue)
            dispatcher.lease = timedelta(minutes=10)  # a round's backlog is not re-dispatched
            batch, jobs.JOB_BATCH = jobs.JOB_BATCH, 1  # one message per job, like the trivial

            http = httpx.Client(timeout=10)
            token = http.post(f"{fake}/token", data={"grant_type": "client_credentials",
                                                     "client_id": CLIENT_ID,
                                                     "client_secret": CLIENT_SECRET})  # fmt: skip
            codes: list[str] = []
            for number in range(ROUNDS):
                codes += accept_dossiers(runtime, per_round)
                if number == 0:  # the trivial body: a product body, its code made a slot
                    dossier_code = codes[0]
                    _trivial.update(http=http, url=f"{fake}/api/DongBoHoSoMC",
                                    unit=unit_of(runtime, dossier_code),
                                    token=token.json()["access_token"], width=len(dossier_code),
                                    body=sample_body(runtime, dossier_code).replace(
                                        dossier_code, SLOT))  # fmt: skip
                seconds["trivial"] += run_trivial(trivial_queue, per_round, number * per_round)
                seconds["creates"] += run_creates(dispatcher, queue, per_round)
            jobs.JOB_BATCH = batch
            with urllib.request.urlopen(f"{fake}/_creates") as response:
                created = Counter(json.load(response))

    trivial_rate, create_rate = total / seconds["trivial"], total / seconds["creates"]
    ratio = create_rate / trivial_rate
    print(f"trivial rq jobs, one POST each : {trivial_rate:6.0f}/s")
    print(f"one-stop creates, one per job  : {create_rate:6.0f}/s → ratio {ratio:.2f} "
          f"(target ≥ 0.5) {verdict(ratio >= 0.5)}")  # fmt: skip
    ours = Counter({code: created[code] for code in codes})
    twice = sum(1 for n in ours.values() if n > 1)
    missing = sum(1 for n in ours.values() if n == 0)
    print(f"creates on the fake: {sum(ours.values())} for {len(codes)} distinct dossiers, "
          f"{missing} missing, {twice} twice (plus {sum(created.values()) - sum(ours.values())} "
          f"trivial posts)")  # fmt: skip
    assert len(set(codes)) == total and missing == 0 and twice == 0, "lost or sent twice"
    trivial_posts = sum(created.values()) - sum(ours.values())
    assert trivial_posts == total, f"only {trivial_posts} of {total} trivial posts arrived"


if __name__ == "__main__":
    main()
