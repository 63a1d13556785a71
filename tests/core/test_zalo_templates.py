"""The notice → Zalo template mapping is data, validated when loaded and against what Zalo
declares for each template."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.channels import Channel, Contact
from core.zalo_templates import (
    CHAT_WINDOW,
    DeclaredTemplate,
    TemplateConfigError,
    TemplateMapping,
    chat_window_open,
    check_declared,
    load_templates,
    off_chat_channel,
    parse_templates,
    template_data,
    tracking_id_for,
)
from webhook.settings import REPO_ROOT

SHIPPED = REPO_ROOT / "data" / "zalo" / "templates.toml"
EXAMPLE = """
[templates."notice.accepted"]
template_id = "24680"
[templates."notice.accepted".params]
ma_ho_so = "code"
ten_thu_tuc = "procedure"
ngay_hen_tra = "appointment_date"
le_phi = "fee"

[templates."notice.supplement_requested"]
template_id = "24681"
params = { ma_ho_so = "code", giay_to = "missing" }
"""


def test_the_shipped_file_configures_no_template_and_its_documented_example_is_valid() -> None:
    assert load_templates(SHIPPED) == {}
    documented = [
        line.removeprefix("#   ")
        for line in SHIPPED.read_text().splitlines()
        if line.startswith("#   ") and ("[templates" in line or "=" in line)
    ]
    example = "\n".join(
        line.replace("<the id Zalo gave the approved template>", "1")
        for line in documented
        if not line.lstrip().startswith("#")
    )
    (mapping,) = parse_templates(tomllib.loads(example)).values()
    assert mapping.params == {
        "ma_ho_so": "code",
        "ten_thu_tuc": "procedure",
        "ngay_hen_tra": "appointment_date",
    }


def test_a_mapping_fills_each_parameter_from_the_notice_values(tmp_path: Path) -> None:
    path = tmp_path / "templates.toml"
    path.write_text(EXAMPLE)
    mappings = load_templates(path)
    values = {
        "code": "TN-2612-000123",
        "procedure": {"vi": "Đăng ký khai sinh", "en": "Birth registration"},
        "appointment_date": "2026-12-15",
        "fee_vnd": 8000,
        "missing": [
            {"code": "cccd", "component": {"vi": "CCCD", "en": "ID"}, "reason": "mờ"},
            {
                "code": "gcs",
                "component": {"vi": "Giấy chứng sinh", "en": "Birth cert."},
                "reason": "thiếu",
            },
        ],
    }
    assert template_data(mappings["notice.accepted"], values) == {
        "ma_ho_so": "TN-2612-000123",
        "ten_thu_tuc": "Đăng ký khai sinh",
        "ngay_hen_tra": "15/12/2026",
        "le_phi": "8.000 đồng",
    }
    assert template_data(mappings["notice.supplement_requested"], values) == {
        "ma_ho_so": "TN-2612-000123",
        "giay_to": "CCCD, Giấy chứng sinh",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[templates."notice.sent"]\ntemplate_id = "1"\nparams = {a = "code"}', "not a notice"),
        ('[templates."notice.accepted"]\nparams = {a = "code"}', "needs a template_id"),
        ('[templates."notice.accepted"]\ntemplate_id = "1"', "needs its params"),
        ('[templates."notice.accepted"]\ntemplate_id = "1"\nparams = {a = "phone"}', "'phone'"),
        ('[templates."notice.accepted"]\ntemplate_id = "1"\nparam = {a = "code"}', "only"),
        ('[template."notice.accepted"]\ntemplate_id = "1"', "unknown top-level"),
    ],
)
def test_a_wrong_mapping_is_refused_saying_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(TemplateConfigError, match=problem):
        parse_templates(tomllib.loads(text))


def test_a_mapping_is_checked_against_the_declared_parameters() -> None:
    mapping = TemplateMapping(
        "notice.accepted", "1", {"ma_ho_so": "code", "ngay": "appointment_date"}
    )
    good = DeclaredTemplate("1", "ENABLE", ("ma_ho_so", "ngay", "ghi_chu"), frozenset({"ma_ho_so"}))
    assert check_declared(mapping, good) == []
    bad = DeclaredTemplate("1", "PENDING_REVIEW", ("ma_ho_so", "ten"), frozenset({"ten"}))
    assert check_declared(mapping, bad) == [
        "notice.accepted (template 1): status is PENDING_REVIEW, not ENABLE",
        "notice.accepted (template 1): parameter 'ngay' is not declared by the template",
        "notice.accepted (template 1): required parameter 'ten' is not filled",
    ]


SEEN = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def test_the_chat_window_is_seven_days_from_the_last_interaction_and_shut_by_an_unfollow() -> None:
    seen = Contact(last_seen_at=SEEN, unreachable_at=None)
    assert chat_window_open(seen, SEEN + CHAT_WINDOW - timedelta(seconds=1))
    assert not chat_window_open(seen, SEEN + CHAT_WINDOW)
    assert not chat_window_open(Contact(SEEN, unreachable_at=SEEN), SEEN + timedelta(minutes=1))
    assert not chat_window_open(Contact(None, None), SEEN)  # never interacted: unknown
    assert not chat_window_open(None, SEEN)


def test_off_the_chat_a_notice_goes_by_its_template_else_by_sms() -> None:
    mapping = {"notice.accepted": TemplateMapping("notice.accepted", "1", {"ma": "code"})}
    assert off_chat_channel("notice.accepted", mapping) is Channel.ZALO_TEMPLATE
    assert off_chat_channel("notice.refused", mapping) is Channel.SMS


def test_a_tracking_id_is_the_key_when_it_fits_zalos_48_characters() -> None:
    assert tracking_id_for("notice:7:12:zalo_template") == "notice:7:12:zalo_template"
    long = tracking_id_for("x" * 49)
    assert len(long) == 48 and long != "x" * 48 and long == tracking_id_for("x" * 49)
