"""The baseline every benchmark compares against, and how a bench prints a verdict.

The house rule: the baseline is the fastest trivial endpoint the same stack serves, in the same
app and process, receiving the same request shape (a GET with a path parameter for lookup, a POST
with the same JSON body for webhooks, the same cookie for the desk). A plain Starlette route on
the event loop: a FastAPI `def` route pays a thread-pool hop, which made the old ratios look 2×
better than they were.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from webhook.app import create_app

NOOP = "/bench/noop"
# A web process with REDIS_URL set delivers nothing itself (`hcc worker` does): the measured
# process serves requests only, as when the product is scaled out. Without it, the embedded
# dispatcher's first tick queues a reminder for every overdue seeded dossier and delivers them
# while the benchmark runs. Nothing is enqueued by the requests these benchmarks send.
WEB_ONLY = "redis://127.0.0.1:6379/14"


async def noop(request: Request) -> Response:
    """Reads the request body (a webhook does) and answers a small JSON document."""
    await request.body()
    return JSONResponse({"ok": True})


def bench_app() -> FastAPI:
    """The product app plus the baseline routes (`uvicorn --factory bench.baseline:bench_app`)."""
    app = create_app()
    app.add_route(NOOP, noop, methods=["GET", "POST"], include_in_schema=False)
    app.add_route(NOOP + "/{key}", noop, methods=["GET", "POST"], include_in_schema=False)
    return app


def verdict(met: bool) -> str:
    return "target met" if met else "target NOT met"
