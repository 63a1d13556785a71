"""The notice → Zalo template mapping is data, validated when loaded and against what Zalo
declares for each template."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from core.zalo_templates import (
    DeclaredTemplate,
    TemplateConfigError,
    TemplateMapping,
    check_declared,
    load_templates,
    parse_templates,
    template_data,
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
