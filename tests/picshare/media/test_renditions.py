"""render_renditions / render_three: sizes, orientation, colour, no metadata, reduced decode."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blurhash
import piexif
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from picshare.media import (
    MediaError,
    RenditionSpec,
    render_display,
    render_renditions,
    render_three,
)
from tests import imaging

SPEC = RenditionSpec()
NAMES = ("original", "large", "medium", "thumb")

Write = Callable[..., str]


@pytest.fixture
def write(tmp_path: Path) -> Callable[[bytes], str]:
    counter = iter(range(1_000_000))

    def write(data: bytes) -> str:
        path = tmp_path / f"upload-{next(counter)}"
        path.write_bytes(data)
        return str(path)

    return write


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def close_to(pixel: Any, expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


@pytest.mark.parametrize(
    "data",
    [
        imaging.jpeg_bytes(320, 240),
        imaging.png_bytes(320, 240),
        imaging.webp_bytes(320, 240),
        imaging.webp_bytes(320, 240, frames=2),
        imaging.heic_bytes(320, 240),
    ],
    ids=["jpeg", "png", "webp", "webp-animated", "heic"],
)
def test_every_format_renders_four_jpegs(write: Write, data: bytes) -> None:
    result = render_renditions(write(data), SPEC)
    assert (result.width, result.height) == (320, 240)
    assert tuple(result.renditions) == NAMES
    sizes = {}
    for name, jpeg in result.renditions.items():
        image = opened(jpeg)
        assert image.format == "JPEG"
        assert image.mode == "RGB"
        sizes[name] = image.size
        assert close_to(image.getpixel((image.width // 2, image.height // 2)), imaging.COLOR)
    assert sizes == {
        "original": (320, 240),
        "large": (320, 240),  # never upscaled
        "medium": (320, 240),
        "thumb": (150, 150),
    }


@pytest.mark.parametrize(
    ("size", "large", "medium"),
    [
        ((2400, 1600), (1080, 720), (640, 427)),
        ((1600, 2400), (1080, 1620), (640, 960)),
        ((800, 600), (800, 600), (640, 480)),
        ((600, 400), (600, 400), (600, 400)),
        ((3000, 200), (1080, 72), (640, 43)),  # panorama: the thumb needs more than 'large'
        ((40, 30), (40, 30), (40, 30)),  # smaller than the thumb
    ],
)
def test_sizes(
    write: Write, size: tuple[int, int], large: tuple[int, int], medium: tuple[int, int]
) -> None:
    result = render_renditions(write(imaging.jpeg_bytes(*size, corner=imaging.CORNER)), SPEC)
    got = {name: opened(data).size for name, data in result.renditions.items()}
    assert got == {"original": size, "large": large, "medium": medium, "thumb": (150, 150)}
    assert render_three(write(imaging.jpeg_bytes(*size)), SPEC).keys() == {
        "large",
        "medium",
        "thumb",
    }


def test_panorama_thumb_is_cut_from_enough_pixels(write: Write) -> None:
    # The thumb of a 3000x200 image is the middle 200x200 scaled down; if it
    # were cut from the 1080x72 'large' it would be blurry: check a sharp edge.
    image = imaging.picture(3000, 200)
    image.paste((255, 255, 255), (1500, 0, 3000, 200))  # right half white
    result = render_three(write(imaging.encode(image, "JPEG", quality=95)), SPEC)
    thumb = opened(result["thumb"]).convert("L")
    row = [int(thumb.getpixel((x, 75))) for x in range(150)]  # type: ignore[arg-type]
    assert row[70] < 130 < row[80]  # the edge is at x=75 and at most a few pixels wide


# Where the stored top-left corner is seen for each EXIF orientation, on a
# displayed image of width w and height h.
CORNER_AT: dict[int, Callable[[int, int], tuple[int, int]]] = {
    1: lambda w, h: (0, 0),
    2: lambda w, h: (w - 1, 0),
    3: lambda w, h: (w - 1, h - 1),
    4: lambda w, h: (0, h - 1),
    5: lambda w, h: (0, 0),
    6: lambda w, h: (w - 1, 0),
    7: lambda w, h: (w - 1, h - 1),
    8: lambda w, h: (0, h - 1),
}


def corner_colours(image: Image.Image) -> dict[tuple[int, int], tuple[int, int, int]]:
    w, h = image.size
    inset = min(w, h) // 8  # the middle of the quarter-size marker square
    points = {(0, 0): (inset, inset), (w - 1, 0): (w - 1 - inset, inset)}
    points |= {(0, h - 1): (inset, h - 1 - inset), (w - 1, h - 1): (w - 1 - inset, h - 1 - inset)}
    return {corner: image.getpixel(point) for corner, point in points.items()}  # type: ignore[misc]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_applied(write: Write, orientation: int) -> None:
    data = imaging.jpeg_bytes(400, 200, orientation=orientation, corner=imaging.CORNER)
    result = render_renditions(write(data), SPEC)
    displayed = (200, 400) if orientation >= 5 else (400, 200)
    assert (result.width, result.height) == displayed
    for name in ("original", "large", "medium"):
        image = opened(result.renditions[name])
        assert image.size == displayed
        red = CORNER_AT[orientation](*image.size)
        for corner, colour in corner_colours(image).items():
            expected = imaging.CORNER if corner == red else imaging.COLOR
            assert close_to(colour, expected), (name, corner, colour)


def test_orientation_6_large_matches_pillows_exif_transpose(write: Write) -> None:
    data = imaging.jpeg_bytes(400, 200, orientation=6, corner=imaging.CORNER)
    large = opened(render_three(write(data), SPEC)["large"])
    assert large.size == (200, 400)
    assert close_to(large.getpixel((175, 25)), imaging.CORNER)  # top right
    assert close_to(large.getpixel((25, 25)), imaging.COLOR)


def test_heic_rotation_is_applied_once(write: Write) -> None:
    # libheif applies the container's rotation; the EXIF tag must not rotate it again.
    data = imaging.heic_bytes(400, 200, orientation=6, corner=imaging.CORNER)
    result = render_renditions(write(data), SPEC)
    assert (result.width, result.height) == (200, 400)
    large = opened(result.renditions["large"])
    assert large.size == (200, 400)
    assert close_to(large.getpixel((175, 25)), imaging.CORNER)
    assert close_to(large.getpixel((25, 25)), imaging.COLOR)


def assert_no_metadata(jpeg: bytes) -> None:
    assert imaging.jpeg_metadata(jpeg) == []
    assert b"Exif" not in jpeg
    assert b"http://ns.adobe.com" not in jpeg
    assert b"ICC_PROFILE" not in jpeg
    exif = piexif.load(jpeg)
    assert not any(exif[ifd] for ifd in ("0th", "Exif", "GPS", "Interop", "1st"))
    image = opened(jpeg)
    assert not image.getexif()
    assert not {"exif", "icc_profile", "xmp", "comment", "photoshop"} & image.info.keys()


def test_all_metadata_is_dropped(write: Write) -> None:
    data = imaging.jpeg_bytes(300, 200, orientation=6, gps=True, metadata=True)
    assert len(imaging.jpeg_metadata(data)) == 4  # EXIF, XMP, ICC, comment in the upload
    result = render_renditions(write(data), SPEC)
    for jpeg in result.renditions.values():
        assert_no_metadata(jpeg)


@pytest.mark.parametrize(
    "data",
    [
        imaging.png_bytes(64, 48, alpha=True),
        imaging.encode(imaging.picture(64, 48), "WEBP", exif=imaging.exif_bytes(gps=True)),
        imaging.encode(imaging.picture(64, 48), "PNG", exif=imaging.exif_bytes(gps=True)),
    ],
    ids=["png-alpha", "webp-exif", "png-exif"],
)
def test_no_metadata_from_other_formats(write: Write, data: bytes) -> None:
    for jpeg in render_renditions(write(data), SPEC).renditions.values():
        assert_no_metadata(jpeg)


def test_alpha_is_composited_on_white(write: Write) -> None:
    result = render_renditions(write(imaging.png_bytes(64, 48, alpha=True)), SPEC)
    large = opened(result.renditions["large"])
    assert close_to(large.getpixel((8, 24)), (255, 255, 255), 8)  # transparent half
    assert close_to(large.getpixel((56, 24)), imaging.COLOR)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        # Palette with a transparent index: transparent pixels become white.
        (Image.new("P", (32, 32), 0), (255, 255, 255)),
        (Image.new("LA", (32, 32), (50, 0)), (255, 255, 255)),
        (Image.new("LA", (32, 32), (50, 255)), (50, 50, 50)),
        # 16-bit grey at half scale must come out mid-grey, not clipped to white.
        (Image.new("I;16", (32, 32), 32768), (128, 128, 128)),
        (Image.new("1", (32, 32), 1), (255, 255, 255)),
        (Image.new("L", (32, 32), 90), (90, 90, 90)),
    ],
    ids=["palette-transparent", "la-transparent", "la-opaque", "grey-16bit", "bilevel", "grey"],
)
def test_png_modes(write: Write, image: Image.Image, expected: tuple[int, int, int]) -> None:
    params = {"transparency": 0} if image.mode == "P" else {}
    result = render_three(write(imaging.encode(image, "PNG", **params)), SPEC)
    assert close_to(opened(result["large"]).getpixel((16, 16)), expected, 6)


def test_cmyk_jpeg_renders_in_rgb(write: Write) -> None:
    cmyk = Image.new("CMYK", (64, 48), (0, 255, 255, 0))  # red ink
    large = opened(render_three(write(imaging.encode(cmyk, "JPEG")), SPEC)["large"])
    assert large.mode == "RGB"
    assert close_to(large.getpixel((32, 24)), (255, 0, 0), 50)


def test_embedded_profile_is_converted_to_srgb(write: Write) -> None:
    red = imaging.picture(64, 48, color=(255, 0, 0))
    tagged = imaging.encode(red, "JPEG", icc_profile=imaging.swapped_rb_icc_profile())
    result = render_renditions(write(tagged), SPEC)
    for jpeg in result.renditions.values():
        assert close_to(opened(jpeg).getpixel((10, 10)), (0, 0, 255), 30)
        assert_no_metadata(jpeg)


@pytest.mark.parametrize(
    "profile",
    [imaging.srgb_icc_profile(), b"not a profile", None],
    ids=["srgb", "garbage", "lab"],
)
def test_srgb_broken_or_mismatched_profiles_leave_colours_alone(
    write: Write, profile: bytes | None
) -> None:
    if profile is None:  # a valid profile for another colour space
        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    tagged = imaging.encode(imaging.picture(64, 48), "JPEG", icc_profile=profile)
    large = opened(render_three(write(tagged), SPEC)["large"])
    assert close_to(large.getpixel((10, 10)), imaging.COLOR, 8)


def test_blurhash(write: Write) -> None:
    result = render_renditions(write(imaging.photo_jpeg_bytes(400, 300)), SPEC)
    assert len(result.blurhash) == 28  # 4x3 components
    assert blurhash.components(result.blurhash) == (4, 3)
    pixels = blurhash.decode(result.blurhash, 8, 6)
    assert len(pixels) == 6
    assert len(pixels[0]) == 8


def test_blurhash_of_a_flat_image_is_its_colour(write: Write) -> None:
    result = render_renditions(write(imaging.png_bytes(64, 48)), SPEC)
    # (BlurHash's cosine basis has no half-pixel offset, so even a flat image
    # gets small AC terms: compare the average, not one decoded pixel.)
    pixels = [p for row in blurhash.decode(result.blurhash, 16, 12) for p in row]
    average = [sum(p[c] for p in pixels) / len(pixels) for c in range(3)]
    assert close_to(average, imaging.COLOR, 4)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (imaging.text_bytes(), "unsupported"),
        (imaging.gif_bytes(), "unsupported"),
        (imaging.truncated_jpeg_bytes(), "corrupt"),
        (imaging.bomb_png_bytes(), "too_many_pixels"),
    ],
    ids=["text", "gif", "truncated", "bomb"],
)
def test_bad_files_raise_media_error(write: Write, data: bytes, kind: str) -> None:
    path = write(data)
    for render in (render_renditions, render_three):
        with pytest.raises(MediaError) as info:
            render(path, SPEC)
        assert info.value.kind == kind


@pytest.fixture
def jpeg_loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The size every JPEG is decoded at (after draft), in call order."""
    sizes: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.load

    def load(self: JpegImagePlugin.JpegImageFile) -> Any:
        if self.tile:  # Pillow calls load() again on loaded images; those are no-ops
            sizes.append(self.size)
        return original(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", load)
    return sizes


def test_three_renditions_come_from_one_reduced_decode(
    write: Write, jpeg_loads: list[tuple[int, int]]
) -> None:
    path = write(imaging.photo_jpeg_bytes(4000, 3000))
    result = render_three(path, SPEC)
    # 4000 // 1080 = 3, so libjpeg decodes at 1/2: the largest scale that
    # does not go below 1080 px wide.
    assert jpeg_loads == [(2000, 1500)]
    assert opened(result["large"]).size == (1080, 810)

    jpeg_loads.clear()
    render_renditions(path, SPEC)
    # ...and only the 'original' needs the full decode, done afterwards.
    assert jpeg_loads == [(2000, 1500), (4000, 3000)]


def test_display_renditions_need_no_full_size_work(
    write: Write, jpeg_loads: list[tuple[int, int]]
) -> None:
    path = write(imaging.photo_jpeg_bytes(4000, 3000))
    result = render_display(path, SPEC)
    assert jpeg_loads == [(2000, 1500)]  # the one reduced decode, nothing at full size
    assert (result.width, result.height) == (4000, 3000)
    assert {name: opened(data).size for name, data in result.renditions.items()} == {
        "large": (1080, 810),
        "medium": (640, 480),
        "thumb": (150, 150),
    }
    assert blurhash.components(result.blurhash) == (4, 3)
    for jpeg in result.renditions.values():
        assert_no_metadata(jpeg)


def without_jfif(jpeg: bytes) -> bytes:
    """The JPEG with its APP0 JFIF header removed, as many cameras write them."""
    assert jpeg[2:4] == b"\xff\xe0"
    return jpeg[:2] + jpeg[4 + int.from_bytes(jpeg[4:6], "big") :]


@pytest.mark.parametrize("jfif", [True, False])
def test_ycbcr_jpeg_keeps_its_colours(write: Write, jfif: bool) -> None:
    # Decoded and encoded as YCbCr, never converted: colours and corner still right.
    data = imaging.jpeg_bytes(2400, 1600, orientation=6, corner=imaging.CORNER)
    result = render_display(write(data if jfif else without_jfif(data)), SPEC)
    thumb = opened(result.renditions["thumb"])
    assert close_to(thumb.getpixel((75, 75)), imaging.COLOR)  # a centre crop: no corner
    for name in ("large", "medium"):
        image = opened(result.renditions[name])
        assert image.mode == "RGB"
        colours = corner_colours(image)
        assert close_to(colours[(image.width - 1, 0)], imaging.CORNER), name
        assert close_to(colours[(0, image.height - 1)], imaging.COLOR), name


def test_portrait_decode_is_reduced_in_stored_orientation(
    write: Write, jpeg_loads: list[tuple[int, int]]
) -> None:
    # Stored 4800x2400 with orientation 6: displayed 2400x4800, so 'large' is
    # 1080x2160 and the stored-orientation decode needs >= 2160x1080: 1/2.
    path = write(imaging.jpeg_bytes(4800, 2400, orientation=6))
    result = render_three(path, SPEC)
    assert jpeg_loads == [(2400, 1200)]
    assert opened(result["large"]).size == (1080, 2160)


def test_images_smaller_than_large_decode_once(
    write: Write, jpeg_loads: list[tuple[int, int]]
) -> None:
    result = render_renditions(write(imaging.jpeg_bytes(900, 600)), SPEC)
    assert jpeg_loads == [(900, 600)]
    assert opened(result.renditions["original"]).size == (900, 600)


def test_custom_spec(write: Write) -> None:
    spec = RenditionSpec(large_width=500, medium_width=200, thumb_size=64, jpeg_quality=70)
    result = render_three(write(imaging.jpeg_bytes(1000, 800)), spec)
    assert {name: opened(data).size for name, data in result.items()} == {
        "large": (500, 400),
        "medium": (200, 160),
        "thumb": (64, 64),
    }
