"""Citizen bot intake through the full webhook path, against a no-op endpoint in the same run.

    .venv/bin/python -m bench.telegram_intake

1. Text updates: secret check, replay guard, dialogue turn, database, and the reply — in the
   webhook's answer when it is a single text (Telegram runs it), otherwise to a fake Bot API
   server (its own process on loopback). In 5 rounds interleaved with the no-op endpoint.
   Target ≥ 0.3 × the no-op endpoint. Every update must get its reply.
2. One 12-megapixel JPEG photo: getFile, download, checks, storage, reply — median ms over
   several photos (target ≤ 400 ms), and the web process's extra peak memory with 4 photos at
   once (target ≤ 150 MB).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

from bench.loadgen import Result, free_port, hammer, serve
from tests import images
from tests.fakes.telegram import Updates

TOKEN = "1000:BENCH"
SECRET = "bench-secret"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}


def memory_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak since start or since `reset_peak`) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid: int) -> None:
    """Start the peak over from the current size (Linux: clear_refs 5), so that the photos
    measured earlier do not hide the peak of the batch."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


ROUNDS = 5


def add(total: Result, part: Result) -> None:
    total.requests += part.requests
    total.seconds += part.seconds
    total.latencies_ms += part.latencies_ms
    for status, count in part.statuses.items():
        total.statuses[status] = total.statuses.get(status, 0) + count
    if total.bodies is not None:
        total.bodies += part.bodies or []


def delivered(fake_port: int) -> list[int]:
    """Chat ids of the messages the fake Bot API has delivered so far."""
    with urlopen(f"http://127.0.0.1:{fake_port}/_delivered") as response:
        return list(json.load(response))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    (folder / "files").mkdir()
    photo = images.jpeg(images.document_photo(4000, 3000))
    (folder / "files" / "big.jpg").write_bytes(photo)
    fake_port, app_port = free_port(), free_port()
    fake_env = {"FAKE_TELEGRAM_TOKEN": TOKEN, "FAKE_TELEGRAM_FILES": str(folder / "files")}
    app_env = {
        "DATABASE_URL": args.database_url or f"sqlite:///{folder / 'bench.sqlite3'}",
        "MEDIA_DIR": str(folder / "media"),
        "LOAD_DEMO_DATA": "false",
        "TELEGRAM_CITIZEN_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_BASE": f"http://127.0.0.1:{fake_port}",
        "REDIS_URL": "",
    }
    from storage.migrate import upgrade

    upgrade(app_env["DATABASE_URL"])
    with (
        serve("tests.fakes.telegram:app_from_env", fake_env, fake_port),
        serve("bench.lookup:bench_app", app_env, app_port) as server,
    ):
        webhook = "/webhook/telegram/citizen"
        # Update ids unique to this run: a database given with --database-url may hold earlier
        # runs, and the replay guard would rightly ignore their ids.
        run = time.time_ns() // 1000 * 10**9
        chats = [Updates(chat_id=10_000 + i, first_update_id=run + i * 100_000) for i in range(500)]
        warm = [json.dumps(c.text("/start")).encode() for c in chats]
        hammer("127.0.0.1", app_port, [webhook], total=len(warm), concurrency=8, kind="warm",
               headers=HEADERS, bodies=warm)  # fmt: skip
        hammer("127.0.0.1", app_port, ["/bench/noop"], total=500, concurrency=8, kind="warm")
        bodies = [
            json.dumps(chats[i % len(chats)].text("menu")).encode() for i in range(args.requests)
        ]
        sent_before = len(delivered(fake_port))
        per_round = args.requests // ROUNDS
        noop = Result("noop", 0, 0.0, [], {})
        text = Result("text", 0, 0.0, [], {}, [])
        for n in range(ROUNDS):  # interleaved: both see the same moment of a shared machine
            add(noop, hammer("127.0.0.1", app_port, ["/bench/noop"], total=per_round,
                             concurrency=args.concurrency, kind="noop"))  # fmt: skip
            add(text, hammer("127.0.0.1", app_port, [webhook], total=per_round,
                             concurrency=args.concurrency, kind="text", headers=HEADERS,
                             bodies=bodies[n * per_round : (n + 1) * per_round],
                             keep_bodies=True))  # fmt: skip
        assert text.statuses == {200: text.requests}, text.statuses
        answered = [json.loads(b) for b in text.bodies or []]
        in_answers = sum(1 for a in answered if a.get("method") == "sendMessage")
        by_bot_api = len(delivered(fake_port)) - sent_before
        ratio = text.rate / noop.rate
        print(f"no-op endpoint      : {noop.rate:8.0f} req/s")
        print(
            f"text update webhook : {text.rate:8.0f} req/s  (median {text.median:.1f} ms)  "
            f"ratio {ratio:.2f} (target ≥ 0.3) {'OK' if ratio >= 0.3 else 'BELOW TARGET'}"
        )
        print(
            f"replies             : {in_answers} in the webhook answer, "
            f"{by_bot_api} by the Bot API, "
            f"for {text.requests} updates"
        )
        assert in_answers + by_bot_api >= text.requests, "an update went unanswered"

        # Photos: bring 12 chats to their first paper, then send a 12-MP photo from each.
        photographers = [
            Updates(chat_id=90_000 + i, first_update_id=run + (1000 + i) * 100_000)
            for i in range(12)
        ]
        for chat in photographers:
            for update in (chat.text("/start ho-kinh-doanh"), chat.button("req:start"),
                           chat.button("agency:000.20.01.H53"), chat.text("Nguyễn Văn An"),
                           chat.contact("0912345678")):  # fmt: skip
                hammer("127.0.0.1", app_port, [webhook], total=1, concurrency=1, kind="setup",
                       headers=HEADERS, bodies=[json.dumps(update).encode()])  # fmt: skip
        timings = []
        for chat in photographers[:8]:
            body = json.dumps(chat.photo("big", 4000, 3000)).encode()
            began = time.perf_counter()
            result = hammer("127.0.0.1", app_port, [webhook], total=1, concurrency=1, kind="photo",
                   headers=HEADERS, bodies=[body])  # fmt: skip
            timings.append((time.perf_counter() - began) * 1000)
            assert result.statuses == {200: 1}, result.statuses
        reset_peak(server.pid)
        before = memory_mb(server.pid, "VmRSS")
        batch = [json.dumps(c.photo("big", 4000, 3000)).encode() for c in photographers[8:]]
        hammer("127.0.0.1", app_port, [webhook], total=4, concurrency=4, kind="photos",
               headers=HEADERS, bodies=batch)  # fmt: skip
        extra = memory_mb(server.pid, "VmHWM") - before
        stored = len(list((folder / "media").rglob("*.jpg")))
        print(f"photos stored       : {stored} distinct file(s)")
        median = statistics.median(timings)
        print(
            f"12-MP photo         : median {median:.0f} ms (target ≤ 400) "
            f"{'OK' if median <= 400 else 'ABOVE TARGET'}"
        )
        print(
            f"4 photos at once    : +{extra:.0f} MB peak (target ≤ 150) "
            f"{'OK' if extra <= 150 else 'ABOVE TARGET'}"
        )


if __name__ == "__main__":
    main()
