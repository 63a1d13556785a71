"""The message catalog: every sentence in both languages, with the same placeholders."""

from __future__ import annotations

import re
import string
from datetime import date

import pytest

from core.catalog import Text
from core.dossier import Action, DossierRuleError, Status
from core.lookup import PublicStatus
from core.messages import load_messages, render, strip_diacritics
from core.sms import status_reply


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_message_has_vietnamese_and_english_with_the_same_placeholders() -> None:
    messages = load_messages()
    assert messages
    for key, texts in messages.items():
        assert texts.get("vi"), f"{key} lacks Vietnamese"
        assert texts.get("en"), f"{key} lacks English"
        assert _placeholders(texts["vi"]) == _placeholders(texts["en"]), key


def test_render_formats_dates_the_vietnamese_way_and_falls_back_to_vietnamese() -> None:
    assert render("sms.appointment", "vi", date=date(2026, 12, 3)) == "Hen tra: 03/12/2026."
    assert render("status.accepted", "fr") == "Đã tiếp nhận"


def test_strip_diacritics_handles_d_with_stroke() -> None:
    assert strip_diacritics("Đã tiếp nhận hồ sơ đăng ký") == "Da tiep nhan ho so dang ky"


DOUBLED = re.compile(r"\b(\w+(?: \w+)?) \1\b", re.IGNORECASE)


@pytest.mark.parametrize("action", list(Action))
def test_no_rule_refusal_says_a_word_twice(action: Action) -> None:
    # "Bạn không có quyền rút hồ sơ hồ sơ này" was how a refused withdrawal read.
    for reason in ("transition_not_allowed", "actor_not_allowed", "reason_required"):
        text = DossierRuleError(reason, action=render(f"action.{action.value}"),
                                status=render("status.accepted")).message("vi")  # fmt: skip
        assert not DOUBLED.search(text), text


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.DRAFT])
def test_an_sms_status_reply_does_not_repeat_itself(status: Status) -> None:
    # "Da nop, cho can bo kiem tra. Cho can bo kiem tra." was the reply for a submitted dossier.
    public = PublicStatus(
        code="000.00.10.H53-261207-0001",
        procedure=Text("Đăng ký khai sinh", "Birth registration"),
        agency=Text("Trung tâm", "Centre"),
        status=status,
        submitted_on=date(2026, 12, 7),
        appointment_date=None,
    )
    reply = status_reply(public, "https://hcc.example.vn/lookup/x").lower()
    words = re.findall(r"[a-z]+", reply)
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    assert len(trigrams) == len(set(trigrams)), reply
