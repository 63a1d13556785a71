"""QR codes that open the public lookup page: on the receipt, in chat, at the kiosk."""

from __future__ import annotations

import io
from urllib.parse import quote

import qrcode
from qrcode.constants import ERROR_CORRECT_M


def lookup_url(public_base_url: str, code: str) -> str:
    return f"{public_base_url.rstrip('/')}/lookup/{quote(code, safe='.-')}"


def qr_png(data: str, *, box_size: int = 10, border: int = 4) -> bytes:
    """PNG bytes; medium error correction survives a phone camera and a crumpled receipt."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=border)
    code.add_data(data)
    code.make(fit=True)
    image = code.make_image(fill_color="black", back_color="white")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
