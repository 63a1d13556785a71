"""Vietnamese phone numbers as people type them, normalised to +84."""

from __future__ import annotations

import re

_MOBILE = re.compile(r"^(?:\+?84|0)(\d{9})$")


def normalize_phone(text: str) -> str | None:
    """'0912 345 678', '+84 912-345-678', '84912345678' → '+84912345678'; None if not a number."""
    digits = re.sub(r"[\s.\-()]", "", text.strip())
    match = _MOBILE.match(digits)
    if match is None or match.group(1)[0] == "0":
        return None
    return f"+84{match.group(1)}"
