"""Reading the QR code on the back of a CCCD card."""

from __future__ import annotations

from datetime import date

from core.cccd import parse_cccd
from core.qr import read_qr_codes
from tests import images

SEVEN = "079123456789|123456789|Nguyễn  Thị Mai|15041990|Nữ|12 Trần Hưng Đạo, Tây Ninh|01012022"


def test_the_seven_field_card() -> None:
    card = parse_cccd(SEVEN)
    assert card is not None
    assert (card.id_number, card.full_name) == ("079123456789", "Nguyễn Thị Mai")
    assert card.birth_date == date(1990, 4, 15) and card.sex == "Nữ"
    assert card.address == "12 Trần Hưng Đạo, Tây Ninh"


def test_the_six_field_variant_without_the_old_id() -> None:
    card = parse_cccd("079123456789|Trần Văn Bình|01021985|Nam|Tây Ninh|01012022")
    assert card is not None and card.full_name == "Trần Văn Bình"
    assert card.birth_date == date(1985, 2, 1)


def test_a_birth_month_of_two_digits() -> None:
    card = parse_cccd("079123456789|Trần Văn Bình|28111985|Nam|Tây Ninh|01012022")
    assert card is not None and card.birth_date == date(1985, 11, 28)


def test_other_qr_codes_are_not_cards() -> None:
    for text in ("https://hcc.example.vn/lookup/X", "12345|a|b|c|d|e|f", "", "079123456789|||||"):
        assert parse_cccd(text) is None


def test_a_card_photo_is_read() -> None:
    assert read_qr_codes(images.qr_photo(SEVEN)) == [SEVEN]


def test_non_images_and_bombs_yield_no_codes() -> None:
    assert read_qr_codes(b"%PDF-1.4 not an image") == []
    assert read_qr_codes(images.bomb_png()) == []
