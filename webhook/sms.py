"""The SMS webhooks: our signed JSON on POST /webhook/sms, and the configured gateway's own
request on /webhook/sms/<gateway>[/<secret>] (bots/sms_gateways; docs/sms.md)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from bots.sms import handle_sms
from bots.sms_gateways import GATEWAYS, HttpIn, Refused, SmsGateway
from storage.db import session_scope
from webhook.deps import RuntimeDep, wake_delivery
from webhook.runtime import Runtime

router = APIRouter()


@router.post("/webhook/sms")
async def sms_webhook(request: Request, runtime: RuntimeDep) -> Response:
    return await _handle(request, runtime, GATEWAYS["json"], None)


@router.api_route("/webhook/sms/{gateway}", methods=["GET", "POST"])
@router.api_route("/webhook/sms/{gateway}/{secret}", methods=["GET", "POST"])
async def gateway_webhook(
    request: Request, runtime: RuntimeDep, gateway: str, secret: str | None = None
) -> Response:
    """Only the gateway `SMS_GATEWAY` names answers; any other path is unknown (401)."""
    adapter = GATEWAYS.get(gateway)
    if adapter is None or gateway != runtime.settings.sms_gateway:
        return JSONResponse({"error": "unknown_path"}, status_code=401)
    return await _handle(request, runtime, adapter, secret)


async def _handle(
    request: Request, runtime: Runtime, gateway: SmsGateway, secret: str | None
) -> Response:
    body = await request.body()  # at most webhook.limits' ceiling: refused before this if larger
    incoming = HttpIn(
        method=request.method,
        secret=secret,
        query=dict(request.query_params),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
        peer=request.client.host if request.client else None,
    )
    try:
        sms = gateway.read(incoming, runtime.settings, time.time())
    except Refused as refused:
        return JSONResponse({"error": refused.error}, status_code=refused.status)
    if sms is None:  # an event that is not an SMS
        out = gateway.answer(None, None)
        return Response(out.body, status_code=out.status, media_type=out.media_type)

    def handle() -> str | None:
        with session_scope(runtime.engine) as session:
            return handle_sms(session, gateway, sms, catalog=runtime.catalog,
                              public_base_url=runtime.settings.public_base_url,
                              at=datetime.now(UTC))  # fmt: skip

    reply = await run_in_threadpool(handle)
    if reply is not None and not gateway.reply_in_answer:
        wake_delivery(request)  # the reply is in the outbox: send it now (embedded mode)
    out = gateway.answer(sms, reply)
    return Response(out.body, status_code=out.status, media_type=out.media_type)
