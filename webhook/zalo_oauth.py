"""The Official Account's consent (OAuth v4 with PKCE): the link the OA admin opens, and
`GET /zalo/oauth/callback`, where Zalo sends the admin back with a single-use code.

The PKCE verifier is derived from the link's random `state` with the app secret
(`ZaloTokens.verifier`), so nothing is kept between the link and the callback: a forged or
altered state gives a verifier Zalo refuses. Every refusal is a Vietnamese page from the error
layer and stores nothing.
"""

from __future__ import annotations

import logging
import secrets

import httpx
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from bots.channels import zalo_tokens
from bots.delivery import TryLater
from bots.zalo import TokenBroken, ZaloTokens
from core.messages import render
from webhook.deps import RuntimeDep, templates
from webhook.runtime import Runtime

log = logging.getLogger(__name__)

CALLBACK_PATH = "/zalo/oauth/callback"
LANG = "vi"  # the page is read by the province's OA admin

router = APIRouter()


def redirect_uri(runtime: Runtime) -> str:
    """Where Zalo sends the OA admin back; register it as the app's callback URL."""
    return runtime.settings.public_base_url.rstrip("/") + CALLBACK_PATH


def new_consent_link(runtime: Runtime, tokens: ZaloTokens) -> str:
    """A fresh consent link (random state, its PKCE challenge) for the OA admin to open."""
    url, _ = tokens.consent_url(redirect_uri(runtime), secrets.token_urlsafe(24))
    return url


@router.get(CALLBACK_PATH)
def consent_callback(
    request: Request,
    runtime: RuntimeDep,
    code: str = Query(default=""),
    oa_id: str = Query(default=""),
    state: str = Query(default=""),
) -> HTMLResponse:
    """Zalo's redirect after the OA admin granted access: exchange the code, store the pair."""
    with httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0)) as client:
        tokens = zalo_tokens(runtime, client)
        if tokens is None:
            raise HTTPException(404)
        if not (code and oa_id and state):
            raise HTTPException(400, render("zalo.oauth.incomplete", LANG))
        if oa_id != tokens.oa_id:
            log.warning("zalo consent for another OA (%s) refused", oa_id)
            raise HTTPException(400, render("zalo.oauth.wrong_oa", LANG, oa_id=oa_id))
        try:
            tokens.exchange_code(code, tokens.verifier(state))
        except TokenBroken as error:
            log.warning("zalo consent code refused: %s", error)
            raise HTTPException(400, render("zalo.oauth.refused", LANG)) from error
        except TryLater as error:
            log.warning("zalo consent exchange failed: %s", error)
            raise HTTPException(503, render("zalo.oauth.unreachable", LANG)) from error
    log.info("zalo official account %s connected", oa_id)
    return templates.TemplateResponse(
        request, "zalo_connected.html", {"lang": LANG, "oa_id": oa_id}
    )
