"""QR codes decode, with a real decoder, to the lookup URL — also shrunk and inside a photo."""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image

from core.qr import lookup_url, qr_png

CODE = "000.00.10.H53-261122-0001"


def decode(image: Image.Image) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(image)]


def test_lookup_url() -> None:
    assert lookup_url("https://hcc.tayninh.gov.vn/", CODE) == (
        f"https://hcc.tayninh.gov.vn/lookup/{CODE}"
    )


def test_qr_png_decodes_to_the_lookup_url() -> None:
    url = lookup_url("https://hcc.tayninh.gov.vn", CODE)
    png = qr_png(url)
    assert png.startswith(b"\x89PNG")
    image = Image.open(io.BytesIO(png))
    assert decode(image) == [url]


def test_qr_survives_a_small_screenshot_inside_a_photo() -> None:
    url = lookup_url("https://hcc.tayninh.gov.vn", CODE)
    image = Image.open(io.BytesIO(qr_png(url))).convert("RGB")
    small = image.resize((300, 300 * image.height // image.width))
    photo = Image.new("RGB", (1200, 900), (180, 170, 160))
    photo.paste(small, (450, 300))
    assert decode(photo) == [url]
