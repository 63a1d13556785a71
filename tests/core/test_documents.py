"""Every file is checked by its content before it joins a dossier."""

from __future__ import annotations

import io
import threading
import time

import pytest
from PIL import Image, ImageDraw

from core.documents import (
    IMAGE_CHECKS,
    MAX_BYTES,
    MAX_CONCURRENT_CHECKS,
    MAX_STORED_PIXELS,
    DocumentProblem,
    check_document,
)
from tests import images


def test_a_good_photo_passes_and_comes_back_as_jpeg() -> None:
    checked = check_document(images.good_jpeg())
    assert checked.kind == "image" and checked.content_type == "image/jpeg"
    assert (checked.width, checked.height) == (1200, 1600)


def test_exif_orientation_is_applied() -> None:
    checked = check_document(images.rotated_jpeg())
    upright = Image.open(io.BytesIO(checked.data))
    assert upright.size == (1200, 1600)  # portrait, as the citizen saw it


def test_pdf_by_content_not_by_name() -> None:
    assert check_document(images.small_pdf()).content_type == "application/pdf"
    with pytest.raises(DocumentProblem) as raised:
        check_document(images.small_pdf(), accepted_kinds=("image",))
    assert raised.value.reason == "pdf_not_accepted"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello, not an image", "not_a_document"),
        (b"", "not_a_document"),
        (b"GIF89a" + b"\x00" * 100, "not_a_document"),
        (images.tiny_jpeg(), "too_small"),
        (images.dark_jpeg(), "too_dark"),
        (images.blurred_jpeg(), "too_blurry"),
        (images.bomb_png(), "too_many_pixels"),
        (b"%PDF-1.4 truncated", "pdf_damaged"),
        (b"\xff" * (MAX_BYTES + 1), "too_large"),
    ],
    ids=["text", "empty", "gif-junk", "tiny", "dark", "blurred", "bomb", "broken-pdf", "huge"],
)
def test_bad_files_are_refused_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DocumentProblem) as raised:
        check_document(data)
    assert raised.value.reason == reason


def test_location_and_camera_details_are_removed_and_the_picture_kept() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (11.0, 18.0, 36.0)}  # GPS: latitude of Tây Ninh
    original = images.jpeg(images.document_photo(), exif=exif.tobytes(), comment=b"home")
    assert Image.open(io.BytesIO(original)).getexif()  # the camera wrote them

    checked = check_document(original)
    stored = Image.open(io.BytesIO(checked.data))
    assert not stored.getexif()
    assert "comment" not in stored.info
    assert stored.tobytes() == Image.open(io.BytesIO(original)).tobytes()  # not re-encoded
    assert len(checked.data) < len(original)


def test_a_png_scan_is_stored_as_jpeg() -> None:
    out = io.BytesIO()
    images.document_photo().save(out, "PNG")
    checked = check_document(out.getvalue())
    assert Image.open(io.BytesIO(checked.data)).format == "JPEG"
    assert (checked.width, checked.height) == (1200, 1600)


def test_a_photo_cut_short_in_transfer_is_refused() -> None:
    whole = images.good_jpeg()
    with pytest.raises(DocumentProblem) as raised:
        check_document(whole[: len(whole) // 2])
    assert raised.value.reason == "not_a_document"


def _dense_bilevel_png(width: int = 7000, height: int = 7000) -> bytes:
    """A 1-bit scan just under the pixel limit, ruled densely: 15 KB that decode to 49 MP."""
    image = Image.new("1", (width, height), 1)
    draw = ImageDraw.Draw(image)
    for y in range(0, height, 4):
        draw.line([(0, y), (width, y)], fill=0)
    for x in range(0, width, 9):
        draw.line([(x, 0), (x, height)], fill=0)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def test_a_dense_bilevel_png_is_reduced_before_it_is_expanded() -> None:
    """Before: expanded to 49 MP of RGB (147 MB), ~2 s, and stored as a 28 MB JPEG."""
    data = _dense_bilevel_png()
    assert len(data) < 100_000
    started = time.monotonic()
    checked = check_document(data)
    took = time.monotonic() - started
    assert checked.width * checked.height <= MAX_STORED_PIXELS
    assert checked.width == checked.height  # the proportions kept
    assert len(checked.data) < 4 * 1024 * 1024
    assert took < 5  # a loose bound on a shared machine; ~0.7 s when idle


def test_an_image_with_too_many_bits_to_decode_is_refused_before_decoding() -> None:
    """40 MP of CMYK is 160 MB decoded: over MAX_DECODED_BYTES, under the pixel limit."""
    out = io.BytesIO()
    Image.new("CMYK", (8000, 5000), (0, 0, 0, 0)).save(out, "TIFF", compression="tiff_lzw")
    with pytest.raises(DocumentProblem) as refused:
        check_document(out.getvalue())
    assert refused.value.reason == "too_many_pixels"


def test_image_checks_wait_for_a_free_slot() -> None:
    """At most MAX_CONCURRENT_CHECKS decodes run at once in a process: with every slot taken,
    a check waits; it runs as soon as one is free."""
    photo = images.good_jpeg(7)
    done = threading.Event()
    for _ in range(MAX_CONCURRENT_CHECKS):
        IMAGE_CHECKS.acquire()
    try:
        worker = threading.Thread(target=lambda: (check_document(photo), done.set()))
        worker.start()
        assert not done.wait(0.5)  # every slot busy: it waits
        IMAGE_CHECKS.release()
        assert done.wait(10)
        worker.join()
    finally:
        for _ in range(MAX_CONCURRENT_CHECKS - 1):
            IMAGE_CHECKS.release()
