"""The transport to the province's one-stop information system: one interface (`OnestopClient`),
two forms chosen per agency — the REST services behind the LGSP with OAuth2 client credentials
(`RestOnestop`), and the national sync adapter's session login (`SessionOnestop`).

What the items contain is `core.onestop`'s business; this module only carries them. Failures are
the outbox's words: the system down, slow, overloaded or refusing our credentials → `TryLater`
(retried with backoff); an answer with `error_code` ≠ 0 → `Rejected` with the system's own
message (a dead letter the panel shows). Secrets are never logged nor put in an error.
See docs/onestop.md.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from sqlalchemy.engine import Engine

from bots.delivery import DeliveryError, Rejected, TryLater
from core.calendar import WorkingCalendar
from core.catalog import Catalog
from core.dossier import NATIONAL_STATUS_CODE, DossierRuleError, Status
from core.flows import ONESTOP_CREATE, FlowRules
from core.onestop import (
    ClientCredentials,
    Connection,
    Connections,
    OnestopConfigError,
    OnestopError,
    SessionLogin,
    dossier_item,
    progress_item,
    read_lookup,
)
from storage.db import session_scope
from storage.models import DocumentFile, Dossier
from storage.onestop import (
    apply_report,
    dossier_snapshot,
    earlier_unsent,
    forwarded_open_dossiers,
    progress_of,
    store_official_code,
)
from storage.outbox import Claimed

log = logging.getLogger(__name__)

RETRY_AFTER_LIMIT = 86400.0  # a Retry-After beyond a day is not believed


class OnestopClient(Protocol):
    def send_dossier(self, item: dict[str, Any], unit: str, updating: bool) -> str | None:
        """Create (or update) a dossier; the system's official code when its answer gives one
        other than the code sent."""
        ...

    def send_progress(self, items: list[dict[str, Any]]) -> None:
        """Processing steps, in order."""
        ...

    def lookup(self, code: str) -> dict[str, Any] | None:
        """The dossier item the system holds under this code, or None when it has none."""
        ...


class OAuthTokens:
    """Bearer tokens by OAuth2 client credentials, cached until shortly before they expire."""

    def __init__(
        self,
        http: httpx.Client,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http, self.token_url, self.client_id = http, token_url, client_id
        self._secret, self.timeout, self.clock = client_secret, timeout, clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._valid_until = 0.0

    def token(self) -> str:
        with self._lock:
            if self._token is None or self.clock() >= self._valid_until:
                self._fetch()
            assert self._token is not None
            return self._token

    def renew(self, refused: str) -> str:
        """A new token after `refused` was answered 401 (unless another thread renewed it)."""
        with self._lock:
            if self._token == refused:
                self._token = None
        return self.token()

    def _fetch(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret,
        }
        try:
            response = self.http.post(self.token_url, data=form, timeout=self.timeout)
        except httpx.HTTPError as error:
            raise TryLater(f"onestop token: {type(error).__name__}: {error}") from error
        _raise_for_overload(response, "onestop token")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if response.status_code != 200 or not isinstance(token, str) or not token:
            reason = answer.get("error", "") if isinstance(answer, dict) else ""
            # Not the message's fault: retried with backoff until an operator fixes the client.
            raise TryLater(f"onestop token refused (HTTP {response.status_code}) {reason}".strip())
        lifetime = _seconds(answer.get("expires_in"), default=300.0)
        self._token = token
        self._valid_until = self.clock() + lifetime - min(60.0, lifetime / 10)
        log.info("onestop: new token for client %s, valid %d s", self.client_id, lifetime)


class RestOnestop:
    """The REST form: `POST {base}/DongBoHoSoMC?MaDinhDanhDV=..&isUpdating=..`,
    `{base}/CapNhatTienDoHoSoMC`, `{base}/TraCuuHoSo`, with a bearer token; a 401 gets one new
    token and one retry."""

    def __init__(
        self,
        http: httpx.Client,
        base_url: str,
        tokens: OAuthTokens,
        *,
        code_field: str = "MaHoSo",
        timeout: float = 10.0,
    ) -> None:
        self.http, self.base_url, self.tokens = http, base_url.rstrip("/"), tokens
        self.code_field, self.timeout = code_field, timeout

    def send_dossier(self, item: dict[str, Any], unit: str, updating: bool) -> str | None:
        query = {"MaDinhDanhDV": unit, "isUpdating": "True" if updating else "False"}
        answer = self._call("DongBoHoSoMC", {"data": [item]}, query)
        return _official_code(answer, item, self.code_field)

    def send_progress(self, items: list[dict[str, Any]]) -> None:
        self._call("CapNhatTienDoHoSoMC", {"data": items})

    def lookup(self, code: str) -> dict[str, Any] | None:
        return _found(self._call("TraCuuHoSo", {"mahoso": code}))

    def _call(
        self, service: str, body: dict[str, Any], query: dict[str, str] | None = None
    ) -> dict[str, Any]:
        token = self.tokens.token()
        for attempt in (1, 2):
            response = _post(
                self.http,
                f"{self.base_url}/{service}",
                service,
                json=body,
                params=query,
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout,
            )
            if response.status_code == 401 and attempt == 1:
                token = self.tokens.renew(token)
                continue
            return _answer(response, service)
        raise AssertionError("unreachable")


class SessionOnestop:
    """The national sync adapter: `POST {adapter}/{auth}` with username and password (header
    `dstcode`) gives a session; every service is `POST {adapter}/{integration}` with
    `{"session", "madonvi", "service", ...}`. An expired session (HTTP 401 ⚠) logs in again once."""

    def __init__(
        self,
        http: httpx.Client,
        login: SessionLogin,
        password: str,
        unit: str,
        *,
        code_field: str = "MaHoSo",
        timeout: float = 10.0,
    ) -> None:
        self.http, self.login, self._password, self.unit = http, login, password, unit
        self.code_field, self.timeout = code_field, timeout
        self._lock = threading.Lock()
        self._session: str | None = None

    def send_dossier(self, item: dict[str, Any], unit: str, updating: bool) -> str | None:
        fields = {"isUpdating": "True" if updating else "False", "data": [item]}
        answer = self._call("DongBoHoSoMC", fields, unit)
        return _official_code(answer, item, self.code_field)

    def send_progress(self, items: list[dict[str, Any]]) -> None:
        self._call("CapNhatTienDoHoSoMC", {"data": items}, self.unit)

    def lookup(self, code: str) -> dict[str, Any] | None:
        return _found(self._call("TraCuuHoSo", {"mahoso": code}, self.unit))

    def _url(self, path: str) -> str:
        return f"{self.login.adapter_url}/{path}"

    def _session_id(self, refused: str | None = None) -> str:
        with self._lock:
            if self._session is None or self._session == refused:
                self._session = self._log_in()
            return self._session

    def _log_in(self) -> str:
        body = {"username": self.login.username, "password": self._password}
        response = _post(
            self.http,
            self._url(self.login.auth_path),
            "onestop login",
            json=body,
            headers={"dstcode": self.login.dstcode},
            timeout=self.timeout,
        )
        _raise_for_overload(response, "onestop login")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            answer = {}
        session = answer.get("session")
        if response.status_code != 200 or answer.get("error_code") not in (0, "0") or not session:
            message = _message(answer)
            raise TryLater(f"onestop login refused (HTTP {response.status_code}) {message}".strip())
        log.info("onestop: new adapter session for %s", self.login.username)
        return str(session)

    def _call(self, service: str, fields: dict[str, Any], unit: str) -> dict[str, Any]:
        session = self._session_id()
        for attempt in (1, 2):
            body = {"session": session, "madonvi": unit, "service": service, **fields}
            response = _post(
                self.http,
                self._url(self.login.integration_path),
                service,
                json=body,
                headers={"dstcode": self.login.dstcode},
                timeout=self.timeout,
            )
            if response.status_code == 401 and attempt == 1:
                session = self._session_id(refused=session)
                continue
            return _answer(response, service)
        raise AssertionError("unreachable")


def make_client(
    connection: Connection,
    http: httpx.Client,
    secret: Callable[[str], str | None],
    *,
    timeout: float = 10.0,
) -> OnestopClient:
    """The client of one agency's connection; `secret(NAME)` reads the variables it names."""
    code_field = connection.mapping.name("dossier", "code")
    auth = connection.auth
    if isinstance(auth, ClientCredentials):
        tokens = OAuthTokens(
            http,
            auth.token_url,
            auth.client_id,
            _required(secret, auth.client_secret_env),
            timeout=timeout,
        )
        return RestOnestop(
            http, connection.base_url, tokens, code_field=code_field, timeout=timeout
        )
    password = _required(secret, auth.password_env)
    return SessionOnestop(
        http, auth, password, connection.unit, code_field=code_field, timeout=timeout
    )


def secret_lookup(settings: Any, env_file: str = ".env") -> Callable[[str], str | None]:
    """Secrets by variable name: ONESTOP_CLIENT_SECRET and ONESTOP_CALLBACK_SECRET from the
    settings, any other name from the environment, then the `.env` file."""
    from dotenv import dotenv_values

    known = {
        "ONESTOP_CLIENT_SECRET": settings.onestop_client_secret,
        "ONESTOP_CALLBACK_SECRET": settings.onestop_callback_secret,
    }
    file_values = dotenv_values(env_file) if os.path.exists(env_file) else {}

    def secret(name: str) -> str | None:
        if known.get(name) is not None:
            return str(known[name].get_secret_value()) or None
        return os.environ.get(name) or file_values.get(name) or None

    return secret


def _required(secret: Callable[[str], str | None], name: str) -> str:
    value = secret(name)
    if not value:
        raise OnestopConfigError(f"{name} is not set (the one-stop connection needs it)")
    return value


def _post(http: httpx.Client, url: str, what: str, **request: Any) -> httpx.Response:
    try:
        return http.post(url, **request)
    except httpx.HTTPError as error:  # refused, reset, timed out: the system is down or slow
        raise TryLater(f"{what}: {type(error).__name__}: {error}") from error


def _raise_for_overload(response: httpx.Response, what: str) -> None:
    if response.status_code == 429 or response.status_code >= 500:
        wait = response.headers.get("retry-after", "").strip()
        retry_after = min(float(wait), RETRY_AFTER_LIMIT) if wait.isdigit() else None
        raise TryLater(f"{what}: HTTP {response.status_code}", retry_after=retry_after)


def _answer(response: httpx.Response, service: str) -> dict[str, Any]:
    """The answer of a service call, or the outbox's exception for it."""
    _raise_for_overload(response, f"onestop {service}")
    if response.status_code == 401:
        raise TryLater(f"onestop {service}: our credentials were refused (HTTP 401)")
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        if response.status_code >= 400:
            raise Rejected(f"onestop {service}: HTTP {response.status_code}")
        raise TryLater(f"onestop {service}: the answer is not a JSON object")
    code = answer.get("error_code", 0 if response.status_code < 400 else None)
    if code in (0, "0"):
        return answer
    raise Rejected(f"onestop {service}: error_code {code}: {_message(answer)}".strip())


def _message(answer: dict[str, Any]) -> str:
    for key in ("message", "error_message", "msg", "error"):
        if isinstance(answer.get(key), str) and answer[key]:
            return str(answer[key])[:500]
    return ""


def _official_code(answer: dict[str, Any], item: dict[str, Any], code_field: str) -> str | None:
    """The code the system answers with (top level or in `data`), when it is not ours."""
    data = answer.get("data")
    if isinstance(data, list):
        data = data[0] if data else None
    for source in (answer, data if isinstance(data, dict) else {}):
        code = source.get(code_field)
        if isinstance(code, str) and code.strip() and code.strip() != item.get(code_field):
            return code.strip()
    return None


def _found(answer: dict[str, Any]) -> dict[str, Any] | None:
    data = answer.get("data")
    if isinstance(data, list):
        data = data[0] if data else None
    return data if isinstance(data, dict) and data else None


def _seconds(value: Any, *, default: float) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default


# ---------------------------------------------------------------------------- the outbox sender

ORDER_WAIT = 30.0  # seconds a change waits for an earlier one of its dossier to go out first


class OnestopSender:
    """The outbox's sender for `Channel.ONESTOP`: a dossier's create or update (DongBoHoSoMC,
    the full dossier as it is now, files by signed links) and, for an update, the progress
    step of the change (CapNhatTienDoHoSoMC), per agency connection. A dossier's changes go out
    in order: one waits while an earlier one is unsent. An official code in the answer is kept
    and the citizen told once."""

    def __init__(
        self,
        engine: Engine,
        catalog: Catalog,
        connections: Connections,
        client_for: Callable[[Connection], OnestopClient],
        file_url: Callable[[DocumentFile], str],
    ) -> None:
        self.engine, self.catalog, self.connections = engine, catalog, connections
        self.client_for, self.file_url = client_for, file_url
        self._clients: dict[str, OnestopClient] = {}

    def send(self, recipient: str, reply: Any) -> str | None:
        raise Rejected("onestop: only outbox changes go to the one-stop system")

    def send_notice(self, message: Claimed) -> str | None:
        dossier_id = message.dossier_id
        connection = self.connections.get(message.recipient)
        if dossier_id is None:
            raise Rejected("onestop: the change names no dossier")
        if connection is None:
            raise Rejected(f"onestop: agency {message.recipient} has no one-stop connection")
        with session_scope(self.engine) as session:
            waiting = earlier_unsent(session, message.id, dossier_id)
            if waiting is not None:
                raise TryLater(f"onestop: an earlier change is {waiting}", retry_after=ORDER_WAIT)
            dossier = session.get(Dossier, dossier_id)
            if dossier is None:
                raise Rejected("onestop: the dossier no longer exists")
            snapshot = dossier_snapshot(session, dossier, self.catalog, self.file_url)
            creating = message.template == ONESTOP_CREATE
            step = None if creating else progress_of(session, dossier, message.values)
        mapping = connection.mapping
        client = self._client(connection)
        official = client.send_dossier(dossier_item(snapshot, mapping), connection.unit,
                                       updating=not creating)  # fmt: skip
        if step is not None:  # an update carries its progress step; a create has none
            client.send_progress([progress_item(step, mapping)])
        if official and official != snapshot.official_code:
            with session_scope(self.engine) as session:
                store_official_code(session, dossier_id, official, datetime.now(UTC))
        return official

    def _client(self, connection: Connection) -> OnestopClient:
        client = self._clients.get(connection.agency)
        if client is None:
            client = self._clients[connection.agency] = self.client_for(connection)
        return client


# ---------------------------------------------------------------------------- pull mode


@dataclass(frozen=True)
class Comparison:
    """One forwarded dossier as each side sees it (national status codes; None: not found)."""

    code: str
    ours: int
    theirs: int | None


def compare_statuses(
    engine: Engine,
    connections: Connections,
    agencies: set[str],
    client_for: Callable[[Connection], OnestopClient],
) -> list[Comparison]:
    """Each open forwarded dossier's status here and on the one-stop system (TraCuuHoSo)."""
    with session_scope(engine) as session:
        dossiers = [
            (d.agency_code, d.official_code or d.code, d.code, Status(d.status))
            for d in forwarded_open_dossiers(session, agencies)
        ]
    compared = []
    for agency, asked, code, status in dossiers:
        connection = connections.get(agency)
        if connection is None:
            continue
        found = client_for(connection).lookup(asked)
        theirs = read_lookup(found, connection.mapping).status if found is not None else None
        compared.append(Comparison(code, NATIONAL_STATUS_CODE[status], theirs))
    return compared


def pull_statuses(
    engine: Engine,
    catalog: Catalog,
    calendar: WorkingCalendar,
    rules: FlowRules,
    connections: Connections,
    client_for: Callable[[Connection], OnestopClient],
) -> dict[str, str]:
    """Pull mode (`hcc onestop sync`, the worker's periodic job): ask the system for each open
    forwarded dossier and apply what changed, through the state machine; a repeat changes
    nothing. What happened to each dossier that changed or failed, by code."""
    outcome: dict[str, str] = {}
    with session_scope(engine) as session:
        dossiers = [(d.id, d.agency_code, d.official_code or d.code, d.code)
                    for d in forwarded_open_dossiers(session, set(rules.onestop))]  # fmt: skip
    for dossier_id, agency, asked, code in dossiers:
        connection = connections.get(agency)
        if connection is None:
            continue
        try:
            found = client_for(connection).lookup(asked)
            if found is None:
                outcome[code] = "not found on the one-stop system"
                continue
            report = read_lookup(found, connection.mapping)
        except (DeliveryError, OnestopError) as error:
            outcome[code] = f"not read: {error}"
            continue
        try:
            with session_scope(engine) as session:
                dossier = session.get(Dossier, dossier_id)
                assert dossier is not None
                decisions = apply_report(session, dossier, report, catalog=catalog,
                                         calendar=calendar, rules=rules,
                                         at=datetime.now(UTC))  # fmt: skip
        except DossierRuleError as error:
            outcome[code] = f"refused: {error.message('en')}"
            continue
        if decisions:
            outcome[code] = " → ".join(d.after.status.value for d in decisions)
    return outcome
