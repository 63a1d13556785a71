"""Dossier codes (mã số hồ sơ): `<receiving agency identifier>-<YYMMDD>-<NNNN>`.

Decree 61/2018 Art. 26, Circular 01/2018/TT-VPCP Art. 19: the agency's identifier, the reception
date and a 4-digit sequence per agency per day, e.g. `000.17.22.H56-210531-0001`. The parser takes
what people actually type or dictate: lower case, spaces for dots, missing zeros, stray punctuation.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

_SEP = r"[\s.\-_,:/]*"
_CODE = re.compile(
    rf"(?<![A-Z0-9])([A-Z0-9]{{3}}){_SEP}(\d{{2}}){_SEP}(\d{{2}}){_SEP}([A-Z]\d{{2}})"
    rf"{_SEP}(\d{{6}}){_SEP}(\d{{1,5}})(?!\d)"
)
_DASHES = dict.fromkeys(map(ord, "‐‑‒–—―−"), "-")


@dataclass(frozen=True, order=True)
class DossierCode:
    agency: str
    day: date
    sequence: int

    def __str__(self) -> str:
        return format_code(self.agency, self.day, self.sequence)


def format_code(agency: str, day: date, sequence: int) -> str:
    """The canonical code; the sequence is zero-padded to 4 digits (wider past 9,999)."""
    return f"{agency}-{day:%y%m%d}-{sequence:04d}"


def parse_code(text: str) -> DossierCode | None:
    """The first dossier code in `text`, however it was typed, or None."""
    normal = unicodedata.normalize("NFKC", text).translate(_DASHES).upper()
    for match in _CODE.finditer(normal):
        a, b, c, province, ymd, seq = match.groups()
        try:
            day = date(2000 + int(ymd[:2]), int(ymd[2:4]), int(ymd[4:]))
        except ValueError:
            continue
        if int(seq) == 0:
            continue
        return DossierCode(f"{a}.{b}.{c}.{province}", day, int(seq))
    return None
