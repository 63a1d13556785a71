"""Citizen bot intake through the full webhook path, against the no-op baseline in the same run.

    .venv/bin/python -m bench.telegram_intake [--db sqlite|postgresql|both] [--quick]

The app (`bench.baseline:bench_app`) and a fake Bot API server run as separate uvicorn processes
on loopback. The baseline receives the same POSTs with the same JSON bodies as the webhook.

1. Text updates: secret check, replay guard, dialogue turn, database, and the reply — in the
   webhook's answer when it is a single text (Telegram runs it), otherwise to the fake Bot API.
   The cheapest turn ("menu"), in 5 rounds interleaved with the baseline. Targets (issue #10):
   ≥ 0.3 × the baseline on SQLite, ≥ 0.2 × on PostgreSQL. Every update must get its reply.
2. Whole submissions: simulated citizens, each on its own connection and waiting for each
   answer, go menu → procedure → agency → name → phone → 3 photos (distinct 1280×960 JPEGs, the
   size Telegram delivers) → submit; turns/s and submissions/s, in rounds interleaved with the
   baseline receiving the same bodies. Every citizen must end with a submitted dossier.
3. 12-megapixel photos, each one distinct (a few pixels changed before encoding, so the
   content-addressed store writes every one): upright JPEG photos, rotated JPEGs (EXIF
   orientation 6) and PNGs sent as files — the last two are decoded in full. Median ms per photo
   (target ≤ 400 ms), and the web process's extra peak memory with 4 at once (target ≤ 150 MB).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.request import urlopen

from PIL import Image
from sqlalchemy import func, select
from sqlmodel import col

from bench.baseline import NOOP, verdict
from bench.databases import POSTGRES_ADMIN, chosen, fresh_database, prepare
from bench.loadgen import Result, conversations, free_port, hammer, interleaved, serve
from core.dossier import Status
from storage.db import make_engine
from storage.models import Dossier
from tests import images
from tests.fakes.telegram import Updates

TOKEN = "1000:BENCH"
SECRET = "bench-secret"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
WEBHOOK = "/webhook/telegram/citizen"
ROUNDS = 5
TEXT_TARGET = {"sqlite": 0.3, "postgresql": 0.2}
PROCEDURE, AGENCY = "ho-kinh-doanh", "000.20.01.H53"


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


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def delivered(fake_port: int) -> list[int]:
    """Chat ids of the messages the fake Bot API has delivered so far."""
    with urlopen(f"http://127.0.0.1:{fake_port}/_delivered") as response:
        return list(json.load(response))


def distinct(base: Image.Image, number: int) -> Image.Image:
    """`base` with a few pixels changed: other bytes, so another file in the store."""
    image = base.copy()
    rng = random.Random(number)
    for _ in range(8):
        xy = (rng.randrange(image.width), rng.randrange(image.height))
        image.putpixel(xy, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    return image


def rotated(image: Image.Image) -> bytes:
    """Stored landscape-for-portrait with EXIF orientation 6, as phones save portrait shots."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return images.jpeg(image.rotate(90, expand=True), exif=exif.tobytes())


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class Intake:
    """One run against one database: the app and the fake Bot API, and the chats used so far."""

    def __init__(self, app_port: int, fake_port: int, files: Path, pid: int) -> None:
        self.app_port, self.fake_port, self.files, self.pid = app_port, fake_port, files, pid
        self.next_update_id = 1_000_000
        self.next_chat = 10_000

    def chat(self) -> Updates:
        """A new citizen: a chat and update ids never seen before (the replay guard)."""
        chat = Updates(chat_id=self.next_chat, first_update_id=self.next_update_id)
        self.next_chat += 1
        self.next_update_id += 1000
        return chat

    def post(self, path: str, bodies: list[bytes], concurrency: int, kind: str) -> Result:
        return hammer("127.0.0.1", self.app_port, [path], total=len(bodies),
                      concurrency=concurrency, kind=kind, headers=HEADERS, bodies=bodies,
                      keep_bodies=True)  # fmt: skip

    def send(self, *updates: dict[str, Any]) -> None:
        for update in updates:
            result = self.post(WEBHOOK, [json.dumps(update).encode()], 1, "setup")
            assert result.statuses == {200: 1}, result.statuses

    def to_first_paper(self, chat: Updates) -> None:
        self.send(chat.text(f"/start {PROCEDURE}"), chat.button("req:start"),
                  chat.button(f"agency:{AGENCY}"), chat.text("Nguyễn Văn An"),
                  chat.contact("0912345678"))  # fmt: skip

    def add_file(self, name: str, content: bytes) -> None:
        """The fake Bot API serves `<file_id>.jpg` from this folder, whatever the content."""
        (self.files / f"{name}.jpg").write_bytes(content)


def text_updates(intake: Intake, kind: str, requests: int, concurrency: int) -> None:
    chats = [intake.chat() for _ in range(500)]
    warm = [json.dumps(c.text("/start")).encode() for c in chats]
    intake.post(WEBHOOK, warm, 8, "warm")
    intake.post(NOOP, warm, 8, "warm")
    bodies = [json.dumps(chats[i % len(chats)].text("menu")).encode() for i in range(requests)]
    per_round = requests // ROUNDS
    sent_before = len(delivered(intake.fake_port))

    cpu = {"noop": 0.0, "text": 0.0}

    def part(path: str, kind: str) -> Callable[[int], Result]:
        def one_round(n: int) -> Result:
            began = cpu_seconds(intake.pid)
            result = intake.post(path, bodies[n * per_round : (n + 1) * per_round], concurrency,
                                 kind)  # fmt: skip
            cpu[kind] += cpu_seconds(intake.pid) - began
            return result

        return one_round

    results = interleaved({"noop": part(NOOP, "noop"), "text": part(WEBHOOK, "text")}, ROUNDS,
                          keep_bodies=True)  # fmt: skip
    noop, text = results["noop"], results["text"]
    assert text.statuses == {200: text.requests}, text.statuses
    answered = [json.loads(b) for b in text.bodies or []]
    in_answers = sum(1 for a in answered if a.get("method") == "sendMessage")
    by_bot_api = len(delivered(intake.fake_port)) - sent_before
    ratio, target = text.rate / noop.rate, TEXT_TARGET[kind]
    print(f"[{kind}] no-op (same POSTs)  : {noop.rate:8.0f} req/s")
    print(
        f"[{kind}] text update webhook : {text.rate:8.0f} req/s  (median {text.median:.1f} ms)  "
        f"ratio {ratio:.2f} (target ≥ {target}) {verdict(ratio >= target)}"
    )
    print(f"[{kind}] replies             : {in_answers} in the webhook answer, {by_bot_api} by "
          f"the Bot API, for {text.requests} updates")  # fmt: skip
    print(f"[{kind}] web process CPU     : {cpu['text'] / text.requests * 1000:.2f} ms per text "
          f"update, {cpu['noop'] / noop.requests * 1000:.2f} ms per no-op request")  # fmt: skip
    assert in_answers + by_bot_api >= text.requests, "an update went unanswered"


def submissions(intake: Intake, kind: str, citizens: int, concurrency: int, url: str) -> None:
    base = images.document_photo(960, 1280, seed=3)
    scripts = []
    for _ in range(citizens):
        chat = intake.chat()
        updates = [chat.text("/start"), chat.text("ho kinh doanh"), chat.button("req:start"),
                 chat.button(f"agency:{AGENCY}"), chat.text("Nguyễn Thị Mai"),
                 chat.contact("+84912345678")]  # fmt: skip
        for paper in range(3):
            name = f"c{chat.chat_id}-{paper}"
            intake.add_file(name, images.jpeg(distinct(base, chat.chat_id * 10 + paper)))
            updates += [chat.photo(name, 960, 1280), chat.button("doc:done")]
        updates.append(chat.button("review:submit"))
        scripts.append([json.dumps(u).encode() for u in updates])
    per_round = max(1, citizens // ROUNDS)
    rounds = [scripts[n * per_round : (n + 1) * per_round] for n in range(ROUNDS)]

    def noop(n: int) -> Result:
        bodies = [body for script in rounds[n] for body in script]
        return hammer("127.0.0.1", intake.app_port, [NOOP], total=len(bodies),
                      concurrency=concurrency, kind="noop", headers=HEADERS,
                      bodies=bodies)  # fmt: skip

    def submit(n: int) -> Result:
        return conversations("127.0.0.1", intake.app_port, WEBHOOK, rounds[n],
                             concurrency=concurrency, kind="turns", headers=HEADERS)  # fmt: skip

    results = interleaved({"noop": noop, "turns": submit}, ROUNDS)
    turns = results["turns"]
    assert turns.statuses == {200: turns.requests}, turns.statuses
    done = per_round * ROUNDS
    engine = make_engine(url)
    with engine.connect() as connection:
        submitted = connection.execute(
            select(func.count()).where(col(Dossier.status) == Status.SUBMITTED.value)
        ).scalar_one()
    engine.dispose()
    print(f"[{kind}] whole submissions   : {done / turns.seconds:8.1f} submissions/s, "
          f"{turns.rate:6.0f} turns/s (median turn {turns.median:.1f} ms, p95 "
          f"{turns.percentile(95):.0f} ms), {concurrency} citizens at a time; no-op on the "
          f"same bodies {results['noop'].rate:.0f} req/s")  # fmt: skip
    print(f"[{kind}] dossiers submitted  : {submitted} for {done} citizens")
    assert submitted == done, "a citizen did not reach a submitted dossier"


PHOTO_KINDS = ("upright JPEG photo", "rotated JPEG file", "PNG file")


def photos(intake: Intake, kind: str, timed: int) -> None:
    base = images.document_photo(4000, 3000)
    for shape in PHOTO_KINDS:
        chats = [intake.chat() for _ in range(timed + 4)]
        updates = []
        for chat in chats:
            name = f"p{chat.chat_id}"
            picture = distinct(base, chat.chat_id)
            intake.to_first_paper(chat)
            if shape == "upright JPEG photo":
                intake.add_file(name, images.jpeg(picture))
                updates.append(chat.photo(name, 4000, 3000))
            else:
                content = rotated(picture) if shape == "rotated JPEG file" else png(picture)
                intake.add_file(name, content)
                is_jpeg = shape == "rotated JPEG file"
                mime, suffix = ("image/jpeg", ".jpg") if is_jpeg else ("image/png", ".png")
                updates.append(chat.document(name, name + suffix, mime, len(content)))
        bodies = [json.dumps(u).encode() for u in updates]
        timings = []
        for body in bodies[:timed]:
            began = time.perf_counter()
            result = intake.post(WEBHOOK, [body], 1, "photo")
            timings.append((time.perf_counter() - began) * 1000)
            assert result.statuses == {200: 1}, result.statuses
        reset_peak(intake.pid)
        before = memory_mb(intake.pid, "VmRSS")
        intake.post(WEBHOOK, bodies[timed:], 4, "photos")
        extra = memory_mb(intake.pid, "VmHWM") - before
        median = statistics.median(timings)
        print(f"[{kind}] 12-MP {shape:<19}: median {median:4.0f} ms (target ≤ 400) "
              f"{verdict(median <= 400)}; 4 at once +{extra:.0f} MB peak (target ≤ 150) "
              f"{verdict(extra <= 150)}")  # fmt: skip


def run(kind: str, url: str, args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp())
    (folder / "files").mkdir()
    fake_port, app_port = free_port(), free_port()
    fake_env = {"FAKE_TELEGRAM_TOKEN": TOKEN, "FAKE_TELEGRAM_FILES": str(folder / "files")}
    app_env = {
        "DATABASE_URL": url,
        "MEDIA_DIR": str(folder / "media"),
        "LOAD_DEMO_DATA": "false",
        "TELEGRAM_CITIZEN_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_BASE": f"http://127.0.0.1:{fake_port}",
        "REDIS_URL": "",  # embedded: this process delivers the notices a submission writes
    }
    prepare(url)
    with (
        serve("tests.fakes.telegram:app_from_env", fake_env, fake_port),
        serve("bench.baseline:bench_app", app_env, app_port) as server,
    ):
        intake = Intake(app_port, fake_port, folder / "files", server.pid)
        text_updates(intake, kind, args.requests, args.concurrency)
        submissions(intake, kind, args.citizens, args.citizen_concurrency, url)
        if args.photos:
            photos(intake, kind, args.photos)
            stored = sum(1 for p in (folder / "media").rglob("*") if p.is_file())
            print(f"[{kind}] files stored        : {stored} (every photo and file distinct)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--citizens", type=int, default=40, help="whole submissions")
    parser.add_argument("--citizen-concurrency", type=int, default=8)
    parser.add_argument("--photos", type=int, default=4, help="timed photos per kind (0: none)")
    parser.add_argument("--quick", action="store_true", help="1,000 text updates, 10 citizens")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN, help="admin URL to create a DB in")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.citizens = 1000, 10
    for kind in chosen(args.db):
        with fresh_database(kind, args.postgres) as url:
            run(kind, url, args)


if __name__ == "__main__":
    main()
