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
