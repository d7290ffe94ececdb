"""Test images made in memory: each accepted format, the bad files, and checks on outputs.

Every ``*_bytes`` function returns a complete file as bytes (write it to
``tmp_path`` when a path is needed). Images are small unless asked otherwise,
so tests that use them stay fast. ``jpeg_metadata`` lists what a JPEG carries
besides pixels, to prove that nothing of an upload's metadata is served.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from typing import Any

import piexif
import pillow_heif
from PIL import Image, ImageChops, ImageCms, ImageDraw

RGB = tuple[int, int, int]

COLOR: RGB = (40, 120, 200)  # the default fill: a blue far from white, red and grey
CORNER: RGB = (255, 0, 0)  # marks the stored top-left corner in orientation tests

# Where the test photos were "taken": Amsterdam, in EXIF rational form.
GPS_LATITUDE = ((52, 1), (22, 1), (1234, 100))
GPS_LONGITUDE = ((4, 1), (53, 1), (4321, 100))


def picture(
    width: int, height: int, *, color: RGB = COLOR, corner: RGB | None = None
) -> Image.Image:
    """An RGB image of ``color``; with ``corner``, a square of that colour at the top left.

    The square's side is a quarter of the short side, large enough to survive
    JPEG chroma subsampling and every resize.
    """
    image = Image.new("RGB", (width, height), color)
    if corner is not None:
        side = max(1, min(width, height) // 4)
        ImageDraw.Draw(image).rectangle((0, 0, side - 1, side - 1), fill=corner)
    return image


def encode(image: Image.Image, format: str, **params: Any) -> bytes:
    """``image`` saved in ``format`` (any Pillow writer: GIF, TIFF, BMP, PDF...)."""
    out = io.BytesIO()
    image.save(out, format=format, **params)
    return out.getvalue()


def exif_bytes(*, orientation: int | None = None, gps: bool = False) -> bytes:
    """A raw EXIF block (a JPEG APP1 payload): camera tags, optional orientation and GPS."""
    zeroth: dict[int, Any] = {
        piexif.ImageIFD.Make: b"PicShare Test Camera",
        piexif.ImageIFD.Model: b"Model 1",
        piexif.ImageIFD.Software: b"tests/imaging.py",
    }
    if orientation is not None:
        zeroth[piexif.ImageIFD.Orientation] = orientation
    exif: dict[str, Any] = {
        "0th": zeroth,
        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2024:05:01 12:34:56"},
        "GPS": {},
    }
    if gps:
        exif["GPS"] = {
            piexif.GPSIFD.GPSLatitudeRef: b"N",
            piexif.GPSIFD.GPSLatitude: GPS_LATITUDE,
            piexif.GPSIFD.GPSLongitudeRef: b"E",
            piexif.GPSIFD.GPSLongitude: GPS_LONGITUDE,
        }
    data: bytes = piexif.dump(exif)
    return data


def jpeg_bytes(
    width: int,
    height: int,
    *,
    orientation: int | None = None,
    gps: bool = False,
    color: RGB = COLOR,
    corner: RGB | None = None,
    metadata: bool = False,
    quality: int = 90,
) -> bytes:
    """A JPEG with EXIF (camera tags, optional orientation and GPS).

    ``metadata=True`` adds every other kind of metadata a phone writes: an
    XMP packet, a COM comment and an (sRGB) ICC profile.
    """
    image = picture(width, height, color=color, corner=corner)
    params: dict[str, Any] = {
        "quality": quality,
        "exif": exif_bytes(orientation=orientation, gps=gps),
    }
    if metadata:
        params["xmp"] = (
            b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
            b' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/"'
            b' exif:GPSLatitude="52,22.2N"/></rdf:RDF></x:xmpmeta>'
        )
        params["comment"] = b"secret comment: 52.37N 4.89E"
        params["icc_profile"] = srgb_icc_profile()
    return encode(image, "JPEG", **params)


def png_bytes(
    width: int,
    height: int,
    *,
    color: RGB = COLOR,
    alpha: bool = False,
    corner: RGB | None = None,
) -> bytes:
    """A PNG; with ``alpha``, RGBA whose left half is fully transparent."""
    image = picture(width, height, color=color, corner=corner)
    if alpha:
        image.putalpha(Image.new("L", image.size, 255))
        ImageDraw.Draw(image).rectangle((0, 0, width // 2 - 1, height - 1), fill=(0, 0, 0, 0))
    return encode(image, "PNG")


def webp_bytes(width: int, height: int, *, color: RGB = COLOR, frames: int = 1) -> bytes:
    """A lossy WebP; ``frames`` > 1 makes an animation whose later frames are black."""
    image = picture(width, height, color=color)
    if frames == 1:
        return encode(image, "WEBP", quality=90)
    rest = [Image.new("RGB", image.size, (0, 0, 0)) for _ in range(frames - 1)]
    return encode(image, "WEBP", quality=90, save_all=True, append_images=rest, duration=100)


def heic_bytes(
    width: int,
    height: int,
    *,
    color: RGB = COLOR,
    corner: RGB | None = None,
    orientation: int | None = None,
) -> bytes:
    """A HEIC (HEVC in HEIF) encoded by pillow_heif's x265.

    ``orientation`` (EXIF numbering) is written the way phones do it: as the
    container's rotation/mirror boxes (irot/imir), which readers apply.
    """
    pillow_heif.register_heif_opener()  # idempotent; Pillow's "HEIF" writer comes with it
    params: dict[str, Any] = {"quality": 90}
    if orientation is not None:
        params["exif"] = exif_bytes(orientation=orientation)
    return encode(picture(width, height, color=color, corner=corner), "HEIF", **params)


def gif_bytes(width: int = 32, height: int = 32) -> bytes:
    """A GIF: a real image, but not a format PicShare accepts."""
    return encode(picture(width, height), "GIF")


def text_bytes() -> bytes:
    """A text file, e.g. for uploading as ``photo.jpg``."""
    return b"This is not a photo, whatever its name says.\n" * 20


def noise_jpeg_bytes(width: int, height: int, *, quality: int = 90) -> bytes:
    """A JPEG of pure noise: nearly incompressible, so its size is predictable (~2 bits/pixel)."""
    noise = Image.merge("RGB", [Image.effect_noise((width, height), 64) for _ in range(3)])
    return encode(noise, "JPEG", quality=quality)


def photo_like(width: int, height: int, *, seed: int = 0) -> Image.Image:
    """Gradients, shapes with edges, blotchy texture and sensor grain: compresses like a photo."""
    rng = random.Random(seed)
    ramp = Image.linear_gradient("L").resize((width, height))
    image = Image.merge(
        "RGB",
        (
            ramp,
            Image.radial_gradient("L").resize((width, height)),
            ramp.transpose(Image.Transpose.ROTATE_90).resize((width, height)),
        ),
    )
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.randrange(width), rng.randrange(height)
        size = rng.randrange(max(2, min(width, height) // 20), max(3, min(width, height) // 4))
        fill = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x, y, x + size, y + size // 2), fill=fill)
    texture = Image.effect_noise((max(1, width // 8), max(1, height // 8)), 40)
    detail = ImageChops.add(
        texture.resize((width, height), Image.Resampling.BICUBIC),
        Image.effect_noise((width, height), 4),
        scale=2.0,
    )
    return Image.merge("RGB", [ImageChops.add(band, detail, offset=-128) for band in image.split()])


def photo_jpeg_bytes(width: int, height: int, *, quality: int = 90, seed: int = 0) -> bytes:
    """``photo_like`` as a JPEG (a 4000x3000 one is ~2.3 MB, like a phone photo)."""
    return encode(photo_like(width, height, seed=seed), "JPEG", quality=quality)


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first ``keep`` fraction of a file, as an interrupted upload leaves it."""
    return data[: int(len(data) * keep)]


def truncated_jpeg_bytes() -> bytes:
    """A JPEG cut in the middle of its entropy-coded data (the header is intact)."""
    return truncated(noise_jpeg_bytes(256, 192))


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


@functools.cache
def bomb_png_bytes(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid 1-bit PNG of width x height black pixels: ~50 KB on disk, 400 MP when decoded.

    Written chunk by chunk, because making it with Pillow would allocate the
    very memory the bomb is about.
    """
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_piece = 256
    pieces = [
        compressor.compress(row * min(rows_per_piece, height - y))
        for y in range(0, height, rows_per_piece)
    ]
    pieces.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(pieces))
        + _png_chunk(b"IEND", b"")
    )


@functools.cache
def srgb_icc_profile() -> bytes:
    """The sRGB ICC profile as embedded by cameras and editors."""
    data: bytes = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return data


def _s15f16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _icc_tag_xyz(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15f16(v) for v in xyz)


@functools.cache
def swapped_rb_icc_profile() -> bytes:
    """A minimal ICC v2 RGB display profile whose red and blue primaries are swapped.

    Pixels tagged with it that are stored as pure red are blue in sRGB, so a
    correct colour conversion is unmistakable in a test.
    """
    # sRGB's primaries adapted to D50 (the PCS white), red and blue exchanged.
    red, green, blue = (0.1431, 0.0606, 0.7141), (0.3851, 0.7169, 0.0971), (0.4361, 0.2225, 0.0139)
    description = b"Swapped red/blue test profile\0"
    desc = (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(description))
        + description
        + b"\0" * (4 + 4 + 2 + 1 + 67)  # empty Unicode and ScriptCode descriptions
    )
    gamma = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0233) + b"\0\0"  # gamma 2.2, padded to 4
    tags = [
        (b"desc", desc),
        (b"wtpt", _icc_tag_xyz((0.9642, 1.0, 0.8249))),
        (b"rXYZ", _icc_tag_xyz(red)),
        (b"gXYZ", _icc_tag_xyz(green)),
        (b"bXYZ", _icc_tag_xyz(blue)),
        (b"rTRC", gamma),
        (b"gTRC", gamma),
        (b"bTRC", gamma),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + b"\x02\x10\0\0"  # version 2.1
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # perceptual intent
        + _s15f16(0.9642)
        + _s15f16(1.0)
        + _s15f16(0.8249)
        + b"\0" * 48  # creator, profile ID, reserved
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def jpeg_metadata(data: bytes) -> list[str]:
    """Every metadata segment of a JPEG before its pixel data, e.g. ['APP1 Exif', 'COM'].

    The JFIF APP0 header every encoder writes is not metadata and is left out.
    """
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    found: list[str] = []
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: only pixel data follows
            break
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        payload = data[pos + 4 : pos + 2 + length]
        if 0xE0 <= marker <= 0xEF:
            if not (marker == 0xE0 and payload.startswith(b"JFIF\0")):
                name = payload.split(b"\0", 1)[0][:20].decode("latin-1")
                found.append(f"APP{marker - 0xE0} {name}")
        elif marker == 0xFE:
            found.append("COM")
        pos += 2 + length
    return found
