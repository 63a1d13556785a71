"""The Zalo Official Account channel: webhook events in (verify, translate to the dialogue's
`Incoming`, download attachments from Zalo's hosts only), `Reply`s out (`ZaloSender`), template
messages (ZNS) by phone, and the OAuth v4 token pair (`ZaloTokens`). No web framework here: the
route and the dialogue turn call these.

See docs/zalo.md for the wire facts and choices. Points where the public sources disagree
are settings or accept both forms: the signature may start with the app id or the OA id (both are
tried, the one that matched is logged once); `template_type: "button"` on button templates is a
setting (`button_template_type`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import anyio
import httpx
from PIL import Image
from sqlalchemy.engine import Engine

from bots.delivery import (
    MAX_INLINE_WAIT,
    MemoryThrottle,
    Rejected,
    Throttle,
    TryLater,
    Unreachable,
)
from core.calendar import VN_TZ
from core.channels import Contact
from core.conversation import Incoming, IncomingFile
from core.geo import Location, location
from core.messages import render
from core.phone import normalize_phone
from core.replies import Button, Reply, split_text
from core.zalo_templates import (
    DeclaredTemplate,
    TemplateConfigError,
    TemplateMapping,
    chat_window_open,
    check_declared,
    load_templates,
    off_chat_channel,
    template_data,
    tracking_id_for,
)
from storage.db import session_scope
from storage.outbox import Claimed
from storage.zalo import StoredToken, get_token, lock_token, mark_broken, save_tokens

log = logging.getLogger(__name__)

CHANNEL = "zalo"
BUTTON_PREFIX = "#hcc:"  # our button payloads: a tap comes back as a text starting with it
PAGE = "zalo:page:"  # data of the "more" button: zalo:page:<first choice>:<digest>
TEXT_LIMIT = 2000
MAX_BUTTONS = 5
CHOICES_PER_PAGE = MAX_BUTTONS - 1  # and the "more" button
IMAGE_LIMIT = 1_000_000  # upload/image takes jpg/png up to 1 MB
RECEIPTS = frozenset({"user_received_message", "user_seen_message"})

# ---------------------------------------------------------------------------- signature


class BadSignature(Exception):
    """The request is not an event Zalo sent to us now (answer 401, store nothing)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_TIMESTAMP = re.compile(rb'"timestamp"\s*:\s*"?(\d{1,16})"?')
_logged_variants: set[str] = set()


def verify(
    body: bytes,
    signature_header: str,
    *,
    app_id: str,
    oa_id: str,
    secret: str,
    now: datetime,
    max_skew: timedelta = timedelta(minutes=5),
) -> dict[str, Any]:
    """The event, once its `X-ZEvent-Signature` (sha256 of app_id + raw body + timestamp +
    secret) matches the raw bytes, its app and OA are ours and its time is near `now`.

    The mac is checked before the body is parsed: the timestamp it covers is found in the raw
    bytes, and the parsed body must then carry that same timestamp."""
    header = (signature_header or "").strip()
    if not header.lower().startswith("mac="):
        raise BadSignature("no mac in X-ZEvent-Signature")
    given = header[4:].strip().lower()
    matched = _match_mac(body, given, app_id=app_id, oa_id=oa_id, secret=secret)
    if matched is None:
        raise BadSignature("signature does not match")
    variant, stamp = matched
    if variant not in _logged_variants:
        _logged_variants.add(variant)
        log.info("zalo webhook signatures start with the %s", variant)
    try:
        event = json.loads(body)
    except ValueError as error:
        raise BadSignature("body is not JSON") from error
    if not isinstance(event, dict) or str(event.get("timestamp")) != stamp:
        raise BadSignature("timestamp is not the signed one")
    if str(event.get("app_id")) != app_id:
        raise BadSignature("app_id is not ours")
    if _event_oa_id(event) != oa_id:
        raise BadSignature("event of another Official Account")
    sent_at = datetime.fromtimestamp(int(stamp) / 1000, UTC)
    if abs(now - sent_at) > max_skew:
        raise BadSignature("timestamp too far from now")
    return event


def _match_mac(
    body: bytes, given: str, *, app_id: str, oa_id: str, secret: str
) -> tuple[str, str] | None:
    for stamp in _TIMESTAMP.findall(body)[:4]:  # the top-level one is among the first few
        for variant, first in (("app_id", app_id), ("oa_id", oa_id)):
            expected = hashlib.sha256(first.encode() + body + stamp + secret.encode()).hexdigest()
            if hmac.compare_digest(expected, given):
                return variant, stamp.decode()
    return None


def _event_oa_id(event: dict[str, Any]) -> str:
    """Follow events name the OA in `oa_id`; the citizen's messages in `recipient`; the OA's own
    messages and their receipts in `sender`."""
    if "oa_id" in event:
        return str(event["oa_id"])
    name = str(event.get("event_name", ""))
    side = "sender" if name.startswith("oa_") or name in RECEIPTS else "recipient"
    return str((event.get(side) or {}).get("id", ""))


# ---------------------------------------------------------------------------- translate


class EventKind(StrEnum):
    TURN = "turn"  # the citizen did something: run a dialogue turn
    FOLLOW = "follow"
    UNFOLLOW = "unfollow"  # pushes go by SMS from now on
    ECHO = "echo"  # our own message coming back: nothing to do
    ADMIN_REPLY = "admin_reply"  # a person answered from Zalo's OA manager: into the thread
    RECEIPT = "receipt"  # received / seen: the outbox row's delivery state
    IGNORED = "ignored"


@dataclass(frozen=True)
class Attachment:
    url: str
    kind: str  # "image" or "file"
    name: str = ""
    size: int | None = None  # what the event claims (files only); the download enforces it


@dataclass(frozen=True)
class ZaloEvent:
    kind: EventKind
    event_name: str
    user_id: str  # the citizen, scoped to our OA (the recipient of what we send)
    delivery_id: str  # for the replay guard: Zalo retries the same event
    at: datetime
    incoming: Incoming | None = None  # for turns; files still to download from `attachments`
    attachments: tuple[Attachment, ...] = ()
    name: str = ""  # user_submit_info
    phone: str = ""  # user_submit_info, normalised (+84…) when it is a Vietnamese mobile
    text: str = ""  # an admin reply's text
    admin_id: str = ""
    msg_ids: tuple[str, ...] = ()  # receipts
    tracking_id: str = ""  # receipt of a template message: our outbox key
    page: tuple[int, str] | None = None  # "more" pressed: (first choice, digest of the choices)

    def with_files(self, files: Sequence[IncomingFile]) -> Incoming:
        """The turn's input once its attachments are downloaded (a batch is one step)."""
        assert self.incoming is not None
        return replace(self.incoming, files=tuple(files))


def translate(event: dict[str, Any]) -> ZaloEvent:
    """A verified event as what the product does with it."""
    name = str(event.get("event_name", ""))
    message = event.get("message")
    if not isinstance(message, dict):
        message = {}
    sender, recipient = event.get("sender") or {}, event.get("recipient") or {}
    at = datetime.fromtimestamp(int(event.get("timestamp", 0)) / 1000, UTC)
    if name in ("follow", "unfollow"):
        user = str((event.get("follower") or {}).get("id", ""))
        kind = EventKind.FOLLOW if name == "follow" else EventKind.UNFOLLOW
        return ZaloEvent(kind, name, user, _delivery_id(event, name, user), at)
    if name.startswith("oa_send_"):
        user, admin = str(recipient.get("id", "")), str(sender.get("admin_id", "") or "")
        kind = EventKind.ADMIN_REPLY if admin else EventKind.ECHO
        return ZaloEvent(
            kind,
            name,
            user,
            _delivery_id(event, name, user),
            at,
            text=str(message.get("text", "")),
            admin_id=admin,
        )
    if name in RECEIPTS:
        user = str(recipient.get("id", ""))
        ids = message.get("msg_ids") or ([message["msg_id"]] if message.get("msg_id") else [])
        return ZaloEvent(
            EventKind.RECEIPT,
            name,
            user,
            _delivery_id(event, name, user),
            at,
            msg_ids=tuple(str(i) for i in ids),
            tracking_id=str(message.get("tracking_id", "")),
        )
    user = str(sender.get("id", ""))
    delivery = _delivery_id(event, name, user)
    if name == "user_submit_info":
        info = _submitted_info(event, message)
        raw_phone = str(info.get("phone", "")).strip()
        phone = normalize_phone(raw_phone) or raw_phone  # else the dialogue answers "bad phone"
        return ZaloEvent(
            EventKind.TURN,
            name,
            user,
            delivery,
            at,
            Incoming(phone=phone),
            name=str(info.get("name", "")).strip(),
            phone=phone,
        )
    if name == "user_send_text":
        text = str(message.get("text", ""))
        if text.startswith(BUTTON_PREFIX + PAGE):  # "more": the current step's choices, again
            page = _page_wanted(text.removeprefix(BUTTON_PREFIX + PAGE))
            return ZaloEvent(EventKind.TURN, name, user, delivery, at,
                             Incoming(button="nav:resume"), page=page)  # fmt: skip
        if text.startswith(BUTTON_PREFIX):
            incoming = Incoming(button=text.removeprefix(BUTTON_PREFIX))
        else:
            incoming = Incoming(text=text)
        return ZaloEvent(EventKind.TURN, name, user, delivery, at, incoming)
    if name in ("user_send_image", "user_send_file"):
        attachments = tuple(_attachments(message))
        if attachments:
            incoming = Incoming(text=str(message.get("text", "")))
            return ZaloEvent(EventKind.TURN, name, user, delivery, at, incoming, attachments)
    if name == "user_send_location" and (point := _location(message)) is not None:
        return ZaloEvent(EventKind.TURN, name, user, delivery, at, Incoming(location=point))
    if name.startswith("user_send_"):  # sticker, gif, audio, video, link, card, a bad location…
        return ZaloEvent(EventKind.TURN, name, user, delivery, at, Incoming(unsupported=True))
    return ZaloEvent(EventKind.IGNORED, name, user, delivery, at)


def _page_wanted(rest: str) -> tuple[int, str] | None:
    start, _, digest = rest.partition(":")
    if start.isdigit() and len(start) <= 4 and _DIGEST.fullmatch(digest):
        return int(start), digest
    return None  # not one of ours: the step's question is asked again, from its first page


_DIGEST = re.compile(r"[0-9a-f]{8}")


def _delivery_id(event: dict[str, Any], name: str, user: str) -> str:
    """Zalo's retries repeat `msg_id`; events without one are told apart by name, time and user.
    The name comes first: an echo and its receipts carry the same msg_id."""
    message = event.get("message") or {}
    msg_id = message.get("msg_id") if isinstance(message, dict) else None
    if msg_id:
        return f"{name}:{msg_id}"
    return f"{name}:{event.get('timestamp')}:{user}"


def _submitted_info(event: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """The three shapes seen: `info{name, phone, full_address{…}}`, a flat
    `info{name, phone, address, city, …}`, and the same as JSON in `message.text`."""
    info = event.get("info")
    if isinstance(info, dict):
        return info
    try:
        parsed = json.loads(str(message.get("text", "")))
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _location(message: dict[str, Any]) -> Location | None:
    """`attachments[] = {"type": "location", "payload": {"coordinates": {"latitude",
    "longitude"}}}`, the numbers as strings (as seen) or as numbers: both are taken. The place
    name Zalo may put in `message.text` is not used."""
    for item in message.get("attachments") or []:
        if not isinstance(item, dict) or item.get("type") != "location":
            continue
        payload = item.get("payload")
        coordinates = payload.get("coordinates") if isinstance(payload, dict) else None
        if isinstance(coordinates, dict):
            return location(coordinates.get("latitude"), coordinates.get("longitude"))
    return None


def _attachments(message: dict[str, Any]) -> list[Attachment]:
    found = []
    for item in message.get("attachments") or []:
        kind, payload = item.get("type"), item.get("payload") or {}
        if kind in ("image", "file") and isinstance(payload.get("url"), str):
            size = str(payload.get("size", ""))
            found.append(
                Attachment(
                    payload["url"],
                    kind,
                    str(payload.get("name", "")),
                    int(size) if size.isdigit() else None,
                )
            )
    return found


# ---------------------------------------------------------------------------- download


class DownloadRefused(Exception):
    """The attachment was not taken; nothing about it was kept."""


class ForeignHost(DownloadRefused):
    """The URL is not on a configured Zalo media host: no request is made (the URL comes from
    the request body, so fetching it would let anyone make the server fetch anything)."""


class TooLarge(DownloadRefused):
    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


def media_host_allowed(url: httpx.URL, allowed_hosts: Collection[str]) -> bool:
    """HTTPS on an allowed host or one of its subdomains; plain HTTP only for 127.0.0.1 listed
    in the allow-list (tests)."""
    host = url.host.lower()
    if url.scheme != "https" and not (url.scheme == "http" and host == "127.0.0.1"):
        return False
    return any(host == h or host.endswith("." + h) for h in (a.lower() for a in allowed_hosts))


async def download(
    client: httpx.AsyncClient, url: str, *, allowed_hosts: Collection[str], max_bytes: int
) -> bytes:
    """The attachment's bytes, read while counting: refused past `max_bytes` whatever the
    Content-Length says (or when it is missing). Redirects are not followed."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise ForeignHost(f"not a URL: {url[:100]}") from error
    if not media_host_allowed(parsed, allowed_hosts):
        raise ForeignHost(f"host {parsed.host!r} is not a Zalo media host")
    try:
        async with client.stream("GET", parsed, follow_redirects=False) as response:
            if response.status_code != 200:
                raise DownloadRefused(f"media host answered {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise TooLarge(max_bytes)
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(max_bytes)
                chunks.append(chunk)
    except httpx.HTTPError as error:
        raise DownloadRefused(f"{type(error).__name__}: {error}") from error
    return b"".join(chunks)


# ---------------------------------------------------------------------------- tokens (OAuth v4)


class TokenBroken(Exception):
    """No usable token: the OA admin must connect the app again (`hcc zalo connect`)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ZaloTokens:
    """The OA's access token, refreshed before it expires and when Zalo refuses it, by one
    process at a time (the row lock of `storage.zalo.lock_token`): a refresh token is single-use,
    and the new pair is committed before anyone uses it."""

    def __init__(
        self,
        engine: Engine,
        client: httpx.Client,
        *,
        oauth_base: str,
        app_id: str,
        app_secret: str,
        oa_id: str,
        margin: timedelta = timedelta(minutes=10),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.engine, self.client = engine, client
        self.oauth_base = oauth_base.rstrip("/")
        self.app_id, self.app_secret, self.oa_id = app_id, app_secret, oa_id
        self.margin, self.clock = margin, clock
        self._cached: StoredToken | None = None

    def verifier(self, state: str) -> str:
        """The PKCE verifier of a consent request (43 characters), derived from its `state` with
        the app secret: the callback recomputes it, so nothing is stored between the two."""
        mac = hmac.new(self.app_secret.encode(), state.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()[:43]

    def consent_url(self, redirect_uri: str, state: str) -> tuple[str, str]:
        """The link the OA admin opens to grant the app access, and its PKCE verifier."""
        verifier = self.verifier(state)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = urlencode(
            {
                "app_id": self.app_id,
                "redirect_uri": redirect_uri,
                "code_challenge": challenge.rstrip(b"=").decode(),
                "state": state,
            }
        )
        return f"{self.oauth_base}/v4/oa/permission?{query}", verifier

    def exchange_code(self, code: str, verifier: str) -> None:
        """The callback's code for the first pair (stored; a reconnect replaces a broken one)."""
        answer = self._oauth(
            {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
        )
        if "access_token" not in answer:
            raise TokenBroken(f"zalo refused the code: {_oauth_reason(answer)}")
        with session_scope(self.engine) as session:
            self._save(session, answer)

    def store_pair(self, access_token: str, refresh_token: str, expires_in: int) -> None:
        """A pair obtained elsewhere (`hcc zalo token`)."""
        with session_scope(self.engine) as session:
            self._save(
                session,
                {
                    "access_token": access_token,
                    "refresh_token": refresh_token,
                    "expires_in": expires_in,
                },
            )

    def cached(self) -> str | None:
        """The token this process holds, if still valid for `margin` more: no I/O."""
        if self._cached is not None and self._cached.valid_at(self.clock(), self.margin):
            return self._cached.access_token
        return None

    def access_token(self) -> str:
        """A token valid for at least `margin` more, refreshed first if needed."""
        now = self.clock()
        if self._cached is not None and self._cached.valid_at(now, self.margin):
            return self._cached.access_token
        with session_scope(self.engine) as session:
            stored = get_token(session, self.oa_id)
        if stored is None:
            raise TokenBroken("the Official Account is not connected")
        if stored.valid_at(now, self.margin):
            self._cached = stored
            return stored.access_token
        return self.refresh(stored.access_token)

    def refresh(self, stale_token: str) -> str:
        """A new token in place of `stale_token` — unless another process already replaced it,
        then that one. Zalo's answer is committed before the token is handed out."""
        self._cached = None
        refused: str | None = None
        with session_scope(self.engine) as session:
            stored = lock_token(session, self.oa_id)
            if stored is None:
                raise TokenBroken("the Official Account is not connected")
            if stored.broken_reason is not None:
                raise TokenBroken(stored.broken_reason)
            if stored.access_token != stale_token and stored.valid_at(self.clock(), self.margin):
                fresh = stored
            else:
                answer = self._oauth(
                    {"grant_type": "refresh_token", "refresh_token": stored.refresh_token}
                )
                if "access_token" in answer:
                    fresh = self._save(session, answer)
                else:
                    refused = _oauth_reason(answer)
                    mark_broken(session, self.oa_id, f"zalo refused the refresh token: {refused}")
        if refused is not None:
            log.error("zalo refused the refresh token (%s): reconnect the OA", refused)
            raise TokenBroken(refused)
        self._cached = fresh
        return fresh.access_token

    def _oauth(self, form: dict[str, str]) -> dict[str, Any]:
        try:
            response = self.client.post(
                f"{self.oauth_base}/v4/oa/access_token",
                data={"app_id": self.app_id, **form},
                headers={"secret_key": self.app_secret},
            )
            answer = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise TryLater(f"zalo oauth: {type(error).__name__}: {error}") from error
        if response.status_code >= 500 or not isinstance(answer, dict):
            raise TryLater(f"zalo oauth answered {response.status_code}")
        return answer

    def _save(self, session: Any, answer: Mapping[str, Any]) -> StoredToken:
        now = self.clock()
        expires_at = now + timedelta(seconds=int(answer.get("expires_in", 0)))
        save_tokens(
            session,
            oa_id=self.oa_id,
            access_token=str(answer["access_token"]),
            refresh_token=str(answer["refresh_token"]),
            expires_at=expires_at,
            now=now,
        )
        return StoredToken(
            self.oa_id,
            str(answer["access_token"]),
            str(answer["refresh_token"]),
            expires_at,
            now,
            None,
        )


def _oauth_reason(answer: Mapping[str, Any]) -> str:
    return f"{answer.get('error')}: {answer.get('error_description') or answer.get('error_name')}"


# ---------------------------------------------------------------------------- choices, a page each


def choices_page(reply: Reply, start: int = 0, lang: str = "vi") -> Reply:
    """The reply as one Zalo message can carry it (5 buttons at most): all its choices when they
    fit; else 4 of them from `start`, and a "more" button whose tap brings the next ones
    (`more_choices`). A page after the first is its choices under "Lựa chọn khác (2/3):"."""
    buttons = [button for row in reply.buttons for button in row]
    if len(buttons) <= MAX_BUTTONS:
        return reply
    starts = _page_starts(len(buttons))
    index = starts.index(start)
    end = starts[index + 1] if index + 1 < len(starts) else len(buttons)
    shown = buttons[start:end]
    if index + 1 < len(starts):
        label = render("zalo.more_button", lang, page=index + 2, pages=len(starts))
        shown.append(Button(label, f"{PAGE}{end}:{_digest(buttons)}"))
    rows = tuple((button,) for button in shown)
    if index == 0:
        return replace(reply, buttons=rows)
    return Reply(render("zalo.more_choices", lang, page=index + 1, pages=len(starts)), rows)


def more_choices(replies: list[Reply], start: int, digest: str, lang: str = "vi") -> list[Reply]:
    """After "more" was pressed (the dialogue asked its current step's question again): the page
    from `start` of that question's choices. When the step has moved on since (or the payload is
    not ours), its question as it is, from its first page."""
    for reply in replies:
        buttons = [button for row in reply.buttons for button in row]
        pages = _page_starts(len(buttons))
        if len(pages) > 1 and start in pages[1:] and _digest(buttons) == digest:
            return [choices_page(reply, start, lang)]
    return replies


def _page_starts(count: int) -> list[int]:
    """Where each page begins: 4 choices and "more" a page, the last page up to 5 choices."""
    starts = [0]
    while count - starts[-1] > MAX_BUTTONS:
        starts.append(starts[-1] + CHOICES_PER_PAGE)
    return starts


def _digest(buttons: Sequence[Button]) -> str:
    """Names a list of choices in a "more" payload: the next page is shown only of the list the
    citizen saw, not of another the step shows by then."""
    return hashlib.sha256("\n".join(b.data for b in buttons).encode()).hexdigest()[:8]


# ---------------------------------------------------------------------------- sender


class ReplyConnections:
    """The web process's connections to Zalo's API for the replies of its webhook turns, sent
    on its event loop: at most `limit` requests at once over kept-alive HTTP/1.1 connections,
    and in a burst a reply waits its turn for one (as it waited for a worker thread before)
    rather than failing over to the dispatcher. aiohttp, not httpx's async client: per request
    it cost this process 0.25–0.5 ms of CPU against 1.6–3.4 ms for `httpx.AsyncClient` and
    1.0 ms for the sync `httpx.Client` (docs/benchmarks.md). Opened on first use, on the loop."""

    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # Idle connections are dropped before the server's idle timeout (uvicorn's 5 s,
                # common proxies' 60 s) can close them under a request, even when the loop
                # was too busy to read the server's close (aiohttp checks the age on reuse).
                connector=aiohttp.TCPConnector(limit=self.limit, keepalive_timeout=4.0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=10.0),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


OA_TOKEN_ERRORS = frozenset({-216, -220})
BUSINESS_TOKEN_ERRORS = frozenset({-124})
NOT_REACHABLE = frozenset({-213, -230})  # unfollowed; no interaction in the last 7 days
TEMPLATE_NOT_APPROVED = -131  # disabled or not (yet) approved: the start-up check says so too


class ZaloSender:
    """`Reply`s to a follower through the OA's consultation messages (/v3.0/oa/message/cs),
    and status notices by phone as template messages (`send_template`).

    Buttons become `oa.query.hide` buttons whose payload is `BUTTON_PREFIX` + the button's data
    (a tap comes back as that text). Zalo takes 5 buttons per message: a reply with more choices
    is one message with 4 of them and "Xem thêm", which brings the next ones (`choices_page`),
    so every choice stays a button and a reply stays one request.
    Errors come with HTTP 200: a refused token is refreshed once and the call retried once."""

    def __init__(
        self,
        client: httpx.Client,
        api_base: str,
        business_api_base: str,
        tokens: ZaloTokens,
        throttle: Throttle,
        *,
        per_minute: float = 4000.0,
        lang: str = "vi",
        button_template_type: str | None = None,
        contact_image_url: str | None = None,
        templates: Mapping[str, TemplateMapping] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.client, self.tokens, self.throttle = client, tokens, throttle
        self.templates = dict(templates or {})  # notice key → template (data/zalo/templates.toml)
        self.api_base, self.business_api_base = api_base.rstrip("/"), business_api_base.rstrip("/")
        self.per_minute, self.lang, self.clock = per_minute, lang, clock
        self.button_template_type, self.contact_image_url = button_template_type, contact_image_url

    def send(self, recipient: str, reply: Reply) -> str | None:
        """The reply as consultation messages; the id of the last one (receipts name it)."""
        sent: list[str] = []
        if reply.image_png is not None:
            sent.append(self._send_image(recipient, reply.image_png))
        sent.extend(self._message(recipient, message) for message in self._messages(reply))
        return sent[-1] if sent and sent[-1] else None

    async def send_async(
        self, connections: ReplyConnections, recipient: str, reply: Reply
    ) -> str | None:
        """`send` on the event loop, over the process's kept-alive `connections`, for a reply
        without an image (its re-encode and upload stay in `send`, in a thread): the same
        messages, the same errors, no thread hop. What may block — a shared throttle in Redis,
        a token read or refresh from the database — still runs in a thread, when needed."""
        assert reply.image_png is None, "an image goes through send()"
        sent = [
            await self._message_async(connections, recipient, message)
            for message in self._messages(reply)
        ]
        return sent[-1] if sent and sent[-1] else None

    def _messages(self, reply: Reply) -> list[dict[str, Any]]:
        """The reply's text as consultation messages (its choices on the last), then the
        request for the citizen's phone if it asks for one."""
        reply = choices_page(reply, 0, self.lang)
        buttons = [button for row in reply.buttons for button in row]
        chunks = split_text(reply.text, TEXT_LIMIT)
        if buttons and not chunks:  # Zalo wants a text with buttons
            chunks = [render("zalo.choices", self.lang)]
        messages = [
            self._text(chunk, buttons if index == len(chunks) - 1 else [])
            for index, chunk in enumerate(chunks)
        ]
        if reply.ask_contact:
            messages.append(self._contact_request())
        return messages

    def unreachable_reason(self, contact: Contact | None, now: datetime) -> str | None:
        """A consultation message needs an interaction in the last 7 days and a follower: a push
        outside that goes straight by template message or SMS instead of failing with -230."""
        if chat_window_open(contact, now):
            return None
        if contact is not None and contact.unreachable_at is not None:
            return f"unfollowed the Official Account at {contact.unreachable_at:%Y-%m-%d %H:%M}"
        if contact is None or contact.last_seen_at is None:
            return "no interaction known"
        return f"outside the 7-day window (last interaction {contact.last_seen_at:%Y-%m-%d})"

    def fallback(self, template: str) -> str:
        return off_chat_channel(template, self.templates)

    def _text(self, text: str, buttons: Sequence[Button]) -> dict[str, Any]:
        if not buttons:
            return {"text": text}
        payload: dict[str, Any] = {
            "buttons": [
                {"title": b.label, "type": "oa.query.hide", "payload": BUTTON_PREFIX + b.data}
                for b in buttons
            ]
        }
        if self.button_template_type:
            payload["template_type"] = self.button_template_type
        return {"text": text, "attachment": {"type": "template", "payload": payload}}

    def _contact_request(self) -> dict[str, Any]:
        element = {
            "title": render("zalo.contact_title", self.lang),
            "subtitle": render("zalo.contact_subtitle", self.lang),
        }
        if self.contact_image_url:
            element["image_url"] = self.contact_image_url
        payload = {"template_type": "request_user_info", "elements": [element]}
        return {"attachment": {"type": "template", "payload": payload}}

    def _send_image(self, recipient: str, png: bytes) -> str:
        image, name, mime = png, "image.png", "image/png"
        if len(image) > IMAGE_LIMIT:
            image, name, mime = _jpeg_within(png, IMAGE_LIMIT), "image.jpg", "image/jpeg"
        data = self._call(
            f"{self.api_base}/v2.0/oa/upload/image", files={"file": (name, image, mime)}
        )
        element = {"media_type": "image", "attachment_id": data["attachment_id"]}
        payload = {"template_type": "media", "elements": [element]}
        return self._message(recipient, {"attachment": {"type": "template", "payload": payload}})

    def send_file(self, recipient: str, name: str, content: bytes) -> None:
        """A document (the receipt as PDF): uploaded, then sent by its token."""
        data = self._call(
            f"{self.api_base}/v2.0/oa/upload/file",
            files={"file": (name, content, "application/pdf")},
        )
        self._message(
            recipient, {"attachment": {"type": "file", "payload": {"token": data["token"]}}}
        )

    def _message(self, recipient: str, message: dict[str, Any]) -> str:
        body = {"recipient": {"user_id": recipient}, "message": message}
        data = self._call(f"{self.api_base}/v3.0/oa/message/cs", json_body=body)
        return str(data.get("message_id", ""))

    async def _message_async(
        self, connections: ReplyConnections, recipient: str, message: dict[str, Any]
    ) -> str:
        body = json.dumps({"recipient": {"user_id": recipient}, "message": message}).encode()
        url = f"{self.api_base}/v3.0/oa/message/cs"
        await self._reserve_async()
        cached = self.tokens.cached()
        token = cached if cached is not None else await anyio.to_thread.run_sync(self._access_token)
        for attempt in (1, 2):
            headers = {"access_token": token, "Content-Type": "application/json"}
            try:
                async with connections.session().post(url, data=body, headers=headers) as answer:
                    status, content = answer.status, await answer.read()
            except (aiohttp.ClientError, TimeoutError) as error:
                raise TryLater(f"zalo: {type(error).__name__}: {error}") from error
            data = self._data(status, content, attempt, OA_TOKEN_ERRORS, business=False)
            if data is not None:
                return str(data.get("message_id", ""))
            token = await anyio.to_thread.run_sync(self._refreshed, token)
        raise AssertionError("unreachable")

    async def _reserve_async(self) -> None:
        """`_call`'s sending slot, from the event loop: an in-process throttle is asked here
        (a lock and a dict), a shared one (Redis) in a thread."""
        if self.per_minute <= 0:
            return
        if isinstance(self.throttle, MemoryThrottle):
            wait = self._reserve()
        else:
            wait = await anyio.to_thread.run_sync(self._reserve)
        if wait > 0:
            await asyncio.sleep(wait)

    def profile(self, user_id: str) -> dict[str, Any]:
        """The follower's display name, follow state and shared info (user/detail)."""
        query = {"data": json.dumps({"user_id": user_id})}
        return self._call(f"{self.api_base}/v3.0/oa/user/detail", params=query, method="GET")

    def send_template(
        self, phone: str, template_id: str, template_data: dict[str, str], tracking_id: str
    ) -> str:
        """A template message (ZNS) by phone; its `msg_id`. Delivery comes back on the webhook
        as `user_received_message` with `tracking_id` (see `tracking_id_for`)."""
        normalized = normalize_phone(phone)
        if normalized is None:
            raise Rejected(f"zalo template: not a Vietnamese mobile number: {phone!r}")
        body = {
            "phone": normalized.removeprefix("+"),
            "template_id": template_id,
            "template_data": template_data,
            "tracking_id": tracking_id,
        }
        data = self._call(
            f"{self.business_api_base}/message/template", json_body=body, business=True
        )
        return str(data.get("msg_id", ""))

    def template_info(self, template_id: str) -> DeclaredTemplate:
        data = self._call(
            f"{self.business_api_base}/template/info/v2",
            params={"template_id": template_id},
            method="GET",
            business=True,
        )
        params = data.get("listParams") or []
        return DeclaredTemplate(
            template_id,
            str(data.get("status", "")),
            tuple(str(p["name"]) for p in params),
            frozenset(str(p["name"]) for p in params if p.get("require")),
        )

    def _call(
        self,
        url: str,
        *,
        json_body: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        method: str = "POST",
        business: bool = False,
    ) -> dict[str, Any]:
        wait = self._reserve() if self.per_minute > 0 else 0.0
        if wait > 0:
            time.sleep(wait)
        token = self._access_token()
        token_errors = BUSINESS_TOKEN_ERRORS if business else OA_TOKEN_ERRORS
        for attempt in (1, 2):
            try:
                response = self.client.request(
                    method,
                    url,
                    json=json_body,
                    files=files,
                    params=params,
                    headers={"access_token": token},
                )
            except httpx.HTTPError as error:
                raise TryLater(f"zalo: {type(error).__name__}: {error}") from error
            data = self._data(
                response.status_code, response.content, attempt, token_errors, business
            )
            if data is not None:
                return data
            token = self._refreshed(token)
        raise AssertionError("unreachable")

    def _reserve(self) -> float:
        """The wait for the OA's next sending slot; TryLater when it is too far to wait for."""
        wait = self.throttle.reserve("zalo:app", 60.0 / self.per_minute)
        if wait > MAX_INLINE_WAIT:
            raise TryLater("zalo: over the sending rate", retry_after=wait)
        return wait

    def _access_token(self) -> str:
        try:
            return self.tokens.access_token()
        except TokenBroken as error:  # nothing goes out on Zalo until the admin reconnects
            raise Unreachable(f"zalo token broken: {error}") from error

    def _refreshed(self, token: str) -> str:
        try:
            return self.tokens.refresh(token)
        except TokenBroken as error:
            raise Unreachable(f"zalo token broken: {error}") from error

    def _data(
        self,
        status: int,
        content: bytes,
        attempt: int,
        token_errors: frozenset[int],
        business: bool,
    ) -> dict[str, Any] | None:
        """The answer's `data`; None when the token was refused on a first attempt (refresh it
        and try once more). Zalo's errors come with HTTP 200 and are raised as ours."""
        try:
            answer = json.loads(content) if status < 500 else None
        except ValueError as error:
            raise TryLater(f"zalo: {type(error).__name__}: {error}") from error
        if not isinstance(answer, dict):
            raise TryLater(f"zalo answered HTTP {status}")
        code = int(answer.get("error", 0))
        if code == 0:
            data = answer.get("data")
            return data if isinstance(data, dict) else {}
        if code in token_errors and attempt == 1:
            return None
        raise self._error(code, str(answer.get("message", "")), business)

    def _error(self, code: int, message: str, business: bool) -> Exception:
        detail = f"zalo {code}: {message}"
        if code == -32:
            return TryLater(detail)  # no wait is given: the outbox backs off
        if code in NOT_REACHABLE and not business:
            return Unreachable(detail)
        if business and code == TEMPLATE_NOT_APPROVED:  # the notice still goes, by SMS
            return Unreachable(detail)
        if business and code == -133:  # no template messages 22:00–06:00
            return TryLater(detail, retry_after=_seconds_until(self.clock(), hour=6))
        if business and code == -144:  # the day's quota: tomorrow
            return TryLater(detail, retry_after=_seconds_until(self.clock(), hour=0))
        return Rejected(detail)


def _seconds_until(now: datetime, *, hour: int) -> float:
    local = now.astimezone(VN_TZ)
    target = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if target <= local:
        target += timedelta(days=1)
    return (target - local).total_seconds()


def _jpeg_within(png: bytes, limit: int) -> bytes:
    """The image as a JPEG under `limit` bytes: lower quality first, then smaller."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    while True:
        for quality in (85, 70, 55):
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality)
            if buffer.tell() <= limit:
                return buffer.getvalue()
        image = image.resize((max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)))


class ZaloTemplateSender:
    """Status notices as the approved template message configured for them, by the citizen's
    phone (the outbox row of channel "zalo_template", recipient the phone). The row's key is
    its `tracking_id`, so a redelivered row is the same message to Zalo and the receipt finds
    it; the answer's `msg_id` is kept as well."""

    def __init__(self, zalo: ZaloSender) -> None:
        self.zalo = zalo

    def send_notice(self, message: Claimed) -> str | None:
        mapping = self.zalo.templates.get(message.template)
        if mapping is None:  # unmapped since the reroute: SMS after all
            raise Unreachable(f"zalo template: none configured for {message.template}")
        data = template_data(mapping, message.values)
        tracking_id = tracking_id_for(message.idempotency_key)
        sent = self.zalo.send_template(message.recipient, mapping.template_id, data, tracking_id)
        return sent or None

    def send(self, recipient: str, reply: Reply) -> str | None:
        raise Rejected("zalo template: only outbox notices can go as template messages")


def check_templates(sender: ZaloSender, mappings: Mapping[str, TemplateMapping]) -> list[str]:
    """Start-up check of data/zalo/templates.toml against what Zalo declares for each template:
    the problems found (empty: every configured template can be sent as mapped)."""
    problems: list[str] = []
    for mapping in mappings.values():
        try:
            declared = sender.template_info(mapping.template_id)
        except (Rejected, TryLater, Unreachable) as error:
            problems.append(f"{mapping.notice} (template {mapping.template_id}): {error}")
            continue
        problems.extend(check_declared(mapping, declared))
    return problems


def check_templates_file(sender: ZaloSender, path: Path) -> list[str]:
    """The start-up check of the templates file: each problem logged and returned (a file that
    does not parse is one problem; nothing is sent by template until it is fixed)."""
    try:
        mappings = load_templates(path)
    except (TemplateConfigError, ValueError) as error:
        problems = [str(error)]
    else:
        problems = check_templates(sender, mappings)
    for problem in problems:
        log.error("zalo template message: %s", problem)
    return problems
