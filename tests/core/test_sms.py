"""SMS lookup text: what people send, and replies that always fit one GSM-7 SMS."""

from __future__ import annotations

from datetime import date

import pytest

from core.catalog import Text
from core.dossier import Status
from core.lookup import PublicStatus
from core.sms import (
    SmsAsk,
    gsm_length,
    msisdn,
    parse_lookup_request,
    parse_sms_command,
    status_reply,
    subscribed_reply,
    to_gsm7,
    unsubscribed_reply,
    usage_reply,
)

CODE = "000.00.10.H53-261123-0001"


@pytest.mark.parametrize(
    "text",
    [
        f"HS {CODE}",
        f"hs {CODE.lower()}",
        f"hs{CODE}",
        f"HS{CODE.lower()}",
        f"TC {CODE}",
        f"TRA CUU {CODE}",
        f"Tra cứu {CODE}",
        f"Hồ sơ {CODE}",
        f"  HS   {CODE}  ",
        "HS 000 00 10 H53 261123 1",
        f"HS: {CODE}.",
    ],
)
def test_lookup_requests_people_send(text: str) -> None:
    parsed = parse_lookup_request(text)
    assert parsed is not None and str(parsed) == CODE


@pytest.mark.parametrize("text", ["", "HS", "hello", CODE, "HSX 000", "TC abc"])
def test_not_a_lookup_request(text: str) -> None:
    assert parse_lookup_request(text) is None


@pytest.mark.parametrize("status", list(Status))
def test_status_reply_always_fits_one_sms(status: Status) -> None:
    public = PublicStatus(
        code=CODE,
        procedure=Text("Đăng ký thành lập hộ kinh doanh", "Household business"),
        agency=Text("Trung tâm", "Centre"),
        status=status,
        submitted_on=date(2026, 11, 23),
        appointment_date=date(2026, 11, 26),
    )
    reply = status_reply(public, f"https://dichvucong.tayninh.gov.vn/lookup/{CODE}")
    assert CODE in reply
    assert gsm_length(reply) <= 160
    assert to_gsm7(reply) == reply
    assert reply.isascii()


def test_status_reply_names_the_one_stop_systems_code_once_known() -> None:
    official = "H53.99-261123-000123"
    public = PublicStatus(
        code=CODE,
        procedure=Text("Đăng ký khai sinh", "Birth registration"),
        agency=Text("Trung tâm", "Centre"),
        status=Status.PROCESSING,
        submitted_on=date(2026, 11, 23),
        appointment_date=date(2026, 11, 26),
        official_code=official,
    )
    reply = status_reply(public, f"https://dichvucong.tayninh.gov.vn/lookup/{CODE}")
    assert reply.startswith(f"HS {official}:") and gsm_length(reply) <= 160


def test_to_gsm7_replaces_what_gsm_cannot_carry() -> None:
    assert to_gsm7("“Đã” – xong…") == '"Da" - xong...'
    assert to_gsm7("😀") == "?"


@pytest.mark.parametrize(
    ("text", "ask"),
    [
        (f"HS {CODE}", SmsAsk.LOOKUP),
        (f"tc {CODE}", SmsAsk.LOOKUP),
        (f"DK {CODE}", SmsAsk.SUBSCRIBE),
        (f"dk{CODE.lower()}", SmsAsk.SUBSCRIBE),
        (f"Đăng ký {CODE}", SmsAsk.SUBSCRIBE),
        (f"DANGKY {CODE}", SmsAsk.SUBSCRIBE),
        (f"HUY {CODE}", SmsAsk.UNSUBSCRIBE),
        (f"Hủy: {CODE}", SmsAsk.UNSUBSCRIBE),
        ("huy 000 00 10 H53 261123 1", SmsAsk.UNSUBSCRIBE),
    ],
)
def test_what_an_sms_asks(text: str, ask: SmsAsk) -> None:
    command = parse_sms_command(text)
    assert command is not None and command.ask is ask and str(command.code) == CODE


@pytest.mark.parametrize("text", ["DK", "HUY", "DK abc", "HUY 123", "DKX 000", "xin chao", "TC"])
def test_a_keyword_without_a_code_asks_nothing(text: str) -> None:
    assert parse_sms_command(text) is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [("+84912345678", "84912345678"), ("0912345678", "84912345678"),
     ("84912345678", "84912345678"), ("091 234 5678", "84912345678"),
     ("abc", None), ("12", None), ("", None)],
)  # fmt: skip
def test_phone_numbers_in_one_form(given: str, expected: str | None) -> None:
    assert msisdn(given) == expected


def test_subscription_replies_and_the_usage_line_fit_one_sms() -> None:
    for reply in (subscribed_reply(CODE), unsubscribed_reply(CODE), usage_reply()):
        assert gsm_length(reply) <= 160 and to_gsm7(reply) == reply
    assert "HUY " + CODE in subscribed_reply(CODE)  # it says how to stop
    assert "DK" in usage_reply() and "HUY" in usage_reply()
