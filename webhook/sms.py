"""POST /webhook/sms: status lookup for the SMS short-code gateway."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from bots.sms import InboundSms, answer, signature_is_valid
from core.channels import Channel
from storage.db import session_scope
from storage.inbound import first_delivery
from webhook.deps import RuntimeDep

router = APIRouter()


@router.post("/webhook/sms")
async def sms_webhook(request: Request, runtime: RuntimeDep) -> JSONResponse:
    secret = runtime.settings.sms_webhook_secret
    if secret is None:
        return JSONResponse({"error": "sms_not_configured"}, status_code=503)
    body = await request.body()  # at most webhook.limits' ceiling: refused before this if larger
    if not signature_is_valid(secret.get_secret_value(), body, request.headers.get("x-signature")):
        return JSONResponse({"error": "bad_signature"}, status_code=401)
    try:
        sms = InboundSms.model_validate_json(body)
    except ValidationError:
        return JSONResponse({"error": "malformed_payload"}, status_code=422)

    def handle() -> str | None:
        with session_scope(runtime.engine) as session:
            if not first_delivery(session, Channel.SMS, sms.id):
                return None
            return answer(
                session,
                sms.text,
                catalog=runtime.catalog,
                public_base_url=runtime.settings.public_base_url,
            )

    reply = await run_in_threadpool(handle)
    if reply is None:
        return JSONResponse({"reply": None, "duplicate": True})
    return JSONResponse({"reply": reply})
