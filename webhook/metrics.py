"""GET /metrics: the installation's state in Prometheus' text format, for operators' alerts.

Every figure is read when scraped (the media store, the outbox in the database), so each web
process answers the same truth without shared counters. Protected by `METRICS_TOKEN` (a bearer
token); without one the route does not exist. Request counters and latencies across several
processes (prometheus-client's multiprocess mode) come with the scale-out work (issue #16).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from storage.db import session_scope
from storage.inbound import unsent_reply_count
from storage.outbox import outbox_depth
from webhook.runtime import Runtime

PATH = "/metrics"


class InstallationState(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = datetime.now(UTC)
        problem = self.runtime.media.problem()
        media = GaugeMetricFamily(
            "hcc_media_store_up", "1 when the media store takes files (photos can be received)"
        )
        media.add_metric([], 0 if problem else 1)
        yield media
        with session_scope(self.runtime.engine) as session:
            depth = outbox_depth(session)
            unsent = unsent_reply_count(session)
        messages = GaugeMetricFamily(
            "hcc_outbox_messages", "Outbox messages on their way, and dead letters",
            labels=["channel", "state"],
        )  # fmt: skip
        oldest = GaugeMetricFamily(
            "hcc_outbox_oldest_age_seconds", "Age of the oldest message in each state",
            labels=["channel", "state"],
        )  # fmt: skip
        for channel, state, count, created in depth:
            messages.add_metric([channel, state], count)
            if created is not None:
                oldest.add_metric([channel, state], (now - created).total_seconds())
        yield messages
        yield oldest
        replies = GaugeMetricFamily(
            "hcc_replies_unsent", "Dialogue replies owed to citizens and not yet out"
        )
        replies.add_metric([], unsent)
        yield replies


def install(app: FastAPI, runtime: Runtime) -> None:
    token = runtime.settings.metrics_token
    if token is None:
        return
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InstallationState(runtime))
    expected = f"Bearer {token.get_secret_value()}".encode()

    async def metrics(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_route(PATH, metrics, methods=["GET"], include_in_schema=False)
