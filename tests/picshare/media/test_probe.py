"""probe_image: content-based type detection, pixel limits and the decode check."""

from __future__ import annotations

import pickle
import resource
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from picshare.media import ACCEPTED, MediaError, ProbeResult, probe_image
from picshare.media.probe import sniff_format
from tests import imaging

MAX_PIXELS = 89_478_485


@pytest.fixture
def write(tmp_path: Path) -> Callable[[bytes, str], str]:
    """Store bytes under a given file name and return the path."""

    def write(data: bytes, name: str = "upload.bin") -> str:
        path = tmp_path / name
        path.write_bytes(data)
        return str(path)

    return write


Write = Callable[..., str]


@pytest.mark.parametrize(
    ("data", "fmt", "mime"),
    [
        (imaging.jpeg_bytes(64, 48), "jpeg", "image/jpeg"),
        (imaging.png_bytes(64, 48), "png", "image/png"),
        (imaging.png_bytes(64, 48, alpha=True), "png", "image/png"),
        (imaging.webp_bytes(64, 48), "webp", "image/webp"),
        (imaging.webp_bytes(64, 48, frames=3), "webp", "image/webp"),
        (imaging.heic_bytes(64, 48), "heic", "image/heic"),
    ],
    ids=["jpeg", "png", "png-alpha", "webp", "webp-animated", "heic"],
)
def test_accepted_formats_probe_by_content(write: Write, data: bytes, fmt: str, mime: str) -> None:
    # A misleading extension: the type must come from the bytes alone.
    result = probe_image(write(data, "photo.gif"), MAX_PIXELS)
    assert result == ProbeResult(format=fmt, mime=mime, width=64, height=48)


def test_accepted_set() -> None:
    assert {"jpeg", "png", "webp", "heic"} <= ACCEPTED <= {"jpeg", "png", "webp", "heic", "avif"}


@pytest.mark.parametrize(
    "data",
    [
        imaging.text_bytes(),
        imaging.gif_bytes(),
        imaging.encode(imaging.picture(16, 16), "TIFF"),
        imaging.encode(imaging.picture(16, 16), "BMP"),
        imaging.encode(imaging.picture(16, 16), "PDF"),
        b"",
        b"\xff\xd8",  # too short to be a JPEG
    ],
    ids=["text", "gif", "tiff", "bmp", "pdf", "empty", "two-bytes"],
)
def test_other_files_are_unsupported(write: Write, data: bytes) -> None:
    with pytest.raises(MediaError) as info:
        probe_image(write(data, "photo.jpg"), MAX_PIXELS)
    assert info.value.kind == "unsupported"


@pytest.mark.skipif("avif" in ACCEPTED, reason="this Pillow build reads AVIF")
def test_avif_is_unsupported_without_a_decoder(write: Write) -> None:
    avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf" + b"\0" * 100
    with pytest.raises(MediaError) as info:
        probe_image(write(avif), MAX_PIXELS)
    assert info.value.kind == "unsupported"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", "heic"),
        (b"\0\0\0\x18ftypmif1\0\0\0\0mif1heic", "heic"),
        (b"\0\0\0\x14ftypmif1\0\0\0\0mif1", "heic"),
        (b"\0\0\0\x18ftypmif1\0\0\0\0mif1avif", "avif"),
        (b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf", "avif"),
        (b"\0\0\0\x18ftypisom\0\0\0\0isommp41", None),  # an MP4 video
        (b"\0\0\0\x14ftypqt  \0\0\0\0qt  ", None),
        (b"RIFF\0\0\0\0WAVEfmt ", None),
    ],
)
def test_sniff_isobmff_and_riff(head: bytes, expected: str | None) -> None:
    assert sniff_format(head) == expected


@pytest.mark.parametrize(
    "data",
    [
        imaging.truncated_jpeg_bytes(),
        imaging.truncated(imaging.encode(imaging.photo_like(200, 150), "PNG")),
        imaging.truncated(imaging.heic_bytes(128, 96), keep=0.7),
        imaging.truncated(imaging.encode(imaging.photo_like(200, 150), "WEBP")),
        b"\xff\xd8\xff\xe0" + b"garbage" * 50,
        b"\x89PNG\r\n\x1a\n" + b"garbage" * 50,
    ],
    ids=["jpeg", "png", "heic", "webp", "jpeg-magic-only", "png-magic-only"],
)
def test_damaged_files_are_corrupt(write: Write, data: bytes) -> None:
    with pytest.raises(MediaError) as info:
        probe_image(write(data), MAX_PIXELS)
    assert info.value.kind == "corrupt"


def test_truncated_jpeg_is_corrupt_even_if_pillow_was_told_to_be_lenient(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(MediaError) as info:
        probe_image(write(imaging.truncated_jpeg_bytes()), MAX_PIXELS)
    assert info.value.kind == "corrupt"


@pytest.mark.parametrize(
    "size",
    [(20_000, 20_000), (10_000, 10_000)],
    ids=["over-twice-the-limit", "just-over-the-limit"],
)
def test_bomb_is_refused_before_decoding(write: Write, size: tuple[int, int]) -> None:
    path = write(imaging.bomb_png_bytes(*size))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    with pytest.raises(MediaError) as info:
        probe_image(path, MAX_PIXELS)
    elapsed = time.perf_counter() - start
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert info.value.kind == "too_many_pixels"
    # Decoding would allocate 100-400 MB and take seconds.
    assert elapsed < 0.5
    assert grown_mib < 50


def test_own_limit_applies_below_pillows(write: Write) -> None:
    path = write(imaging.png_bytes(64, 48))
    assert probe_image(path, 64 * 48).width == 64
    with pytest.raises(MediaError) as info:
        probe_image(path, 64 * 48 - 1)
    assert info.value.kind == "too_many_pixels"


def test_pillows_global_limit_does_not_interfere(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone lowered Pillow's limit below our setting: ours wins.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert probe_image(write(imaging.jpeg_bytes(64, 48)), 10_000).height == 48


@pytest.mark.parametrize(
    ("orientation", "size"),
    [(1, (400, 200)), (3, (400, 200)), (5, (200, 400)), (6, (200, 400)), (8, (200, 400))],
)
def test_size_is_as_displayed(write: Write, orientation: int, size: tuple[int, int]) -> None:
    result = probe_image(write(imaging.jpeg_bytes(400, 200, orientation=orientation)), MAX_PIXELS)
    assert (result.width, result.height) == size


def test_nonsense_orientation_is_ignored(write: Write) -> None:
    result = probe_image(write(imaging.jpeg_bytes(40, 20, orientation=99)), MAX_PIXELS)
    assert (result.width, result.height) == (40, 20)


def test_missing_file_is_not_a_media_error(tmp_path: Path) -> None:
    # A server-side bug, not a bad upload: it must not turn into a 4xx.
    with pytest.raises(FileNotFoundError):
        probe_image(str(tmp_path / "gone.jpg"), MAX_PIXELS)


def test_media_error_pickles_with_its_kind() -> None:
    error = MediaError("corrupt", "image data is truncated")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, just made
    assert isinstance(copy, MediaError)
    assert (copy.kind, copy.message) == ("corrupt", "image data is truncated")
    assert str(copy) == "corrupt: image data is truncated"


def test_media_error_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="unknown MediaError kind"):
        MediaError("bad", "x")
