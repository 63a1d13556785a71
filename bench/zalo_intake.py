"""Citizen text events on Zalo through the full path, against the no-op baseline in the same run.

    .venv/bin/python -m bench.zalo_intake [--db sqlite|postgresql|both] [--quick]

The app (`bench.baseline:bench_app`) and a fake Zalo OpenAPI run as separate uvicorn processes
on loopback. Each measured event is a signed `user_send_text` ("menu") from a distinct follower:
signature check, the replay guard keeping the event, the 200 answer, then the dialogue turn,
the database, and the reply to the fake Zalo API (the menu's six choices are one message: four
and "Xem thêm", as Zalo takes five buttons a message). A Zalo webhook answers before it works,
so the webhook's rate alone would flatter it: a round ends when the fake has received every
reply, and the rate is events over that time. The baseline receives the same POSTs with the
same bodies. Rounds are interleaved.

Target (issue #12): the same ratio the Telegram text update reaches against its baseline
(`python -m bench.telegram_intake`), or better.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.request import urlopen

from bench.baseline import NOOP, verdict
from bench.databases import POSTGRES_ADMIN, chosen, fresh_database, prepare
from bench.loadgen import Result, free_port, hammer, interleaved, serve
from bench.telegram_intake import cpu_seconds
from storage.db import make_engine, session_scope
from storage.zalo import save_tokens
from tests.fakes.zalo import ZALO_APP_ID, ZALO_APP_SECRET, ZALO_OA_ID, ZALO_OA_SECRET, ZaloEvents

WEBHOOK = "/webhook/zalo"
ROUNDS = 5
ACCESS_TOKEN = "bench-access-token"
REPLIES_PER_MENU = 1
TELEGRAM_TEXT_TARGET = {"sqlite": 0.3, "postgresql": 0.2}  # bench/telegram_intake.py


def delivered(fake_port: int) -> int:
    with urlopen(f"http://127.0.0.1:{fake_port}/_delivered") as answer:
        return int(json.load(answer)["messages"])


def wait_for(fake_port: int, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while delivered(fake_port) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {delivered(fake_port)} of {count} replies arrived")
        time.sleep(0.01)


def signed_menus(users: list[ZaloEvents], text: str = "menu") -> list[tuple[bytes, dict[str, str]]]:
    """One signed text from each of these followers (each event distinct: its own msg_id)."""
    return [events.signed(events.text(text)) for events in users]


def run(kind: str, url: str, args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp())
    fake_port, app_port = free_port(), free_port()
    base = f"http://127.0.0.1:{fake_port}"
    app_env = {
        "DATABASE_URL": url,
        "MEDIA_DIR": str(folder / "media"),
        "LOAD_DEMO_DATA": "false",
        "ZALO_APP_ID": ZALO_APP_ID,
        "ZALO_APP_SECRET": ZALO_APP_SECRET,
        "ZALO_OA_ID": ZALO_OA_ID,
        "ZALO_OA_SECRET_KEY": ZALO_OA_SECRET,
        "ZALO_API_BASE": base,
        "ZALO_OAUTH_BASE": base,
        "ZALO_BUSINESS_API_BASE": base,
        "REDIS_URL": "",
        # Our own cost, not Zalo's limit: at 4,000 requests/min per OA (one a menu) the limit
        # alone caps the OA at about 67 menus a second; the run says so below.
        "ZALO_MAX_PER_MINUTE": "0",
    }
    prepare(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        now = datetime.now(UTC)
        save_tokens(session, oa_id=ZALO_OA_ID, access_token=ACCESS_TOKEN,
                    refresh_token="bench-refresh", expires_at=now + timedelta(days=1),
                    now=now)  # fmt: skip
    engine.dispose()
    with (
        serve("tests.fakes.zalo:app_from_env", {"FAKE_ZALO_ACCESS_TOKEN": ACCESS_TOKEN}, fake_port),
        serve("bench.baseline:bench_app", app_env, app_port) as server,
    ):
        per_round = args.events // ROUNDS
        # Followers who wrote before (as in bench/telegram_intake.py, whose chats say /start
        # first): the measured turn is the menu of a known citizen, not a first contact.
        users = [ZaloEvents(user_id=str(10_000_000 + n)) for n in range(500)]
        warm = signed_menus(users, "/start")
        expected = delivered(fake_port) + (1 + REPLIES_PER_MENU) * len(users)  # welcome + menu
        _post_signed(app_port, WEBHOOK, warm, args.concurrency, "warm")
        wait_for(fake_port, expected)
        turn = [0]
        cpu = {"noop": 0.0, "zalo": 0.0, "fake": 0.0}

        def measure(path: str, name: str) -> Callable[[int], Result]:
            def one_round(_: int) -> Result:
                # Every signature is over a timestamp: sign a round's events just before it.
                picked = [users[(turn[0] + i) % len(users)] for i in range(per_round)]
                turn[0] += per_round
                signed = signed_menus(picked)
                expected = delivered(fake_port) + REPLIES_PER_MENU * per_round
                began, cpu_began = time.perf_counter(), cpu_seconds(server.pid)
                result = _post_signed(app_port, path, signed, args.concurrency, name)
                if path == WEBHOOK:
                    assert result.statuses == {200: per_round}, result.statuses
                    wait_for(fake_port, expected)
                result.seconds = time.perf_counter() - began
                cpu[name] = cpu.get(name, 0.0) + cpu_seconds(server.pid) - cpu_began
                return result

            return one_round

        results = interleaved(
            {"noop": measure(NOOP, "noop"), "zalo": measure(WEBHOOK, "zalo")}, ROUNDS
        )
    noop, zalo = results["noop"], results["zalo"]
    ratio, target = zalo.rate / noop.rate, TELEGRAM_TEXT_TARGET[kind]
    print(f"[{kind}] no-op (same POSTs)        : {noop.rate:8.0f} req/s")
    print(f"[{kind}] (Zalo's own limit, 4,000 requests/min per OA, allows "
          f"{4000 / 60 / REPLIES_PER_MENU:.0f} menus/s whatever the product does)")
    print(
        f"[{kind}] Zalo text event, answered : {zalo.rate:8.0f} events/s (until every reply "
        f"reached the fake)  ratio {ratio:.2f} (Telegram's target ≥ {target}) "
        f"{verdict(ratio >= target)}"
    )
    print(f"[{kind}] web process CPU           : {cpu['zalo'] / zalo.requests * 1000:.2f} ms per "
          f"event (turn and {REPLIES_PER_MENU} send), {cpu['noop'] / noop.requests * 1000:.2f} ms "
          f"per no-op; the fake Zalo API's CPU for the reply runs on the same cores")  # fmt: skip


def _post_signed(
    port: int, path: str, signed: list[tuple[bytes, dict[str, str]]], concurrency: int, kind: str
) -> Result:
    """POST each body with its own signature header, over keep-alive connections."""
    signatures = [{"X-ZEvent-Signature": headers["X-ZEvent-Signature"]} for _, headers in signed]
    return hammer("127.0.0.1", port, [path], total=len(signed), concurrency=concurrency,
                  kind=kind, bodies=[body for body, _ in signed],
                  body_headers=signatures)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="500 events")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN, help="admin URL to create a DB in")
    args = parser.parse_args()
    if args.quick:
        args.events = 500
    for kind in chosen(args.db):
        with fresh_database(kind, args.postgres) as url:
            run(kind, url, args)


if __name__ == "__main__":
    main()
