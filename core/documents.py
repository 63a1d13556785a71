"""Checks on every photo or PDF a citizen sends before it joins a dossier.

A failed check names exactly what to retake (`DocumentProblem.reason` is a message key under
`templates/messages/document.toml`). Content is judged by its bytes, never by its file name.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageStat

MAX_BYTES = 20 * 1024 * 1024
MIN_SHORT_SIDE = 800
MAX_PIXELS = 50_000_000  # well above a 48-megapixel phone photo; anything larger is a bomb
# What one decode may take in memory (a 50-MP RGB photo); more bits a pixel (RGBA, CMYK, 32-bit
# greys) at that size are refused before decoding.
MAX_DECODED_BYTES = 150_000_000
# A re-encoded image is kept at most this size (a 12-MP phone photo whole): a dense 1-bit PNG of
# 49 MP (15 KB sent) was expanded to RGB and stored as a 28 MB JPEG.
MAX_STORED_PIXELS = 12_000_000
MAX_CONCURRENT_CHECKS = 2  # image decodes at once per process; the others wait their turn
IMAGE_CHECKS = threading.BoundedSemaphore(MAX_CONCURRENT_CHECKS)
MIN_BRIGHTNESS = 40.0  # mean luminance 0–255
MIN_SHARPNESS = 4.0  # Laplacian spread at 1000 px: a sharp page ~45, a nearly blank one ~5
JPEG_QUALITY = 88
QUALITY_SIDE = 1000  # brightness and sharpness are judged on a copy this size
_ORIENTATION = 0x0112  # the EXIF tag saying how the camera was held


@dataclass(frozen=True)
class CheckedDocument:
    """A document file that passed every check, ready to store."""

    data: bytes
    content_type: str  # image/jpeg or application/pdf
    kind: str  # "image" or "pdf"
    width: int = 0
    height: int = 0
    brightness: float = 0.0
    sharpness: float = 0.0


class DocumentProblem(Exception):
    """Why a file was refused; `reason` is a message key, `values` fill its placeholders."""

    def __init__(self, reason: str, **values: object) -> None:
        self.reason = reason
        self.values = values
        super().__init__(reason)


class StorageUnavailable(Exception):
    """A checked file could not be kept right now (media disk full, object store refusing or
    timing out): nothing was kept, and the citizen is asked to send it again in a while."""


def check_document(
    data: bytes, accepted_kinds: tuple[str, ...] = ("image", "pdf")
) -> CheckedDocument:
    """Accept a real image or PDF within limits; images come back upright as JPEG. At most
    MAX_CONCURRENT_CHECKS images are decoded at once in a process (the rest wait)."""
    if len(data) > MAX_BYTES:
        raise DocumentProblem("too_large", limit_mb=MAX_BYTES // (1024 * 1024))
    if not data:
        raise DocumentProblem("not_a_document")
    if data.startswith(b"%PDF-"):
        if "pdf" not in accepted_kinds:
            raise DocumentProblem("pdf_not_accepted")
        if b"%%EOF" not in data[-2048:]:
            raise DocumentProblem("pdf_damaged")
        return CheckedDocument(data, "application/pdf", "pdf")
    if "image" not in accepted_kinds:
        raise DocumentProblem("image_not_accepted")
    with IMAGE_CHECKS:
        return _check_image(data)


def open_image(data: bytes) -> Image.Image:
    """A real photo or scan, decoded (at most MAX_STORED_PIXELS) and upright; `DocumentProblem`
    for anything else (not an image, too many pixels or bits, a decompression bomb)."""
    with IMAGE_CHECKS:
        return _upright(data)


def _upright(data: bytes) -> Image.Image:
    """Decoded within MAX_DECODED_BYTES, reduced to at most MAX_STORED_PIXELS *before* it is
    turned and expanded to RGB (what made dense 1-bit scans cost seconds), then upright."""
    with _decoding():
        image = _open(data)
        orientation = image.getexif().get(_ORIENTATION, 1)
        factor = math.ceil(math.sqrt(image.width * image.height / MAX_STORED_PIXELS))
        if factor > 1 and image.format in ("JPEG", "MPO"):
            image.draft("RGB", (image.width // factor, image.height // factor))  # libjpeg scales
        if image.width * image.height * _BYTES_PER_PIXEL.get(image.mode, 4) > MAX_DECODED_BYTES:
            raise DocumentProblem("too_many_pixels")
        image.load()
        factor = math.ceil(math.sqrt(image.width * image.height / MAX_STORED_PIXELS))
        if factor > 1:
            image = _reduced(image, factor)
    method = _TURN.get(orientation)
    return (image.transpose(method) if method is not None else image).convert("RGB")


# Decoded bytes per pixel of each mode Pillow decodes into (4 for the others).
_BYTES_PER_PIXEL = {"1": 0.125, "L": 1, "P": 1, "LA": 2, "PA": 2, "I;16": 2, "RGB": 3,
                    "YCbCr": 3, "LAB": 3, "HSV": 3}  # fmt: skip
_TURN = {  # EXIF orientation → the transpose that makes the image upright (as exif_transpose)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _reduced(image: Image.Image, factor: int) -> Image.Image:
    if image.mode == "1":  # bilevel scans: averaged as greys, not expanded to RGB
        image = image.convert("L")
    if image.mode in ("L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F"):
        return image.reduce(factor)
    size = (math.ceil(image.width / factor), math.ceil(image.height / factor))
    return image.resize(size, Image.Resampling.NEAREST)  # palette images: no blending


def _open(data: bytes) -> Image.Image:
    """The image's header only: format and size are known, nothing is decoded yet."""
    if len(data) > MAX_BYTES:
        raise DocumentProblem("too_large", limit_mb=MAX_BYTES // (1024 * 1024))
    image = Image.open(io.BytesIO(data))
    if image.format not in ("JPEG", "PNG", "WEBP", "HEIF", "MPO", "BMP", "TIFF"):
        raise DocumentProblem("not_a_document")
    if image.width * image.height > MAX_PIXELS:
        raise DocumentProblem("too_many_pixels")
    return image


@contextmanager
def _decoding() -> Iterator[None]:
    """Pillow's many errors for broken, hostile or non-image bytes, as `DocumentProblem`s."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DocumentProblem("too_many_pixels") from None
    except DocumentProblem:
        raise
    except Exception:
        raise DocumentProblem("not_a_document") from None


def _check_image(data: bytes) -> CheckedDocument:
    """An upright JPEG as it came (minus its metadata) is kept byte for byte and checked on a
    reduced decode: a 12-MP photo then costs a few MB, not a full decode and a re-encode.
    Anything else is decoded in full, turned upright and stored as a new JPEG."""
    with _decoding():
        image = _open(data)
        width, height = image.size
        if min(width, height) < MIN_SHORT_SIDE:
            raise DocumentProblem("too_small", pixels=min(width, height), minimum=MIN_SHORT_SIDE)
        if image.format == "JPEG" and image.getexif().get(_ORIENTATION, 1) == 1:
            image.draft("L", (QUALITY_SIDE, QUALITY_SIDE))  # libjpeg scales while decoding
            image.load()
            brightness, sharpness = image_quality(image)
            _judge(brightness, sharpness)
            stored = without_metadata(data)
            return CheckedDocument(
                stored, "image/jpeg", "image", width, height, brightness, sharpness
            )
    upright = _upright(data)
    brightness, sharpness = image_quality(upright)
    _judge(brightness, sharpness)
    out = io.BytesIO()
    upright.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return CheckedDocument(
        out.getvalue(), "image/jpeg", "image", upright.width, upright.height, brightness, sharpness
    )


def _judge(brightness: float, sharpness: float) -> None:
    if brightness < MIN_BRIGHTNESS:
        raise DocumentProblem("too_dark")
    if sharpness < MIN_SHARPNESS:
        raise DocumentProblem("too_blurry")


# JPEG segments that describe the photo rather than draw it: EXIF (place, time, camera), XMP,
# IPTC, other makers' blocks and comments. Kept: JFIF (APP0), an ICC profile (APP2), Adobe
# colour information (APP14) and everything that decodes the image.
_KEEP_APP = {0xE0: b"", 0xE2: b"ICC_PROFILE", 0xEE: b"Adobe"}


def without_metadata(jpeg: bytes) -> bytes:
    """The JPEG with its metadata segments removed and its image data untouched: where and with
    what a citizen took a photo is not part of their dossier."""
    out, i = bytearray(jpeg[:2]), 2
    while i + 4 <= len(jpeg):
        if jpeg[i] != 0xFF:
            raise DocumentProblem("not_a_document")
        marker = jpeg[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is the image itself
            return bytes(out + jpeg[i:])
        end = i + 2 + int.from_bytes(jpeg[i + 2 : i + 4], "big")
        is_metadata = 0xE0 <= marker <= 0xEF or marker == 0xFE
        keep_as = _KEEP_APP.get(marker)
        if not is_metadata or (keep_as is not None and jpeg[i + 4 : end].startswith(keep_as)):
            out += jpeg[i:end]
        i = end
    raise DocumentProblem("not_a_document")


def image_quality(image: Image.Image) -> tuple[float, float]:
    """(brightness, sharpness) on a 1000-px greyscale copy: cheap enough for 12-MP photos."""
    grey = image.convert("L")
    grey.thumbnail((QUALITY_SIDE, QUALITY_SIDE))
    brightness = ImageStat.Stat(grey).mean[0]
    # Variance-of-Laplacian focus measure; the border is cropped so frame edges do not count.
    edges = grey.filter(_LAPLACIAN).crop((2, 2, grey.width - 2, grey.height - 2))
    sharpness = ImageStat.Stat(edges).stddev[0]
    return brightness, sharpness


_LAPLACIAN = ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], scale=1, offset=128)
