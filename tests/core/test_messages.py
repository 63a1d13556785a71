"""The message catalog: every sentence in both languages, with the same placeholders."""

from __future__ import annotations

import string
from datetime import date

from core.messages import load_messages, render, strip_diacritics


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
