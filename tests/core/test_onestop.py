"""The one-stop system as data: both field sets (national and a renamed one) written out here by
hand, statuses and callbacks read back, the commands they give the state machine, the callback
signature, and the per-agency connections."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.calendar import WorkingCalendar
from core.catalog import Catalog, Procedure
from core.dossier import Action, Actor, DossierFacts, DossierRuleError, Status, decide
from core.onestop import (
    ClientCredentials,
    ConnectionDefaults,
    DossierSnapshot,
    Fee,
    FieldMapping,
    FileRef,
    OnestopConfigError,
    OnestopError,
    ProgressStep,
    SessionLogin,
    StatusReport,
    SupplementRound,
    command_for,
    dossier_item,
    load_connections,
    load_mapping,
    parse_status,
    progress_item,
    read_callback,
    read_lookup,
    sign_callback,
    supplement_entry,
    verify_callback,
)
from webhook.settings import REPO_ROOT

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NATIONAL_FILE = REPO_ROOT / "data" / "onestop" / "national.toml"
RENAMED_FILE = REPO_ROOT / "tests" / "data" / "onestop" / "renamed.toml"
CODE = "000.00.10.H53-261207-0001"
MONDAY_9 = datetime(2026, 12, 7, 9, 0, tzinfo=VN)


@pytest.fixture(scope="module")
def national() -> FieldMapping:
    return load_mapping(NATIONAL_FILE)


@pytest.fixture(scope="module")
def renamed() -> FieldMapping:
    return load_mapping(RENAMED_FILE)


@pytest.fixture
def ho_kinh_doanh(catalog: Catalog) -> Procedure:
    """3 working days; its first component is known nationally by another code."""
    procedure = catalog.procedure_by_slug("ho-kinh-doanh")
    first, *rest = procedure.components
    return replace(procedure, components=(replace(first, national_code="TP-0575-01"), *rest))


def snapshot(**changes: object) -> DossierSnapshot:
    base = DossierSnapshot(
        code=CODE,
        procedure_code="2.000575",
        procedure_name="Đăng ký thành lập hộ kinh doanh",
        field_name="Hộ kinh doanh",
        owner_name="Nguyễn Văn An",
        status=Status.ACCEPTED,
        phone="0912345678",
        id_number="079123456789",
        summary="Đăng ký hộ kinh doanh tạp hóa",
        submitted_at=datetime(2026, 12, 7, 1, 30, tzinfo=UTC),  # 08:30 in Vietnam
        received_at=MONDAY_9,
        appointment_date=date(2026, 12, 10),
        files=(
            FileRef("TP-0575-01", "f1", "giay-de-nghi-1.jpg", "https://hcc.example/f/f1?s=abc"),
        ),
        fees=(Fee("Lệ phí đăng ký hộ kinh doanh", 100000),),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- dossier items


def test_a_dossier_in_the_national_field_set(national: FieldMapping) -> None:
    assert dossier_item(snapshot(), national) == {
        "MaHoSo": CODE,
        "MaTTHC": "2.000575",
        "TenTTHC": "Đăng ký thành lập hộ kinh doanh",
        "TenLinhVuc": "Hộ kinh doanh",
        "KenhThucHien": "2",
        "ChuHoSo": "Nguyễn Văn An",
        "LoaiDoiTuong": "1",
        "SoDienThoai": "0912345678",
        "DinhDanhCHS": [{"LoaiDinhDanh": "1", "SoDinhDanh": "079123456789"}],
        "TrichYeuHoSo": "Đăng ký hộ kinh doanh tạp hóa",
        "NgayNopHoSo": "20261207083000",
        "NgayTiepNhan": "20261207090000",
        "NgayHenTra": "20261210170000",
        "TrangThaiHoSo": "2",
        "TaiLieuNop": [
            {
                "TepDinhKemId": "f1",
                "TenTepDinhKem": "giay-de-nghi-1.jpg",
                "IsDeleted": "False",
                "MaThanhPhanHoSo": "TP-0575-01",
                "DuongDanTaiTepTin": "https://hcc.example/f/f1?s=abc",
            }
        ],
        "DanhSachLePhi": [{"TenPhiLePhi": "Lệ phí đăng ký hộ kinh doanh", "Gia": 100000}],
    }


def test_the_same_dossier_in_a_renamed_field_set(renamed: FieldMapping) -> None:
    item = dossier_item(snapshot(email="an@example.vn", status=Status.PROCESSING), renamed)
    assert item == {
        "dossierNo": CODE,
        "serviceCode": "2.000575",
        "serviceName": "Đăng ký thành lập hộ kinh doanh",
        "domainName": "Hộ kinh doanh",
        "viaChannel": "2",
        "applicantName": "Nguyễn Văn An",
        "applicantType": "1",
        "contactTelNo": "0912345678",
        "applicantIds": [{"idType": "1", "idNo": "079123456789"}],
        "briefNote": "Đăng ký hộ kinh doanh tạp hóa",
        "submitDate": "07/12/2026 08:30:00",
        "receiveDate": "07/12/2026 09:00:00",
        "dueDate": "10/12/2026 00:00:00",
        "dossierStatus": "processing",  # no e-mail field on this system: the address stays here
        "attachments": [
            {
                "fileId": "f1",
                "fileName": "giay-de-nghi-1.jpg",
                "removed": "False",
                "partNo": "TP-0575-01",
                "downloadUrl": "https://hcc.example/f/f1?s=abc",
            }
        ],
        "payments": [{"feeName": "Lệ phí đăng ký hộ kinh doanh", "feeAmount": 100000}],
    }


def test_only_what_is_known_leaves(national: FieldMapping) -> None:
    """Decree 13/2023: no empty Email, no ID block without an ID number, no empty lists."""
    item = dossier_item(snapshot(id_number=None, phone="", files=(), fees=()), national)
    for absent in ("Email", "DinhDanhCHS", "SoDienThoai", "TaiLieuNop", "DanhSachLePhi",
                   "MaLinhVuc", "DanhSachHoSoBoSung"):  # fmt: skip
        assert absent not in item
    assert dossier_item(snapshot(email="an@example.vn"), national)["Email"] == "an@example.vn"


@pytest.mark.parametrize(
    ("number", "ids"),
    [
        ("079123456789", [{"LoaiDinhDanh": "1", "SoDinhDanh": "079123456789"}]),  # CCCD
        ("123456789", [{"LoaiDinhDanh": "2", "SoDinhDanh": "123456789"}]),  # old CMND
        ("12345", None),  # neither: not sent
        ("07912345678x", None),
    ],
)
def test_the_id_number_kind_follows_its_length(
    national: FieldMapping, number: str, ids: list[dict[str, str]] | None
) -> None:
    assert dossier_item(snapshot(id_number=number), national).get("DinhDanhCHS") == ids


def test_the_official_code_names_the_dossier_once_known(national: FieldMapping) -> None:
    official = "000.00.01.H22-261207-0001"
    assert dossier_item(snapshot(official_code=official), national)["MaHoSo"] == official


def test_a_draft_never_leaves(national: FieldMapping) -> None:
    with pytest.raises(ValueError, match="draft"):
        dossier_item(snapshot(status=Status.DRAFT), national)


def test_a_supplement_round_carries_the_old_and_new_appointment(national: FieldMapping) -> None:
    round_ = SupplementRound(
        round_id="1",
        requested_by="Trần Thị Bình",
        content="Bổ sung giấy đề nghị có chữ ký",
        requested_at=datetime(2026, 12, 8, 3, 0, tzinfo=UTC),
        missing=(("TP-0575-01", "Thiếu chữ ký"),),
        old_appointment_date=date(2026, 12, 10),
        new_appointment_date=date(2026, 12, 16),
        received_at=datetime(2026, 12, 11, 8, 15, tzinfo=VN),
    )
    expected = {
        "HoSoBoSungId": "1",
        "NguoiYeuCauBoSung": "Trần Thị Bình",
        "NoiDungBoSung": "Bổ sung giấy đề nghị có chữ ký",
        "NgayBoSung": "20261208100000",
        "NgayTiepNhanBoSung": "20261211081500",
        "DanhSachGiayToBoSung": [{"MaThanhPhanHoSo": "TP-0575-01", "NoiDung": "Thiếu chữ ký"}],
        "NgayHenTraTruoc": "20261210170000",
        "NgayHenTraMoi": "20261216170000",
    }
    assert supplement_entry(round_, national) == expected
    item = dossier_item(snapshot(supplements=(round_,)), national)
    assert item["DanhSachHoSoBoSung"] == [expected]


def test_a_progress_step_in_both_field_sets(national: FieldMapping, renamed: FieldMapping) -> None:
    step = ProgressStep(
        code=CODE,
        handler="Trần Thị Bình",
        title="Công chức Bộ phận Một cửa",
        at=datetime(2026, 12, 7, 2, 5, tzinfo=UTC),
        content="Tiếp nhận hồ sơ trực tuyến",
        status=Status.ACCEPTED,
        department="Bộ phận Một cửa",
        start=MONDAY_9,
        legal_end=date(2026, 12, 10),
    )
    assert progress_item(step, national) == {
        "MaHoSo": CODE,
        "NguoiXuLy": "Trần Thị Bình",
        "ChucDanh": "Công chức Bộ phận Một cửa",
        "ThoiDiemXuLy": "20261207090500",
        "PhongBanXuLy": "Bộ phận Một cửa",
        "NoiDungXuLy": "Tiếp nhận hồ sơ trực tuyến",
        "TrangThai": "2",
        "NgayBatDau": "20261207090000",
        "NgayKetThucTheoQuyDinh": "20261210170000",
    }
    assert progress_item(step, renamed) == {
        "dossierNo": CODE,
        "actionUser": "Trần Thị Bình",
        "actionUserTitle": "Công chức Bộ phận Một cửa",
        "actionDate": "07/12/2026 09:05:00",
        "actionNote": "Tiếp nhận hồ sơ trực tuyến",
        "stepStatus": "new",
        "startDate": "07/12/2026 09:00:00",
        "deadline": "10/12/2026 00:00:00",
    }


# ---------------------------------------------------------------------------- mapping files


def _mapping_text(tmp_path: Path, old: str, new: str) -> Path:
    text = NATIONAL_FILE.read_text()
    assert old in text
    path = tmp_path / "mapping.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('day_time = "17:00"', 'day_time = "17:00"\ncolour = "blue"', "colour: unknown key"),
        ('email = "Email"', 'email = "Email"\nfax = "Fax"', "dossier.fax: unknown field"),
        ('email = "Email"\n', "", "dossier.email: is required"),
        ('status_format = "code"', 'status_format = "roman"', "status_format: 'roman' is not"),
        ('date_format = "%Y%m%d%H%M%S"', 'date_format = "%H:%M"', "does not write and read back"),
        ("done = 10 ", "finished = 9 ", "status_names: no name for status 10"),
        ("done = 10 ", "done = 11 ", "status_names.done: must be a status code 1–10"),
        ('email = "Email"', 'email = "SoDienThoai"', "dossier: 'SoDienThoai' names two fields"),
        ('day_time = "17:00"', 'day_time = "5pm"', 'day_time: must be a time like "17:00"'),
        ('email = "Email"', "email = 5", "dossier.email: must be text"),
    ],
)
def test_a_wrong_mapping_file_says_where(tmp_path: Path, old: str, new: str, expected: str) -> None:
    with pytest.raises(OnestopConfigError) as raised:
        load_mapping(_mapping_text(tmp_path, old, new))
    assert expected in str(raised.value)
    assert "mapping.toml" in str(raised.value)


def test_a_broken_or_missing_mapping_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("date_format = \n")
    with pytest.raises(OnestopConfigError, match=r"broken\.toml: not valid TOML"):
        load_mapping(broken)
    with pytest.raises(OnestopConfigError, match="cannot be read"):
        load_mapping(tmp_path / "absent.toml")


# ---------------------------------------------------------------------------- status back


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4, 4), ("4", 4), (" 10 ", 10), ("processing", 4), ("PROCESSING", 4), ("receiving", 1),
        ("waiting", 5), ("done", 10), ("releasing", 9), ("cancelled", 7), ("unresolved", 8),
        (0, None), (11, None), ("11", None), ("posting", None), ("", None), (True, None),
        (None, None), (4.0, None), ("x" * 100, None),
    ],
)  # fmt: skip
def test_parse_status(national: FieldMapping, value: object, expected: int | None) -> None:
    assert parse_status(value, national) == expected


def test_read_a_full_callback(national: FieldMapping) -> None:
    body = {
        "MaHoSo": CODE,
        "TrangThaiHoSo": "5",
        "NgayHenTra": "20261216170000",
        "NoiDungXuLy": "Yêu cầu bổ sung",
        "NguoiXuLy": "Lê Văn Cường",
        "DanhSachGiayToBoSung": [{"MaThanhPhanHoSo": "TP-0575-01", "LyDo": "Ảnh mờ"}, "TP-9"],
        "LePhi": "100000",
        "LyDo": "Hồ sơ chưa đủ",
    }
    assert read_callback(body, national) == StatusReport(
        code=CODE,
        status=5,
        appointment_date=date(2026, 12, 16),
        content="Yêu cầu bổ sung",
        handler="Lê Văn Cường",
        missing=(("TP-0575-01", "Ảnh mờ"), ("TP-9", "")),
        fee_vnd=100000,
        reason="Hồ sơ chưa đủ",
    )


def test_read_a_callback_of_the_renamed_system(renamed: FieldMapping) -> None:
    body = {"dossierNo": CODE, "dossierStatus": "paying", "paymentAmount": 250000,
            "dueDate": "16/12/2026 00:00:00"}  # fmt: skip
    report = read_callback(body, renamed)
    assert (report.status, report.fee_vnd) == (6, 250000)
    assert report.appointment_date == date(2026, 12, 16)
    with pytest.raises(OnestopError):  # the national names mean nothing to it
        read_callback({"MaHoSo": CODE, "TrangThaiHoSo": "4"}, renamed)


def test_read_a_lookup_answer(national: FieldMapping) -> None:
    item = dossier_item(snapshot(status=Status.RESULT_READY), national)
    assert read_lookup(item, national) == StatusReport(CODE, 9, date(2026, 12, 10))


@pytest.mark.parametrize(
    ("body", "reason", "vietnamese"),
    [
        ([1, 2], "not_an_object", "đối tượng JSON"),
        ({"TrangThaiHoSo": "4"}, "field_missing", "Thiếu trường “MaHoSo”"),
        ({"MaHoSo": "  ", "TrangThaiHoSo": "4"}, "field_missing", "MaHoSo"),
        ({"MaHoSo": 12, "TrangThaiHoSo": "4"}, "field_invalid", "MaHoSo"),
        ({"MaHoSo": "x" * 65, "TrangThaiHoSo": "4"}, "field_too_long", "64 ký tự"),
        ({"MaHoSo": CODE}, "field_missing", "TrangThaiHoSo"),
        ({"MaHoSo": CODE, "TrangThaiHoSo": "42"}, "unknown_status", "“42”"),
        ({"MaHoSo": CODE, "TrangThaiHoSo": 4, "NgayHenTra": "2026-12-16"}, "bad_date",
         "20261207170000"),
        ({"MaHoSo": CODE, "TrangThaiHoSo": 4, "NoiDungXuLy": "a" * 2001}, "field_too_long",
         "NoiDungXuLy"),
        ({"MaHoSo": CODE, "TrangThaiHoSo": 5, "DanhSachGiayToBoSung": "TP-1"}, "field_invalid",
         "DanhSachGiayToBoSung"),
        ({"MaHoSo": CODE, "TrangThaiHoSo": 5, "DanhSachGiayToBoSung": ["TP"] * 101},
         "field_invalid", "DanhSachGiayToBoSung"),
        ({"MaHoSo": CODE, "TrangThaiHoSo": 5, "DanhSachGiayToBoSung": [{"LyDo": "mờ"}]},
         "field_missing", "DanhSachGiayToBoSung.MaThanhPhanHoSo"),
        ({"MaHoSo": CODE, "TrangThaiHoSo": 6, "LePhi": "một trăm"}, "field_invalid", "LePhi"),
        ({"MaHoSo": CODE, "TrangThaiHoSo": 6, "LePhi": -5}, "field_invalid", "LePhi"),
    ],
)  # fmt: skip
def test_a_malformed_callback_is_refused_in_plain_words(
    national: FieldMapping, body: object, reason: str, vietnamese: str
) -> None:
    with pytest.raises(OnestopError) as raised:
        read_callback(body, national)
    assert raised.value.reason == reason
    assert vietnamese in raised.value.message("vi")
    assert raised.value.message("en") != raised.value.message("vi")


# ---------------------------------------------------------------------------- commands


def running(status: Status, **changes: object) -> DossierFacts:
    return replace(
        DossierFacts(CODE, status, received_at=MONDAY_9, appointment_date=date(2026, 12, 10)),
        **changes,  # type: ignore[arg-type]
    )


def report(status: int, **changes: object) -> StatusReport:
    return replace(StatusReport(CODE, status), **changes)  # type: ignore[arg-type]


AT = datetime(2026, 12, 8, 10, 0, tzinfo=VN)


@pytest.mark.parametrize(
    ("facts_status", "national_status", "action", "after"),
    [
        (Status.ACCEPTED, 4, Action.FORWARD, Status.PROCESSING),
        (Status.PROCESSING, 9, Action.RESULT_READY, Status.RESULT_READY),
        (Status.RESULT_READY, 10, Action.RETURN_RESULT, Status.RETURNED),
        (Status.PROCESSING, 3, Action.REFUSE, Status.REFUSED),
        (Status.PROCESSING, 8, Action.STOP, Status.STOPPED),
        (Status.PROCESSING, 7, Action.WITHDRAW, Status.WITHDRAWN),
        (Status.ACCEPTED, 9, Action.RESULT_READY, Status.RESULT_READY),  # done without a 4
    ],
)
def test_each_national_status_is_one_step_of_the_state_machine(
    ho_kinh_doanh: Procedure,
    calendar: WorkingCalendar,
    facts_status: Status,
    national_status: int,
    action: Action,
    after: Status,
) -> None:
    facts = running(facts_status)
    command = command_for(report(national_status, reason="Theo quy định"), facts, ho_kinh_doanh,
                          at=AT)  # fmt: skip
    assert command is not None
    assert (command.action, command.actor, command.at) == (action, Actor.ONESTOP, AT)
    decision = decide(facts, command, procedure=ho_kinh_doanh, calendar=calendar)
    assert decision.after.status is after


def test_a_supplement_request_maps_national_components_back_to_ours(
    ho_kinh_doanh: Procedure, calendar: WorkingCalendar
) -> None:
    facts = running(Status.PROCESSING)
    asked = report(5, missing=(("TP-0575-01", "Thiếu chữ ký"), ("giay_to_chu_ho", "")),
                   reason="Bổ sung theo yêu cầu")  # fmt: skip
    command = command_for(asked, facts, ho_kinh_doanh, at=AT)
    assert command is not None and command.action is Action.REQUEST_SUPPLEMENT
    assert [(m.component, m.reason) for m in command.missing] == [
        ("giay_de_nghi", "Thiếu chữ ký"),
        ("giay_to_chu_ho", "Bổ sung theo yêu cầu"),  # no reason of its own: the message's
    ]
    decision = decide(facts, command, procedure=ho_kinh_doanh, calendar=calendar)
    assert decision.after.status is Status.SUPPLEMENT_REQUESTED
    unknown = command_for(report(5, missing=(("TP-XX", "?"),)), facts, ho_kinh_doanh, at=AT)
    assert unknown is not None
    with pytest.raises(DossierRuleError) as raised:
        decide(facts, unknown, procedure=ho_kinh_doanh, calendar=calendar)
    assert raised.value.reason == "unknown_component"


def test_a_later_appointment_while_running_is_an_extension(
    ho_kinh_doanh: Procedure, calendar: WorkingCalendar
) -> None:
    facts = running(Status.PROCESSING)
    later = report(4, appointment_date=date(2026, 12, 15), content="Cần xác minh thêm")
    command = command_for(later, facts, ho_kinh_doanh, at=AT)
    assert command is not None and command.action is Action.EXTEND
    assert command.new_appointment_date == date(2026, 12, 15)
    decision = decide(facts, command, procedure=ho_kinh_doanh, calendar=calendar)
    assert (decision.after.status, decision.after.appointment_date) == (
        Status.EXTENDED,
        date(2026, 12, 15),
    )
    # Applied: the same report again changes nothing.
    assert command_for(later, decision.after, ho_kinh_doanh, at=AT) is None


def test_forward_then_extend_from_one_report(ho_kinh_doanh: Procedure) -> None:
    both = report(4, appointment_date=date(2026, 12, 15), content="Cần xác minh thêm")
    first = command_for(both, running(Status.ACCEPTED), ho_kinh_doanh, at=AT)
    assert first is not None and first.action is Action.FORWARD
    then = command_for(both, running(Status.PROCESSING), ho_kinh_doanh, at=AT)
    assert then is not None and then.action is Action.EXTEND


@pytest.mark.parametrize(
    ("facts", "said"),
    [
        (running(Status.PROCESSING), report(4)),  # the same status again: idempotent
        (running(Status.EXTENDED, extended=True), report(4, appointment_date=date(2026, 12, 10))),
        (running(Status.PROCESSING), report(4, appointment_date=date(2026, 12, 9))),  # earlier
        (running(Status.SUPPLEMENT_REQUESTED), report(5, missing=(("TP-0575-01", "mờ"),))),
        (running(Status.RETURNED), report(10)),
        (running(Status.ACCEPTED), report(2)),  # the desk's own step
        (running(Status.SUBMITTED), report(1)),
        (running(Status.RESULT_READY), report(9, appointment_date=date(2026, 12, 20))),
    ],
)
def test_a_report_that_changes_nothing_gives_no_command(
    ho_kinh_doanh: Procedure, facts: DossierFacts, said: StatusReport
) -> None:
    assert command_for(said, facts, ho_kinh_doanh, at=AT) is None


def test_payment_requested_gives_no_command_but_keeps_the_amount(
    national: FieldMapping, ho_kinh_doanh: Procedure
) -> None:
    said = read_callback({"MaHoSo": CODE, "TrangThaiHoSo": "paying", "LePhi": 100000}, national)
    assert said.fee_vnd == 100000
    assert command_for(said, running(Status.PROCESSING), ho_kinh_doanh, at=AT) is None


@pytest.mark.parametrize(
    ("facts_status", "national_status"),
    [
        (Status.RESULT_READY, 4),  # 4 arriving after 9
        (Status.REFUSED, 9),  # closed stays closed
        (Status.SUBMITTED, 9),  # not yet accepted by the desk
        (Status.PROCESSING, 10),  # returned before result ready
    ],
)
def test_out_of_order_messages_get_the_state_machines_refusal(
    ho_kinh_doanh: Procedure,
    calendar: WorkingCalendar,
    facts_status: Status,
    national_status: int,
) -> None:
    facts = running(facts_status)
    command = command_for(report(national_status), facts, ho_kinh_doanh, at=AT)
    assert command is not None
    with pytest.raises(DossierRuleError) as raised:
        decide(facts, command, procedure=ho_kinh_doanh, calendar=calendar)
    assert raised.value.reason == "transition_not_allowed"


def test_a_refusal_without_a_reason_is_refused_by_the_rules(
    ho_kinh_doanh: Procedure, calendar: WorkingCalendar
) -> None:
    facts = running(Status.PROCESSING)
    command = command_for(report(3), facts, ho_kinh_doanh, at=AT)
    assert command is not None
    with pytest.raises(DossierRuleError) as raised:
        decide(facts, command, procedure=ho_kinh_doanh, calendar=calendar)
    assert raised.value.reason == "reason_required"


# ---------------------------------------------------------------------------- signature

SECRET = "callback-secret-1"
BODY = b'{"MaHoSo":"000.00.10.H53-261207-0001","TrangThaiHoSo":"4"}'
STAMP = 1765000000
# printf '%s' '1765000000.<BODY>' | openssl dgst -sha256 -hmac 'callback-secret-1'
EXPECTED = "sha256=7165f7bbf478bf0bc904f0b4aed51fb6e8829569046ecbcf2e94c5464a6fc2dc"
SENT_AT = datetime.fromtimestamp(STAMP, UTC)


def test_sign_callback_matches_an_independent_hmac() -> None:
    assert sign_callback(SECRET, str(STAMP), BODY) == EXPECTED


@pytest.mark.parametrize(
    ("secret", "stamp", "signature", "body", "now", "ok"),
    [
        (SECRET, str(STAMP), EXPECTED, BODY, SENT_AT, True),
        (SECRET, str(STAMP), EXPECTED.upper().replace("SHA256", "sha256"), BODY, SENT_AT, True),
        (SECRET, str(STAMP), EXPECTED, BODY, SENT_AT + timedelta(seconds=300), True),
        (SECRET, str(STAMP), EXPECTED, BODY, SENT_AT + timedelta(seconds=301), False),  # stale
        (SECRET, str(STAMP), EXPECTED, BODY, SENT_AT - timedelta(seconds=301), False),  # future
        ("another-secret", str(STAMP), EXPECTED, BODY, SENT_AT, False),  # forged
        (SECRET, str(STAMP), EXPECTED, BODY.replace(b'"4"', b'"9"'), SENT_AT, False),  # altered
        (SECRET, str(STAMP + 1), EXPECTED, BODY, SENT_AT, False),  # timestamp not the signed one
        (SECRET, str(STAMP), EXPECTED.removeprefix("sha256="), BODY, SENT_AT, False),
        (SECRET, None, EXPECTED, BODY, SENT_AT, False),
        (SECRET, str(STAMP), None, BODY, SENT_AT, False),
        (SECRET, "17e8", EXPECTED, BODY, SENT_AT, False),
        (SECRET, "9" * 40, EXPECTED, BODY, SENT_AT, False),
        ("", str(STAMP), sign_callback("", str(STAMP), BODY), BODY, SENT_AT, False),  # no secret
    ],
)
def test_verify_callback(
    secret: str,
    stamp: str | None,
    signature: str | None,
    body: bytes,
    now: datetime,
    ok: bool,
) -> None:
    assert verify_callback(secret, stamp, signature, body, now) is ok


# ---------------------------------------------------------------------------- connections

DEFAULTS = ConnectionDefaults(
    mapping=NATIONAL_FILE,
    base_url="https://lgsp.example.gov.vn/dvcqg/",
    client_id="hcc-intake",
)


def test_no_file_and_no_env_means_no_connection() -> None:
    connections = load_connections(None, ConnectionDefaults(mapping=NATIONAL_FILE))
    assert connections.get("000.20.01.H53") is None


def test_the_env_connects_every_agency_with_its_own_unit() -> None:
    connection = load_connections(None, DEFAULTS).get("000.20.01.H53")
    assert connection is not None
    assert connection.base_url == "https://lgsp.example.gov.vn/dvcqg"
    assert connection.auth == ClientCredentials(
        "https://lgsp.example.gov.vn/dvcqg/token", "hcc-intake", "ONESTOP_CLIENT_SECRET"
    )
    assert (connection.agency, connection.unit) == ("000.20.01.H53", "000.20.01.H53")
    assert (connection.forward_on, connection.callback_secret_env) == (
        "accept",
        "ONESTOP_CALLBACK_SECRET",
    )
    assert connection.mapping.name("dossier", "code") == "MaHoSo"
    with pytest.raises(OnestopConfigError, match="ONESTOP_CLIENT_ID"):
        load_connections(None, replace(DEFAULTS, client_id=None))


AGENCIES = """
[agencies."000.00.10.H53"]
unit = "000.00.01.H22"
forward_on = "forward"
callback_secret_env = "ONESTOP_CALLBACK_SECRET_10"

[agencies."000.20.01.H53"]
base_url = "https://other.example.gov.vn/api"
mapping = "renamed.toml"
[agencies."000.20.01.H53".auth]
kind = "client_credentials"
token_url = "https://other.example.gov.vn/token"
client_id = "hcc-commune"
client_secret_env = "ONESTOP_CLIENT_SECRET_20_01"

[agencies."000.20.02.H53".auth]
kind = "session"
adapter_url = "https://adapter.example.gov.vn/"
auth_path = "/auth"
integration_path = "integration"
username = "hcc"
password_env = "ONESTOP_PASSWORD_20_02"
dstcode = "H53"

[agencies."000.20.03.H53"]
enabled = false
"""


def _agencies_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agencies.toml"
    path.write_text(text)
    (tmp_path / "renamed.toml").write_text(RENAMED_FILE.read_text())
    return path


def test_the_agencies_file_overrides_the_env_per_agency(tmp_path: Path) -> None:
    connections = load_connections(_agencies_file(tmp_path, AGENCIES), DEFAULTS)
    centre = connections.get("000.00.10.H53")
    assert centre is not None
    assert (centre.unit, centre.forward_on, centre.callback_secret_env) == (
        "000.00.01.H22",
        "forward",
        "ONESTOP_CALLBACK_SECRET_10",
    )
    assert centre.base_url == "https://lgsp.example.gov.vn/dvcqg"  # the env's system
    commune = connections.get("000.20.01.H53")
    assert commune is not None
    assert commune.base_url == "https://other.example.gov.vn/api"
    assert commune.auth == ClientCredentials(
        "https://other.example.gov.vn/token", "hcc-commune", "ONESTOP_CLIENT_SECRET_20_01"
    )
    assert commune.mapping.name("dossier", "code") == "dossierNo"
    adapter = connections.get("000.20.02.H53")
    assert adapter is not None
    assert adapter.auth == SessionLogin(
        "https://adapter.example.gov.vn", "auth", "integration", "hcc", "ONESTOP_PASSWORD_20_02",
        "H53",
    )  # fmt: skip
    assert adapter.unit == "000.20.02.H53"
    assert connections.get("000.20.03.H53") is None  # opted out
    other = connections.get("000.00.21.H53")  # not in the file: the env's default
    assert other is not None and other.unit == "000.00.21.H53"


def test_without_env_only_the_listed_agencies_are_connected(tmp_path: Path) -> None:
    commune = AGENCIES[AGENCIES.index('[agencies."000.20.01.H53"]') :]
    path = _agencies_file(tmp_path, commune[: commune.index('[agencies."000.20.02.H53"')])
    connections = load_connections(path, ConnectionDefaults(mapping=NATIONAL_FILE))
    assert connections.get("000.20.01.H53") is not None
    assert connections.get("000.00.10.H53") is None


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('unit = "000.00.01.H22"', 'unit = "X"\ncolour = "x"', "unknown keys ['colour']"),
        ('forward_on = "forward"', 'forward_on = "later"', "forward_on: must be one of"),
        ('client_secret_env = "ONESTOP_CLIENT_SECRET_20_01"', 'client_secret = "s3cret"',
         "secrets go in the environment"),
        ('password_env = "ONESTOP_PASSWORD_20_02"', 'password_env = "hunter2 is my password"',
         "must be the NAME of an environment variable"),
        ('kind = "session"', 'kind = "ldap"', "auth.kind: must be one of"),
        ('dstcode = "H53"', "", "auth.dstcode: is required"),
        ("enabled = false", 'enabled = "no"', "enabled: must be true or false"),
        ('mapping = "renamed.toml"', 'mapping = "absent.toml"', "absent.toml: cannot be read"),
    ],
)  # fmt: skip
def test_a_wrong_agencies_file_says_where(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in AGENCIES
    path = _agencies_file(tmp_path, AGENCIES.replace(old, new, 1))
    with pytest.raises(OnestopConfigError) as raised:
        load_connections(path, DEFAULTS)
    assert expected in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_an_agency_without_base_url_needs_the_env(tmp_path: Path) -> None:
    path = _agencies_file(tmp_path, '[agencies."000.00.10.H53"]\nunit = "X"\n')
    with pytest.raises(OnestopConfigError, match="auth: required"):
        load_connections(path, ConnectionDefaults(mapping=NATIONAL_FILE))


def test_the_shipped_agencies_example_connects_nothing_and_parses_uncommented(
    tmp_path: Path,
) -> None:
    """The example is all comments (shipped, it must connect no agency); its examples, once
    uncommented, are a valid file."""
    example = REPO_ROOT / "data" / "onestop" / "agencies.toml"
    assert load_connections(example, ConnectionDefaults(mapping=NATIONAL_FILE)).agencies == {}
    lines = [
        line.removeprefix("# ")
        for line in example.read_text().splitlines()
        if line.startswith("# [") or (line.startswith("# ") and "=" in line.split("#")[1])
    ]
    path = _agencies_file(tmp_path, "\n".join(lines) + "\n")
    (tmp_path / "commune-system.toml").write_text(RENAMED_FILE.read_text())
    connections = load_connections(path, DEFAULTS)
    assert set(connections.agencies) == {"000.00.10.H53", "000.20.01.H53", "000.20.02.H53"}
    assert connections.get("000.20.03.H53") is None
