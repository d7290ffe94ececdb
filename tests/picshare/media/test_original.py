"""make_original: the upload's own pixels when they can be served as they are, else a re-encode."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from picshare.media import MediaError, RenditionSpec, make_original
from tests import imaging
from tests.picshare.media.test_renditions import (
    CORNER_AT,
    assert_no_metadata,
    close_to,
    corner_colours,
    opened,
)

SPEC = RenditionSpec()
Write = Callable[[bytes], str]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    def write(data: bytes) -> str:
        path = tmp_path / "upload"
        path.write_bytes(data)
        return str(path)

    return write


def decoded(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


@pytest.mark.parametrize("orientation", [None, 1])
def test_upright_jpeg_is_the_upload_without_metadata(write: Write, orientation: int | None) -> None:
    data = imaging.jpeg_bytes(
        400, 200, orientation=orientation, gps=True, metadata=True, corner=imaging.CORNER
    )
    result = make_original(write(data), SPEC)
    assert result.lossless
    assert_no_metadata(result.data)
    assert opened(result.data).size == (400, 200)
    assert decoded(result.data) == decoded(data)  # not re-encoded: the same pixels


def test_photo_sized_jpeg_is_copied_not_decoded(write: Write) -> None:
    data = imaging.encode(
        imaging.photo_like(1600, 1200), "JPEG", quality=90, exif=imaging.exif_bytes(gps=True)
    )
    result = make_original(write(data), SPEC)
    assert result.lossless
    assert len(data) - len(result.data) < 1000  # just the EXIF block went
    assert_no_metadata(result.data)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_other_orientations_are_turned_upright(write: Write, orientation: int) -> None:
    data = imaging.jpeg_bytes(400, 200, orientation=orientation, gps=True, corner=imaging.CORNER)
    result = make_original(write(data), SPEC)
    assert not result.lossless
    assert_no_metadata(result.data)
    image = opened(result.data)
    assert image.size == ((200, 400) if orientation >= 5 else (400, 200))
    red = CORNER_AT[orientation](*image.size)
    for corner, colour in corner_colours(image).items():
        assert close_to(colour, imaging.CORNER if corner == red else imaging.COLOR)


def test_wide_gamut_profile_is_converted_not_kept(write: Write) -> None:
    red = imaging.picture(64, 48, color=(255, 0, 0))
    tagged = imaging.encode(red, "JPEG", icc_profile=imaging.swapped_rb_icc_profile())
    result = make_original(write(tagged), SPEC)
    assert not result.lossless
    assert_no_metadata(result.data)
    assert close_to(opened(result.data).getpixel((10, 10)), (0, 0, 255), 30)


def test_srgb_profile_is_dropped_losslessly(write: Write) -> None:
    tagged = imaging.encode(imaging.picture(64, 48), "JPEG", icc_profile=imaging.srgb_icc_profile())
    result = make_original(write(tagged), SPEC)
    assert result.lossless
    assert_no_metadata(result.data)


@pytest.mark.parametrize(
    "data",
    [
        imaging.png_bytes(120, 80),
        imaging.webp_bytes(120, 80),
        imaging.heic_bytes(120, 80),
        imaging.encode(Image.new("CMYK", (120, 80), (0, 255, 255, 0)), "JPEG"),
    ],
    ids=["png", "webp", "heic", "cmyk-jpeg"],
)
def test_other_images_are_re_encoded(write: Write, data: bytes) -> None:
    result = make_original(write(data), SPEC)
    assert not result.lossless
    image = opened(result.data)
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (120, 80))
    assert_no_metadata(result.data)


def test_bad_files_raise_media_error(write: Write) -> None:
    with pytest.raises(MediaError) as info:
        make_original(write(imaging.text_bytes()), SPEC)
    assert info.value.kind == "unsupported"
