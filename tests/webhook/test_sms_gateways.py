"""The SMS gateways provinces contract (eSMS.vn short code, Jasmin, Kannel, SMSGate), each as a
fake on loopback sending its own real-shaped requests to our live app and receiving our replies
— in the webhook's answer or through its send API — and status pushes after "DK <code>"."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlmodel import Session

from core.dossier import Action, Actor, Command
from core.sms import gsm_length, to_gsm7
from storage.db import session_scope
from storage.dossiers import apply_command
from storage.models import InboundEvent, OutboxMessage, SmsSubscription
from storage.sms import dossier_id_by_code
from tests.fakes.sms_gateway import FakeEsms, FakeJasmin, FakeKannel, FakeSmsGate
from tests.servers import live_server, wait_until
from tests.webhook.conftest import submitted_code
from webhook.app import create_app
from webhook.runtime import Runtime
from webhook.settings import Settings

PATH_SECRET = "kannel-jasmin-path-secret-0123456789"
ESMS_KEY = "esms-private-key-0123456789"
SMSGATE_KEY = "smsgate-signing-key-0123456789"
PHONE = "84912345678"
USAGE = "Tra cuu ho so: soan HS"
GATEWAYS = ["esms", "jasmin", "kannel", "smsgate"]
KANNEL_GET_URL = "{base}/webhook/sms/kannel/{secret}?from=%p&to=%P&text=%a&id=%I"  # docs/sms.md
_ids = count(1)


@dataclass
class Wired:
    """Our app on loopback wired to one fake gateway; `send` is a citizen's SMS through it."""

    name: str
    fake: Any
    base: str
    runtime: Runtime
    code: str
    send: Callable[..., int]


def _fake(name: str) -> Any:
    match name:
        case "esms":
            return FakeEsms(ESMS_KEY)
        case "jasmin":
            return FakeJasmin("hcc", "jasmin-pw")
        case "kannel":
            return FakeKannel("", "hcc", "kannel-pw")
        case _:
            return FakeSmsGate(SMSGATE_KEY, "sms", "gate-pw")


def _configuration(name: str, fake_url: str) -> dict[str, Any]:
    """The settings an operator writes for this gateway (docs/sms.md)."""
    match name:
        case "esms":
            body = ('{"ApiKey": "esms-api", "SecretKey": "s", "Phone": "{phone}", '
                    '"Content": "{text}", "Brandname": "TTHCC", "SmsType": "2"}')  # fmt: skip
            return {"esms_private_key": SecretStr(ESMS_KEY), "esms_cpid": "CP7039",
                    "sms_gateway_url": fake_url + FakeEsms.SEND_PATH,
                    "sms_gateway_body": body}  # fmt: skip
        case "jasmin":
            return {"jasmin_webhook_secret": SecretStr(PATH_SECRET),
                    "jasmin_send_url": fake_url + "/send", "jasmin_username": "hcc",
                    "jasmin_password": SecretStr("jasmin-pw")}  # fmt: skip
        case "kannel":
            return {"kannel_webhook_secret": SecretStr(PATH_SECRET),
                    "kannel_sendsms_url": fake_url + "/cgi-bin/sendsms",
                    "kannel_username": "hcc",
                    "kannel_password": SecretStr("kannel-pw")}  # fmt: skip
        case _:
            return {"smsgate_signing_key": SecretStr(SMSGATE_KEY), "smsgate_api_url": fake_url,
                    "smsgate_username": "sms",
                    "smsgate_password": SecretStr("gate-pw")}  # fmt: skip


def _sender(name: str, fake: Any, base: str) -> Callable[..., int]:
    """How this gateway delivers one SMS (text, id) to us."""
    match name:
        case "esms":
            return lambda text, sms_id, **kw: fake.mo(f"{base}/webhook/sms/esms", PHONE, text,
                                                      sms_id, **kw)  # fmt: skip
        case "jasmin":
            return lambda text, sms_id, **kw: fake.mo(
                f"{base}/webhook/sms/jasmin/{kw.pop('secret', PATH_SECRET)}", PHONE, text, sms_id,
                **kw)  # fmt: skip
        case "kannel":
            fake.get_url = KANNEL_GET_URL.format(base=base, secret=PATH_SECRET)
            return lambda text, sms_id, **kw: fake.mo("0912345678", text, sms_id, **kw)
        case _:
            return lambda text, sms_id, **kw: fake.mo(f"{base}/webhook/sms/smsgate", "+" + PHONE,
                                                      text, sms_id, **kw)  # fmt: skip


@contextmanager
def wired(settings: Settings, name: str, **extra: Any) -> Iterator[Wired]:
    fake = _fake(name)
    with live_server(fake.app) as fake_url:
        update = {"sms_gateway": name, **_configuration(name, fake_url), **extra}
        app = create_app(settings.model_copy(update=update))
        runtime: Runtime = app.state.runtime
        try:
            with live_server(app) as base:
                code = submitted_code(runtime, "khai-sinh")
                yield Wired(name, fake, base, runtime, code, _sender(name, fake, base))
        finally:
            runtime.engine.dispose()


def _count(runtime: Runtime, table: Any) -> int:
    with Session(runtime.engine) as session:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())


def _texts_arrive(w: Wired, n: int) -> list[str]:
    wait_until(lambda: len(w.fake.texts(PHONE)) >= n, f"{w.name}: {n} SMS never arrived")
    return list(w.fake.texts(PHONE))


def _desk(w: Wired, action: Action) -> None:
    with session_scope(w.runtime.engine) as session:
        dossier_id = dossier_id_by_code(session, w.code)
        assert dossier_id is not None
        apply_command(session, dossier_id, Command(action, Actor.DESK_OFFICER, datetime.now(UTC)),
                      catalog=w.runtime.catalog, calendar=w.runtime.calendar,
                      rules=w.runtime.flow_rules)  # fmt: skip


def assert_one_gsm7_sms(text: str) -> None:
    assert gsm_length(text) <= 160
    assert to_gsm7(text) == text


@pytest.mark.parametrize("name", GATEWAYS)
def test_a_lookup_is_answered_by_sms(settings: Settings, name: str) -> None:
    with wired(settings, name) as w:
        assert w.send(f"HS {w.code}", f"mo-{next(_ids)}") == 200
        [reply] = _texts_arrive(w, 1)
        assert w.code in reply and "Da nop, cho can bo kiem tra" in reply
        assert_one_gsm7_sms(reply)
        # the reply goes back the gateway's way: in the answer, or through its send API
        assert bool(w.fake.through_api) is (name in ("jasmin", "smsgate"))


@pytest.mark.parametrize("name", GATEWAYS)
def test_a_redelivered_sms_is_answered_once(settings: Settings, name: str) -> None:
    with wired(settings, name) as w:
        assert w.send(f"HS {w.code}", "mo-replayed") == 200
        assert w.send(f"HS {w.code}", "mo-replayed") == 200
        _texts_arrive(w, 1)
        time.sleep(0.5)  # a second reply would have arrived by now
        assert len(w.fake.texts(PHONE)) == 1
        assert _count(w.runtime, InboundEvent) == 1


@pytest.mark.parametrize("name", GATEWAYS)
def test_keywords_without_a_code_or_wrong_codes_get_the_usage_line(
    settings: Settings, name: str
) -> None:
    with wired(settings, name) as w:
        texts = ["TC", "HS", "HS 123", "xin chao", "DK", "HUY abc", f"ABC {w.code}"]
        for n, text in enumerate(texts, start=1):
            assert w.send(text, f"mo-usage-{n}-{next(_ids)}") == 200
        replies = _texts_arrive(w, len(texts))
        assert all(reply.startswith(USAGE) for reply in replies), replies
        for reply in replies:
            assert_one_gsm7_sms(reply)
        assert _count(w.runtime, SmsSubscription) == 0


def _refusals(w: Wired) -> list[int]:
    """Requests that are not the gateway's: a wrong key, an unknown secret path, a stale stamp."""
    fake = w.fake
    match w.name:
        case "esms":
            return [w.send(f"HS {w.code}", "bad-1", key="not-the-key")]
        case "jasmin":
            no_secret = f"{w.base}/webhook/sms/jasmin"
            return [w.send(f"HS {w.code}", "bad-1", secret="not-the-secret"),
                    fake.mo(no_secret, PHONE, f"HS {w.code}", "bad-2")]  # fmt: skip
        case "kannel":
            wrong = KANNEL_GET_URL.format(base=w.base, secret="not-the-secret")
            return [w.send(f"HS {w.code}", "bad-1", get_url=wrong)]
        case _:
            return [w.send(f"HS {w.code}", "bad-1", key="not-the-key"),
                    w.send(f"HS {w.code}", "bad-2", timestamp=int(time.time()) - 3600)]  # fmt: skip


@pytest.mark.parametrize("name", GATEWAYS)
def test_a_bad_signature_or_an_unknown_path_is_refused_and_nothing_is_stored(
    settings: Settings, name: str
) -> None:
    with wired(settings, name) as w:
        assert set(_refusals(w)) == {401}
        time.sleep(0.3)
        assert w.fake.received == []
        assert _count(w.runtime, InboundEvent) == 0
        assert _count(w.runtime, OutboxMessage) == 0


def test_another_gateways_path_is_unknown(settings: Settings) -> None:
    with wired(settings, "smsgate") as w:
        fake = FakeKannel(KANNEL_GET_URL.format(base=w.base, secret=PATH_SECRET), "x", "y")
        assert fake.mo(PHONE, f"HS {w.code}", "other-1") == 401
        assert _count(w.runtime, InboundEvent) == 0


def test_a_stale_smsgate_timestamp_is_refused_even_when_signed(settings: Settings) -> None:
    with wired(settings, "smsgate") as w:
        stale = int(time.time()) - 301  # SMSGATE_MAX_AGE_SECONDS is 300
        assert w.send(f"HS {w.code}", "stale-1", timestamp=stale) == 401
        assert w.fake.answers[-1].json() == {"error": "stale_timestamp"}
        assert w.send(f"HS {w.code}", "fresh-1", timestamp=int(time.time()) - 10) == 200
        _texts_arrive(w, 1)


def test_smsgate_events_other_than_received_are_acknowledged_and_ignored(
    settings: Settings,
) -> None:
    with wired(settings, "smsgate") as w:
        assert w.send(f"HS {w.code}", "sent-1", event="sms:sent") == 200
        time.sleep(0.3)
        assert _count(w.runtime, InboundEvent) == 0 and w.fake.received == []


@pytest.mark.parametrize("name", GATEWAYS)
def test_an_8_kb_text_is_refused_before_it_is_read(settings: Settings, name: str) -> None:
    with wired(settings, name) as w:
        assert w.send("HS " + "1" * 8192, "long-1") == 413
        assert w.fake.answers[-1].json()["error"] == "too_large"  # the error layer's answer
        assert _count(w.runtime, InboundEvent) == 0


@pytest.mark.parametrize("how", ["form", "json", "get"])
def test_jasmin_posts_form_or_json_or_gets_and_ucs2_text_is_read(
    settings: Settings, how: str
) -> None:
    with wired(settings, "jasmin") as w:
        assert w.send(f"Tra cứu {w.code}", f"ucs2-{how}", how=how) == 200
        assert w.fake.answers[-1].text == "ACK/Jasmin"
        [reply] = _texts_arrive(w, 1)
        assert w.code in reply


@pytest.mark.parametrize(("allowed", "status"), [("10.9.8.7", 401), ("127.0.0.0/8", 200)])
def test_jasmin_behind_an_ip_allow_list(settings: Settings, allowed: str, status: int) -> None:
    with wired(settings, "jasmin", jasmin_webhook_secret=None, jasmin_allowed_ips=allowed) as w:
        assert w.fake.mo(f"{w.base}/webhook/sms/jasmin", PHONE, f"HS {w.code}", "ip-1") == status


@pytest.mark.parametrize("name", GATEWAYS)
def test_dk_subscribes_the_phone_to_status_pushes_by_sms_and_huy_stops_them(
    settings: Settings, name: str
) -> None:
    with wired(settings, name) as w:
        assert w.send(f"DK {w.code}", f"dk-{next(_ids)}") == 200
        [confirmation] = _texts_arrive(w, 1)
        assert confirmation.startswith(f"Da dang ky nhan tin ho so {w.code}")
        assert w.send(f"dk {w.code}", f"dk-{next(_ids)}") == 200  # twice: still one subscription
        _texts_arrive(w, 2)
        api_before = len(w.fake.through_api)

        _desk(w, Action.ACCEPT)  # the desk accepts the dossier filed at the counter
        pushed = _texts_arrive(w, 3)[-1]
        assert pushed.startswith(f"HS {w.code}: Da tiep nhan. Hen tra: ")  # the public status
        assert_one_gsm7_sms(pushed)
        assert w.fake.through_api[api_before:] == [(w.fake.through_api[-1][0], pushed)]

        assert w.send(f"HUY {w.code}", f"huy-{next(_ids)}") == 200
        total = 4
        assert _texts_arrive(w, total)[-1] == f"Da huy nhan tin ho so {w.code}."
        _desk(w, Action.FORWARD)
        time.sleep(1.5)  # the dispatcher's interval is 1 s: a push would have gone by now
        assert len(w.fake.texts(PHONE)) == total
        assert _count(w.runtime, SmsSubscription) == 0
