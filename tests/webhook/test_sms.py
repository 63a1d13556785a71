"""SMS status lookup through POST /webhook/sms, as the short-code gateway calls it."""

from __future__ import annotations

import hashlib
import hmac
import json
from itertools import count

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import Session

from core.sms import gsm_length, to_gsm7
from storage.models import InboundEvent
from tests.webhook.conftest import submitted_code

SECRET = "sms-test-secret"
_ids = count(1)


@pytest.fixture
def code(client: TestClient) -> str:
    return submitted_code(client.app.state.runtime, "khai-sinh")  # type: ignore[attr-defined]


def send(
    client: TestClient, text: str, *, sms_id: str | None = None, secret: str = SECRET
) -> tuple[int, dict]:
    body = json.dumps(
        {
            "id": sms_id or f"gw-{next(_ids)}",
            "from": "0912345678",
            "to": "8088",
            "text": text,
            "received_at": "2026-11-23T09:00:00+07:00",
        },
        ensure_ascii=False,
    ).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    response = client.post(
        "/webhook/sms",
        content=body,
        headers={"X-Signature": f"sha256={signature}", "Content-Type": "application/json"},
    )
    return response.status_code, response.json()


def assert_one_gsm7_sms(reply: str) -> None:
    assert gsm_length(reply) <= 160
    assert to_gsm7(reply) == reply  # nothing outside GSM-7, no diacritics


@pytest.mark.parametrize(
    "template",
    [
        "HS {code}",
        "hs {code}",
        "hs{code}",
        "TC {code}",
        "tra cứu {code}",
        "Hồ sơ: {code}",
        "HS {sloppy}",
    ],
)
def test_status_reply_for_every_way_people_write_it(
    client: TestClient, code: str, template: str
) -> None:
    sloppy = code.lower().replace(".", " ").replace("-0001", "-1")
    status, body = send(client, template.format(code=code, sloppy=sloppy))
    assert status == 200
    reply = body["reply"]
    assert code in reply
    assert "Da nop, cho can bo kiem tra" in reply
    assert_one_gsm7_sms(reply)


@pytest.mark.parametrize("text", ["xin chao", "HS", "HS 123", "", "ABC 000.00.10.H53-261123-0001"])
def test_bad_syntax_gets_the_usage_line(client: TestClient, text: str) -> None:
    status, body = send(client, text)
    assert status == 200
    assert body["reply"].startswith("Tra cuu ho so: soan HS")
    assert_one_gsm7_sms(body["reply"])


def test_unknown_code_says_so(client: TestClient, code: str) -> None:
    _, body = send(client, "HS " + code.replace("0001", "0999"))
    assert body["reply"].startswith("Khong tim thay ho so")
    assert_one_gsm7_sms(body["reply"])


def _events(client: TestClient) -> int:
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(InboundEvent)).scalar_one())


def test_bad_signature_is_refused_and_stores_nothing(client: TestClient, code: str) -> None:
    status, body = send(client, f"HS {code}", secret="not-the-secret")
    assert status == 401 and body == {"error": "bad_signature"}
    response = client.post("/webhook/sms", content=b'{"id":"x"}')
    assert response.status_code == 401
    assert _events(client) == 0


def test_same_gateway_id_is_answered_once(client: TestClient, code: str) -> None:
    first = send(client, f"HS {code}", sms_id="gw-replayed")
    again = send(client, f"HS {code}", sms_id="gw-replayed")
    assert first[1]["reply"] and code in first[1]["reply"]
    assert again == (200, {"reply": None, "duplicate": True})
    assert _events(client) == 1


def test_malformed_payload_is_refused(client: TestClient) -> None:
    body = b'{"text": "HS 1"}'
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = client.post(
        "/webhook/sms", content=body, headers={"X-Signature": f"sha256={signature}"}
    )
    assert response.status_code == 422
    assert _events(client) == 0
