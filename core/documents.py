"""Checks on every photo or PDF a citizen sends before it joins a dossier.

A failed check names exactly what to retake (`DocumentProblem.reason` is a message key under
`templates/messages/document.toml`). Content is judged by its bytes, never by its file name.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps, ImageStat

MAX_BYTES = 20 * 1024 * 1024
MIN_SHORT_SIDE = 800
MAX_PIXELS = 50_000_000  # well above a 48-megapixel phone photo; anything larger is a bomb
MIN_BRIGHTNESS = 40.0  # mean luminance 0–255
MIN_SHARPNESS = 4.0  # Laplacian spread at 1000 px: a sharp page ~45, a nearly blank one ~5
JPEG_QUALITY = 88


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


def check_document(
    data: bytes, accepted_kinds: tuple[str, ...] = ("image", "pdf")
) -> CheckedDocument:
    """Accept a real image or PDF within limits; images come back upright as JPEG."""
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
    return _check_image(data)


def open_image(data: bytes) -> Image.Image:
    """A real photo or scan, fully decoded and upright; `DocumentProblem` for anything else
    (not an image, too many pixels, a decompression bomb)."""
    if len(data) > MAX_BYTES:
        raise DocumentProblem("too_large", limit_mb=MAX_BYTES // (1024 * 1024))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ("JPEG", "PNG", "WEBP", "HEIF", "MPO", "BMP", "TIFF"):
                raise DocumentProblem("not_a_document")
            if image.width * image.height > MAX_PIXELS:
                raise DocumentProblem("too_many_pixels")
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DocumentProblem("too_many_pixels") from None
    except DocumentProblem:
        raise
    except Exception:  # Pillow raises many kinds for broken or non-image bytes
        raise DocumentProblem("not_a_document") from None
    return ImageOps.exif_transpose(image).convert("RGB")


def _check_image(data: bytes) -> CheckedDocument:
    upright = open_image(data)
    short_side = min(upright.size)
    if short_side < MIN_SHORT_SIDE:
        raise DocumentProblem("too_small", pixels=short_side, minimum=MIN_SHORT_SIDE)
    brightness, sharpness = image_quality(upright)
    if brightness < MIN_BRIGHTNESS:
        raise DocumentProblem("too_dark")
    if sharpness < MIN_SHARPNESS:
        raise DocumentProblem("too_blurry")
    out = io.BytesIO()
    upright.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return CheckedDocument(
        out.getvalue(), "image/jpeg", "image", upright.width, upright.height, brightness, sharpness
    )


def image_quality(image: Image.Image) -> tuple[float, float]:
    """(brightness, sharpness) on a 1000-px greyscale copy: cheap enough for 12-MP photos."""
    grey = image.convert("L")
    grey.thumbnail((1000, 1000))
    brightness = ImageStat.Stat(grey).mean[0]
    # Variance-of-Laplacian focus measure; the border is cropped so frame edges do not count.
    edges = grey.filter(_LAPLACIAN).crop((2, 2, grey.width - 2, grey.height - 2))
    sharpness = ImageStat.Stat(edges).stddev[0]
    return brightness, sharpness


_LAPLACIAN = ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], scale=1, offset=128)
