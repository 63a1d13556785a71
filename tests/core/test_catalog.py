"""The catalog as data: the demo loads, search finds procedures, bad files say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.catalog import Catalog, CatalogError, Text, check_file, load_catalog
from webhook.settings import REPO_ROOT

DEMO = REPO_ROOT / "data" / "catalog" / "tay-ninh"


def test_shipped_demo_province_loads(catalog: Catalog) -> None:
    assert catalog.province.kind == "province"
    assert len(catalog.procedures) == 5
    communes = [a for a in catalog.agencies.values() if a.kind == "commune_centre"]
    assert len(communes) == 3
    assert catalog.agency("000.20.01.H53").location == (11.3105, 106.0988)  # ⚠ approximate
    assert all(a.location is not None for a in communes)  # the only agencies chosen among
    assert catalog.province.code == "000.00.00.H53"
    assert {a.code for a in catalog.children("000.00.00.H53")} == {
        "000.00.10.H53", "000.00.21.H53", "000.20.01.H53", "000.20.02.H53", "000.20.03.H53",
    }  # fmt: skip
    assert catalog.children("000.20.01.H53") == []  # a commune centre has no units under it
    for procedure in catalog.procedures.values():
        assert catalog.receiving_agencies(procedure), procedure.slug
        assert procedure.name.vi and procedure.name.en
        assert any(c.required for c in procedure.components)
    birth = catalog.procedure_by_slug("khai-sinh")
    assert birth.same_day and birth.fee_vnd == 0
    assert birth.component("giay_to_tuy_than").optional_with_id_number


@pytest.mark.parametrize(
    ("typed", "slug"),
    [
        ("khai sinh", "khai-sinh"),
        ("khai sinh con", "khai-sinh"),
        ("Khai Sinh", "khai-sinh"),
        ("đăng ký khai tử", "khai-tu"),
        ("ho kinh doanh", "ho-kinh-doanh"),
        ("hộ kinh doanh", "ho-kinh-doanh"),
        ("ly lich tu phap", "ly-lich-tu-phap"),
        ("thue", "thay-doi-dang-ky-thue"),
    ],
)
def test_search_with_or_without_diacritics(catalog: Catalog, typed: str, slug: str) -> None:
    found = catalog.search(typed)
    assert found and found[0].slug == slug


@pytest.mark.parametrize(
    ("typed", "slug"),
    [
        ("Chào anh chị, tôi muốn hỏi về thủ tục khai sinh cho con gái mới sinh", "khai-sinh"),
        ("Nhà tôi mở tiệm tạp hóa, cần đăng ký hộ kinh doanh thì làm sao ạ?", "ho-kinh-doanh"),
        ("cho em hoi xin phieu ly lich tu phap o dau vay", "ly-lich-tu-phap"),
    ],
)  # fmt: skip
def test_a_longer_message_finds_the_procedure_it_mentions(
    catalog: Catalog, typed: str, slug: str
) -> None:
    found = catalog.search(typed)
    assert found and found[0].slug == slug


def test_search_for_nonsense_finds_nothing(catalog: Catalog) -> None:
    assert catalog.search("Tôi muốn hỏi giờ làm việc buổi chiều của trung tâm") == []
    assert catalog.search("xyz abc") == []
    assert catalog.search("  ") == []


def _copy_demo(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    (target / "procedures").mkdir(parents=True)
    (target / "agencies.toml").write_text((DEMO / "agencies.toml").read_text())
    for path in (DEMO / "procedures").glob("*.toml"):
        (target / "procedures" / path.name).write_text(path.read_text())
    return target


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("procedures/khai-sinh.toml", "processing_days = 0", "processing_days = -1",
         "procedures/khai-sinh.toml: processing_days: must be ≥ 0"),
        ("procedures/ho-kinh-doanh.toml", "fee_vnd = 100000", "fee_vnd = \"100k\"",
         "procedures/ho-kinh-doanh.toml: fee_vnd: must be a whole number"),
        ("procedures/khai-tu.toml", "same_day = true", "same_day = false",
         "procedures/khai-tu.toml: same_day: must be true exactly when processing_days is 0"),
        ("procedures/khai-sinh.toml", 'code = "to_khai"', 'code = "to_khai"\nmin_files = 0',
         "procedures/khai-sinh.toml: component[0].min_files: must be ≥ 1 for a required"),
        ("procedures/khai-sinh.toml", 'code = "to_khai"', 'code = "to_khai"\npages = 2',
         "procedures/khai-sinh.toml: component[0].pages: unknown field"),
        ("procedures/khai-sinh.toml", 'code = "to_khai"',
         'code = "to_khai"\naccepted_kinds = ["doc"]',
         "procedures/khai-sinh.toml: component[0].accepted_kinds: 'doc' is not one of image, pdf"),
        ("procedures/khai-sinh.toml", 'agency_kind = "commune_centre"', 'agency_kind = "district"',
         "procedures/khai-sinh.toml: agency_kind: 'district' is not one of"),
        ("procedures/khai-sinh.toml", "service_level = 3", "service_level = 2",
         "procedures/khai-sinh.toml: service_level: must be 3 or 4"),
        ("agencies.toml", 'code = "000.20.03.H53"', 'code = "Hoa Hoi"',
         "agencies.toml: agency[5].code: 'Hoa Hoi' is not an identifier like 000.00.10.H53"),
        ("agencies.toml", 'parent = "000.00.00.H53"\naddress = "Xã',
         'parent = "000.99.99.H53"\naddress = "Xã',
         "agencies.toml: agency[5].parent: '000.99.99.H53' is not a known agency"),
        ("agencies.toml", "location = [11.3105, 106.0988]", "location = [11.3105]",
         "agencies.toml: agency[3].location: must be [latitude, longitude] in degrees"),
        ("agencies.toml", "location = [11.3105, 106.0988]", "location = [106.0988, 11.3105]",
         "agencies.toml: agency[3].location: must be [latitude, longitude] in degrees"),
        ("agencies.toml", "location = [11.3105, 106.0988]", 'location = ["11.3105", "106.0988"]',
         "agencies.toml: agency[3].location: must be [latitude, longitude] in degrees"),
        ("procedures/ly-lich-tu-phap.toml", "[[component]]", "[component_x]\n[[component]]",
         "procedures/ly-lich-tu-phap.toml: component_x: unknown field"),
        ("procedures/khai-sinh.toml", 'code = "1.001193"', 'code = "1.000656"',
         "code: '1.000656' is used by another procedure too"),
    ],
)  # fmt: skip
def test_validation_errors_name_file_and_field(
    tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    directory = _copy_demo(tmp_path)
    path = directory / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(CatalogError) as raised:
        load_catalog(directory)
    assert expected in str(raised.value)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    directory = _copy_demo(tmp_path)
    for name in ("khai-sinh.toml", "khai-tu.toml"):
        path = directory / "procedures" / name
        path.write_text(path.read_text().replace("service_level = 3", "service_level = 9"))
    with pytest.raises(CatalogError) as raised:
        load_catalog(directory)
    assert len(raised.value.problems) == 2


def test_broken_toml_is_reported_with_its_file(tmp_path: Path) -> None:
    directory = _copy_demo(tmp_path)
    (directory / "procedures" / "moi.toml").write_text("code = \n")
    with pytest.raises(CatalogError, match=r"procedures/moi.toml: file: not valid TOML"):
        load_catalog(directory)


def test_check_file_for_operators(tmp_path: Path) -> None:
    assert check_file(DEMO / "procedures" / "khai-sinh.toml") == []
    assert check_file(DEMO / "agencies.toml") == []
    bad = tmp_path / "new-procedure.toml"
    bad.write_text('code = "9.9"\nname = { vi = "Thử" }\n')
    problems = check_file(bad)
    assert "new-procedure.toml: field: is required" in problems
    assert "new-procedure.toml: component: is required" in problems


def test_text_falls_back_to_vietnamese() -> None:
    assert Text("Hộ tịch", "").get("en") == "Hộ tịch"
    assert Text("Hộ tịch", "Civil status").get("en") == "Civil status"
    assert Text("Hộ tịch", "Civil status").get("vi") == "Hộ tịch"


def test_a_component_may_name_its_national_code(tmp_path: Path) -> None:
    """MaThanhPhanHoSo on the one-stop system; without one, the component's own code."""
    directory = _copy_demo(tmp_path)
    path = directory / "procedures" / "khai-sinh.toml"
    path.write_text(
        path.read_text().replace('code = "to_khai"', 'code = "to_khai"\nnational_code = "TP-01"', 1)
    )
    birth = load_catalog(directory).procedure_by_slug("khai-sinh")
    assert birth.component("to_khai").national_code == "TP-01"
    assert birth.component("giay_to_tuy_than").national_code == "giay_to_tuy_than"
