"""strip_metadata: the same coded pixels, none of the metadata, nothing after EOI."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from picshare.media.jpeg_segments import MalformedJpeg, strip_metadata
from tests import imaging


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


def app_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def with_segment_after_soi(data: bytes, segment: bytes) -> bytes:
    return data[:2] + segment + data[2:]


def test_every_metadata_segment_goes_and_the_pixels_stay() -> None:
    data = imaging.jpeg_bytes(300, 200, gps=True, metadata=True, corner=imaging.CORNER)
    assert len(imaging.jpeg_metadata(data)) == 4  # EXIF, XMP, ICC, comment
    stripped = strip_metadata(data)
    assert imaging.jpeg_metadata(stripped) == []
    assert b"Exif" not in stripped and b"ns.adobe.com" not in stripped
    assert b"ICC_PROFILE" not in stripped and b"secret comment" not in stripped
    assert pixels(stripped) == pixels(data)  # byte for byte the same decode


def test_odd_app_segments_and_jfxx_go_jfif_and_adobe_stay() -> None:
    data = imaging.jpeg_bytes(64, 48)
    for segment in (
        app_segment(0xED, b"Photoshop 3.0\x00 8BIM IPTC city"),  # APP13
        app_segment(0xE2, b"FPXR\x00 flashpix"),  # APP2 FlashPix
        app_segment(0xE0, b"JFXX\x00\x10 thumbnail"),
        app_segment(0xEF, b"vendor private"),
    ):
        data = with_segment_after_soi(data, segment)
    adobe = app_segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01")
    data = with_segment_after_soi(data, adobe)
    stripped = strip_metadata(data)
    assert imaging.jpeg_metadata(stripped) == ["APP14 Adobe"]
    assert b"JFIF\x00" in stripped and b"JFXX" not in stripped
    assert pixels(stripped) == pixels(data)


def test_what_follows_eoi_is_dropped() -> None:
    data = imaging.jpeg_bytes(64, 48)
    # A motion photo's video, or an MPF second image, is appended after EOI.
    trailer = b"\x00\x00\x00\x18ftypmp42 GPS 52.37N" + imaging.jpeg_bytes(16, 16, gps=True)
    stripped = strip_metadata(data + trailer)
    assert stripped.endswith(b"\xff\xd9")
    assert stripped == strip_metadata(data)
    assert b"GPS" not in stripped


@pytest.mark.parametrize(
    "params",
    [
        {"progressive": True},  # several scans, tables between them
        {"restart_marker_blocks": 4},  # RSTn inside the scan
        {"quality": 100, "subsampling": 0},  # many 0xFF 0x00 stuffings
    ],
    ids=["progressive", "restart-markers", "q100"],
)
def test_scans_are_copied_whole(params: dict[str, object]) -> None:
    photo = imaging.photo_like(320, 240)
    data = imaging.encode(photo, "JPEG", exif=imaging.exif_bytes(gps=True), **params)
    stripped = strip_metadata(data)
    assert imaging.jpeg_metadata(stripped) == []
    assert pixels(stripped) == pixels(data)
    assert len(data) - len(stripped) < 1000  # only the EXIF block went


def test_metadata_between_progressive_scans_goes_too() -> None:
    data = imaging.encode(imaging.photo_like(160, 120), "JPEG", progressive=True)
    second_scan = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)
    comment = app_segment(0xFE, b"hidden GPS 52.37N")
    data = data[:second_scan] + comment + data[second_scan:]
    stripped = strip_metadata(data)
    assert b"hidden" not in stripped
    assert pixels(stripped) == pixels(data)


@pytest.mark.parametrize(
    "data",
    [
        b"not a jpeg",
        b"\xff\xd8",  # nothing after SOI
        imaging.truncated(imaging.jpeg_bytes(64, 48)),
        b"\xff\xd8\xff\xe1\xff\xff" + b"\x00" * 10,  # a segment longer than the file
        b"\xff\xd8\xff\xd9",  # no scan
    ],
    ids=["text", "soi-only", "truncated", "overrun", "no-scan"],
)
def test_malformed_files_raise(data: bytes) -> None:
    with pytest.raises(MalformedJpeg):
        strip_metadata(data)
