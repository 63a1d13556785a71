"""Real files for intake tests, made with Pillow: a sharp document photo and its bad cousins."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image, ImageDraw, ImageFilter


def document_photo(width: int = 1200, height: int = 1600, seed: int = 1) -> Image.Image:
    """A well-lit page with lines of 'text': sharp edges, as a good phone photo has."""
    rng = random.Random(seed)
    page = Image.new("RGB", (width, height), (238, 236, 230))
    draw = ImageDraw.Draw(page)
    for y in range(80, height - 80, 36):
        x = 80
        while x < width - 160:
            word = rng.randint(30, 120)
            draw.rectangle([x, y, x + word, y + 14], fill=(30, 30, 35))
            x += word + rng.randint(12, 24)
    return page


def jpeg(image: Image.Image, **save: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, **save)
    return out.getvalue()


def good_jpeg(seed: int = 1) -> bytes:
    return jpeg(document_photo(seed=seed))


def qr_photo(text: str, width: int = 1600, height: int = 1200) -> bytes:
    """A phone photo of a card or receipt with a QR code on it (placed off-centre, on a page)."""
    from core.qr import qr_png

    page = document_photo(width, height, seed=9)
    code = Image.open(io.BytesIO(qr_png(text, box_size=8))).convert("RGB")
    page.paste(code, (width - code.width - 60, 60))
    return jpeg(page)


def blurred_jpeg() -> bytes:
    return jpeg(document_photo().filter(ImageFilter.GaussianBlur(12)))


def dark_jpeg() -> bytes:
    return jpeg(document_photo().point(lambda v: v // 12))


def tiny_jpeg() -> bytes:
    return jpeg(document_photo(600, 450))


def rotated_jpeg() -> bytes:
    """A landscape-stored photo whose EXIF says 'rotate 90°' (how phones save portrait shots)."""
    image = document_photo(1200, 1600).rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    return jpeg(image, exif=exif.tobytes())


def bomb_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A tiny PNG that claims billions of pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def small_pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )
