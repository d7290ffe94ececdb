"""The served original: the upload's own pixels, upright, without its metadata.

It is not needed to show a photo (the renditions are), so it is made by a
job of its own after the photo is `ready`. Most uploads are phone or camera
JPEGs already upright (EXIF orientation 1) in YCbCr or greyscale, with sRGB
or no colour profile: for those the original is the upload with its
metadata segments dropped (``jpeg_segments.strip_metadata``), byte for byte
the same pixels, at the cost of a copy. Anything else (another orientation,
CMYK, a wide-gamut profile, PNG/WebP/HEIC) is decoded, turned upright,
converted to sRGB and re-encoded, as the renditions are: Pillow has no
lossless JPEG transform (jpegtran's), so a rotated JPEG is re-encoded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import ImageFile

from picshare.media.errors import MediaError
from picshare.media.jpeg_segments import MalformedJpeg, strip_metadata
from picshare.media.probe import exif_orientation, load_checked, open_checked
from picshare.media.renditions import RenditionSpec, converts_colour, encode_original

__all__ = ["OriginalResult", "make_original"]


@dataclass(frozen=True, slots=True)
class OriginalResult:
    data: bytes  # a JPEG
    lossless: bool  # the upload's own coded pixels (True) or a re-encode


def make_original(path: str, spec: RenditionSpec) -> OriginalResult:
    """The metadata-free, upright JPEG original of the accepted upload at ``path``.

    Raises MediaError like ``probe_image`` if the file is not an acceptable image.
    """
    with open(path, "rb") as fp:
        fmt, image = open_checked(fp, spec.max_pixels)
        with image:
            copyable = fmt == "jpeg" and _copyable(image)
            size = image.size
        if copyable:
            fp.seek(0)
            data = _stripped(fp.read(), size, spec.max_pixels)
            if data is not None:
                return OriginalResult(data=data, lossless=True)
    return OriginalResult(data=encode_original(path, spec), lossless=False)


def _copyable(image: ImageFile.ImageFile) -> bool:
    """Are the coded pixels, as they are, what the renditions show?"""
    return (
        image.mode in ("L", "RGB")  # not CMYK, which browsers show inconsistently
        and exif_orientation(image) == 1
        and not converts_colour(image.info.get("icc_profile"), image.mode)
    )


def _stripped(data: bytes, size: tuple[int, int], max_pixels: int) -> bytes | None:
    """The upload without metadata, checked to decode to the same size; None if not."""
    try:
        stripped = strip_metadata(data)
    except MalformedJpeg:
        return None  # an odd structure Pillow tolerated: re-encoding is the safe way
    # A cheap proof that the copy is whole: every entropy-coded byte is read
    # again (DCT scaling to 1/8 skips most of the rest), and no EXIF is left.
    try:
        image = open_checked(io.BytesIO(stripped), max_pixels)[1]
        with image:
            if image.size != size or image.getexif():
                return None
            image.draft(image.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
            load_checked(image)
    except MediaError:
        return None
    return stripped
