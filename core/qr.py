"""QR codes: the ones we print (they open the public lookup page) and the ones we read from a
citizen's photo (our receipts, the CCCD card)."""

from __future__ import annotations

import io
from urllib.parse import quote, unquote, urlparse

import qrcode
import zxingcpp
from qrcode.constants import ERROR_CORRECT_M

from core.documents import DocumentProblem, open_image


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


_QR_ONLY = zxingcpp.barcode_formats_from_str("QRCode")
READ_MAX_SIDE = 2400  # larger photos are scaled down first: QR codes stay readable, decoding fast


def read_qr_codes(data: bytes) -> list[str]:
    """The texts of the QR codes in a photo (a CCCD, a receipt, a phone screen); [] when none
    or when the bytes are not a safe image."""
    try:
        image = open_image(data)
    except DocumentProblem:
        return []
    if max(image.size) > READ_MAX_SIDE:
        image.thumbnail((READ_MAX_SIDE, READ_MAX_SIDE))
    return [r.text for r in zxingcpp.read_barcodes(image, formats=_QR_ONLY)]


def code_in_lookup_url(text: str) -> str | None:
    """The dossier code in a lookup QR code (…/lookup/<code>), whatever the host."""
    path = urlparse(text.strip()).path
    if "/lookup/" not in path:
        return None
    return unquote(path.rsplit("/lookup/", 1)[1]).strip("/") or None
