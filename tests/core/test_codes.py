"""Dossier codes: the national format, and a parser for what people actually type."""

from __future__ import annotations

from datetime import date

import pytest

from core.codes import DossierCode, format_code, parse_code

CODE = "000.00.10.H53-261122-0001"


def test_format_pads_the_sequence() -> None:
    assert format_code("000.00.10.H53", date(2026, 11, 22), 1) == CODE
    assert format_code("000.17.22.H56", date(2021, 5, 31), 42) == "000.17.22.H56-210531-0042"
    assert format_code("000.00.10.H53", date(2026, 11, 22), 12345).endswith("-12345")
    assert str(DossierCode("000.00.10.H53", date(2026, 11, 22), 1)) == CODE


@pytest.mark.parametrize(
    "typed",
    [
        CODE,
        CODE.lower(),
        "000 00 10 H53 261122 1",
        "000.00.10.H53-261122-1",
        "000.00.10.H53 - 261122 - 0001",
        "00000 10H53-261122-1",
        "Mã: 000.00.10.H53–261122–0001.",
        '"000.00.10.H53—261122—0001",',
        "０００.００.１０.Ｈ５３-２６１１２２-０００１",
        "HS 000.00.10.H53-261122-0001 cua toi",
        "000_00_10_H53/261122/0001",
        "  000.00.10.h53-261122-001  ",
    ],
)
def test_parser_accepts_what_people_type(typed: str) -> None:
    parsed = parse_code(typed)
    assert parsed is not None
    assert str(parsed) == CODE


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "xin chào",
        "000.00.10.H53",  # no date or sequence
        "000.00.10.H53-261341-0001",  # no month 13
        "000.00.10.H53-260230-0001",  # no 30 February
        "000.00.10.H53-261122-0000",  # sequences start at 1
        "000.00.10.H53-261122-123456",  # too long a sequence
        "000.00.10.053-261122-0001",  # province part starts with a letter
    ],
)
def test_parser_refuses_what_is_not_a_code(typed: str) -> None:
    assert parse_code(typed) is None


def test_parsed_code_has_its_parts() -> None:
    parsed = parse_code("g01.02.03.h56-210531-7")
    assert parsed == DossierCode("G01.02.03.H56", date(2021, 5, 31), 7)
