"""The QR code on the back of a Vietnamese citizen ID card (CCCD), read from a photo.

Pipe-separated: ID number (12 digits) | old ID (9 digits, may be empty) | full name | birth date
DDMMYYYY | sex | permanent address | issue date DDMMYYYY; a 6-field variant lacks the old ID.
Only what a procedure needs is kept (name, and the ID number when it replaces papers); the rest
is shown to the citizen for confirmation and forgotten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_ID = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class CccdCard:
    id_number: str
    full_name: str
    birth_date: date | None
    sex: str
    address: str


def _day(text: str) -> date | None:
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        return date(int(text[4:]), int(text[2:4]), int(text[:2]))
    except ValueError:
        return None


def parse_cccd(text: str) -> CccdCard | None:
    """The card in a QR text, or None when the text is not a CCCD QR code."""
    fields = [f.strip() for f in text.strip().split("|")]
    if len(fields) == 6:
        fields.insert(1, "")
    if len(fields) != 7 or not _ID.match(fields[0]) or not fields[2]:
        return None
    return CccdCard(
        id_number=fields[0],
        full_name=" ".join(fields[2].split()),
        birth_date=_day(fields[3]),
        sex=fields[4],
        address=fields[5],
    )
