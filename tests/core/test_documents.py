"""Every file is checked by its content before it joins a dossier."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from core.documents import MAX_BYTES, DocumentProblem, check_document
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
