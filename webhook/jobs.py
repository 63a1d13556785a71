"""Background work: the dispatcher that moves due outbox messages on, reminders, and `hcc worker`.

Embedded mode (no REDIS_URL): a dispatcher thread in the web process delivers messages itself.
With Redis: every `hcc worker` runs a dispatcher thread that hands due messages to an rq queue,
and an rq worker that delivers them. Both call `bots.delivery.deliver`, the one sending path.
Retries and reminders are scheduled in the database, so they survive a restart or a lost Redis.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bots.channels import KEPT_EVENTS, make_senders, onestop_client_for, process_throttle
from bots.delivery import Outcome, Sender, Throttle, deliver, send_owed_replies
from bots.onestop import pull_statuses
from bots.zalo import ZaloSender, check_templates_file
from core.channels import Channel
from storage.db import session_scope, single_statements
from storage.inbound import (
    REPLAY_WINDOW,
    abandoned_replies,
    claim_owed_replies,
    forget_deliveries,
    owe_replies,
    stale_albums,
    take_album,
    unhandled_events,
)
from storage.intake import album_incoming, converse
from storage.outbox import release, take_due
from storage.reminders import queue_reminders
from webhook.runtime import Runtime, build_runtime
from webhook.settings import Settings, get_settings

log = logging.getLogger(__name__)

QUEUE = "hcc-notices"
# Messages per rq job. rq's own bookkeeping costs more than sending one message (bench/notify.py),
# so a burst goes out in jobs of several; when few are due, each job carries what there is.
JOB_BATCH = 10
REDIS_RETRY = timedelta(seconds=2)  # messages that could not be queued wait this long
STALE_ALBUM = timedelta(seconds=30)  # an album unanswered this long lost its web process


class Dispatcher:
    """Finds due messages and reminders; delivers inline (`queue` None) or enqueues to rq."""

    def __init__(self, runtime: Runtime, senders: Mapping[str, Sender], queue: Any = None) -> None:
        self.runtime, self.senders, self.queue = runtime, senders, queue
        self.lease = timedelta(seconds=runtime.settings.outbox_lease_seconds)
        self.wake = threading.Event()  # set after a commit that wrote messages: look now
        self.next_pull: datetime | None = None  # pull mode: when to ask the one-stop systems

    def dispatch(self, now: datetime | None = None) -> list[Outcome]:
        """One pass over due messages: what happened to each (inline), or that it was queued."""
        now = now or datetime.now(UTC)
        self.handle_kept_events(now)
        self.send_abandoned_replies(now)
        with session_scope(self.runtime.engine) as session:
            ids = take_due(session, now, self.lease)
        if not ids:
            return []
        if self.queue is None:
            return [
                deliver(self.runtime.engine, self.senders, i, lease=self.lease, now=now)
                for i in ids
            ]
        batches = [tuple(ids[i : i + JOB_BATCH]) for i in range(0, len(ids), JOB_BATCH)]
        try:
            self.queue.enqueue_many(
                [
                    self.queue.prepare_data(deliver_job, batch, result_ttl=0, failure_ttl=86400)
                    for batch in batches
                ]
            )
        except Exception as error:  # Redis down: the messages wait in the outbox
            log.warning("could not queue %d messages: %s", len(ids), error)
            with session_scope(self.runtime.engine) as session:
                release(session, ids, now + REDIS_RETRY)
            return []
        return [Outcome("queued")] * len(ids)

    def tick(self, now: datetime | None = None) -> int:
        """The slow beat (about once a minute): queue due reminders, rescue lost albums, forget
        delivery ids too old to be redelivered."""
        now = now or datetime.now(UTC)
        runtime = self.runtime
        with session_scope(runtime.engine) as session:
            queued = queue_reminders(
                session, runtime.catalog, runtime.calendar, now, runtime.flow_rules
            )
        with session_scope(runtime.engine) as session:
            forget_deliveries(session, now - REPLAY_WINDOW)
        self.answer_stale_albums(now)
        self.pull_onestop(now)
        return queued

    def pull_onestop(self, now: datetime) -> None:
        """Pull mode, every ONESTOP_SYNC_MINUTES (0: off), for systems without callbacks."""
        minutes = self.runtime.settings.onestop_sync_minutes
        if minutes <= 0 or not self.runtime.flow_rules.onestop:
            return
        if self.next_pull is not None and now < self.next_pull:
            return
        self.next_pull = now + timedelta(minutes=minutes)
        runtime = self.runtime
        with httpx.Client(timeout=runtime.settings.onestop_timeout_seconds) as client:
            outcome = pull_statuses(runtime.engine, runtime.catalog, runtime.calendar,
                                    runtime.flow_rules, runtime.onestop,
                                    onestop_client_for(runtime, client))  # fmt: skip
        if outcome:
            log.info("one-stop pull: %s", outcome)

    def answer_stale_albums(self, now: datetime) -> int:
        """Albums parked by a web process that died before answering: answer them here, so no
        photo a citizen sent is silently dropped."""
        runtime = self.runtime
        if Channel.TELEGRAM not in self.senders:
            return 0
        with session_scope(runtime.engine) as session:
            stale = stale_albums(session, now - STALE_ALBUM)
        answered = 0
        for channel, chat, group, last in stale:
            with session_scope(runtime.engine) as session:
                parts = take_album(session, channel, chat, group, last)
                if parts is None:
                    continue
                replies = converse(
                    session,
                    channel=channel,
                    external_id=chat,
                    incoming=album_incoming(parts),
                    catalog=runtime.catalog,
                    calendar=runtime.calendar,
                    media=runtime.media,
                    public_base_url=runtime.settings.public_base_url,
                    rules=runtime.flow_rules,
                )
                # Owed at once: sent by the next pass, like any turn's unsent replies.
                owe_replies(session, channel, str(last), recipient=chat, replies=replies,
                            answered=False, lease_until=now)  # fmt: skip
            answered += 1
        self.send_abandoned_replies(now)
        return answered

    def handle_kept_events(self, now: datetime) -> int:
        """Events a web process acknowledged and died before handling (Zalo): handled here."""
        with session_scope(self.runtime.engine) as session:
            kept = unhandled_events(session, now)
        handled = 0
        for channel, delivery in kept:
            handler, sender = KEPT_EVENTS.get(Channel(channel)), self.senders.get(channel)
            if handler is None or sender is None:
                continue
            try:
                handled += handler(self.runtime, sender, delivery, self.lease)
            except Exception:  # kept still: the next pass after the lease tries again
                log.exception("kept %s event %s failed", channel, delivery)
        return handled

    def send_abandoned_replies(self, now: datetime) -> int:
        """Replies of dialogue turns whose process went away before sending them all (killed,
        or the Bot API failed): the rest are sent here, in order, each recorded once out."""
        engine = self.runtime.engine
        with session_scope(engine) as session:
            abandoned = abandoned_replies(session, now)
        sent = 0
        for channel, delivery in abandoned:
            sender = self.senders.get(channel)
            if sender is None:
                continue
            with single_statements(engine) as connection:
                owed = claim_owed_replies(connection, channel, delivery, now, now + self.lease)
            if owed is not None:  # (None: another process took them)
                sent += send_owed_replies(engine, sender, owed)
        return sent

    def run(self, stop: threading.Event) -> None:
        """Loop until `stop`: reminders every few minutes, due messages every second or so."""
        settings = self.runtime.settings
        next_reminders = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= next_reminders:
                    self.tick()
                    next_reminders = time.monotonic() + settings.reminder_interval_seconds
                self.dispatch()
            except Exception:
                log.exception("dispatcher pass failed; trying again")
            self.wake.wait(settings.dispatch_interval_seconds)
            self.wake.clear()


def check_at_start(runtime: Runtime, senders: Mapping[str, Sender]) -> None:
    """What a delivering process checks once: the Zalo template messages it may send exist and
    take the parameters `ZALO_TEMPLATES` fills (problems are logged; the rest still works)."""
    sender = senders.get(Channel.ZALO)
    if isinstance(sender, ZaloSender):
        try:
            check_templates_file(sender, runtime.settings.zalo_templates)
        except Exception:  # Zalo unreachable at start: the sends will say so too
            log.exception("could not check the Zalo template messages")


class InlineDelivery:
    """The embedded mode: a dispatcher thread inside the web process."""

    def __init__(self, runtime: Runtime, throttle: Throttle) -> None:
        self.dispatcher = Dispatcher(runtime, make_senders(runtime, throttle))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        check_at_start(self.dispatcher.runtime, self.dispatcher.senders)
        self.dispatcher.run(self._stop)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.dispatcher.wake.set()
        self._thread.join(timeout=15)


# --- rq worker side -------------------------------------------------------------------------

_worker_context: tuple[Runtime, dict[str, Sender]] | None = None


def _context(settings: Settings | None = None) -> tuple[Runtime, dict[str, Sender]]:
    """The worker process's runtime and senders, built once (rq jobs are plain functions)."""
    global _worker_context
    if _worker_context is None:
        settings = settings or get_settings()
        assert settings.redis_url, "rq jobs run only when REDIS_URL is set"
        runtime = build_runtime(settings)
        _worker_context = (runtime, make_senders(runtime, process_throttle(settings)))
    return _worker_context


def deliver_job(*message_ids: int) -> list[str]:
    """rq job: deliver outbox messages one after another (safe to run twice: each message's
    claim decides). A message left unclaimed by a worker that died waits out its lease and is
    dispatched again."""
    runtime, senders = _context()
    lease = timedelta(seconds=runtime.settings.outbox_lease_seconds)
    return [deliver(runtime.engine, senders, i, lease=lease).state for i in message_ids]


def run_worker(settings: Settings, burst: bool = False) -> None:
    """`hcc worker`: a dispatcher thread plus an rq worker on the notices queue, until stopped.

    Redis going away does not stop it: it waits and reconnects; messages wait in the outbox."""
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from rq import Queue, SimpleWorker

    assert settings.redis_url, "hcc worker needs REDIS_URL (without it the web process delivers)"
    redis = Redis.from_url(settings.redis_url)
    runtime, senders = _context(settings)
    check_at_start(runtime, senders)
    queue = Queue(QUEUE, connection=redis)
    stop = threading.Event()
    dispatcher = Dispatcher(runtime, senders, queue)
    if burst:
        dispatcher.tick()
        while dispatcher.dispatch():
            pass
    else:
        threading.Thread(target=dispatcher.run, args=(stop,), daemon=True).start()
    try:
        while True:
            try:
                worker = SimpleWorker([queue], connection=redis)
                worker.work(burst=burst, with_scheduler=False, logging_level="WARNING")
                return
            except RedisConnectionError as error:
                log.warning("Redis unreachable (%s); retrying in 1 s", error)
                time.sleep(1)
    finally:
        stop.set()
