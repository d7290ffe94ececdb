"""What an uploaded file really is: content sniffing, pixel limits, decode check.

This module owns the decision "is this a photo we accept?". The type comes
from the file's first bytes only (never the name or the client's
Content-Type). Pillow then opens the file restricted to that one format, the
pixel count is checked before any pixel is decoded, and finally the image is
decoded once to prove it is not truncated. The helpers used for that
(``open_checked``, ``load_checked``, ``exif_orientation``) are shared with
``renditions`` so both apply exactly the same rules.

Everything here runs inside a worker process of the media pool, but also
works in-process (tests): ``ensure_plugins`` registers the HEIF opener lazily.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import IO

import pillow_heif
from PIL import ExifTags, Image, ImageFile, features

from picshare.media.errors import MediaError

__all__ = [
    "ACCEPTED",
    "ProbeResult",
    "ensure_plugins",
    "exif_orientation",
    "load_checked",
    "open_checked",
    "oriented_size",
    "probe_image",
    "sniff_format",
]

# Our format name -> (Pillow's format id, MIME type).
_FORMATS: dict[str, tuple[str, str]] = {
    "jpeg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
    "heic": ("HEIF", "image/heic"),
    "avif": ("AVIF", "image/avif"),
}

# Pillow registers an AVIF plugin even when it was built without libavif (it
# then fails on open), so ask for the codec module itself.
ACCEPTED: frozenset[str] = frozenset(
    {"jpeg", "png", "webp", "heic"} | ({"avif"} if features.check_module("avif") else set())
)

# ISO-BMFF 'ftyp' brands. pillow_heif decides on the major brand alone, so we
# do too; the compatible brands only disambiguate the generic mif1/msf1.
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})

# Enough for the ftyp box of every real HEIC/AVIF file (a handful of brands).
_HEAD_BYTES = 256

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_plugins_ready = False


@dataclass(frozen=True, slots=True)
class ProbeResult:
    format: str  # 'jpeg' | 'png' | 'webp' | 'heic' | 'avif'
    mime: str  # 'image/jpeg' ...
    width: int  # as displayed, i.e. after applying the EXIF orientation
    height: int


def ensure_plugins() -> None:
    """Register the HEIF opener once per process (idempotent, cheap after the first call)."""
    global _plugins_ready
    if _plugins_ready:
        return
    # We never use embedded thumbnails, depth maps or auxiliary images; not
    # reading them keeps opening a HEIC cheap.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    _plugins_ready = True


def sniff_format(head: bytes) -> str | None:
    """Our format name for a file starting with ``head``, or None if it is no image we know."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        return _sniff_isobmff(head)
    return None


def _sniff_isobmff(head: bytes) -> str | None:
    major = head[8:12]
    if major in _HEIC_BRANDS:
        return "heic"
    if major in _AVIF_BRANDS:
        return "avif"
    if major not in _GENERIC_BRANDS:
        return None
    box_end = min(int.from_bytes(head[:4], "big"), len(head))
    compatible = {head[i : i + 4] for i in range(16, box_end - 3, 4)}
    if compatible & _AVIF_BRANDS and not compatible & _HEIC_BRANDS:
        return "avif"
    return "heic"


def open_checked(fp: IO[bytes], max_pixels: int) -> tuple[str, ImageFile.ImageFile]:
    """Sniff and open ``fp`` (positioned at 0) without decoding pixels.

    Returns our format name and the lazily-loaded image; raises MediaError
    'unsupported', 'corrupt' or 'too_many_pixels'.

    It sets Pillow's process-wide LOAD_TRUNCATED_IMAGES and MAX_IMAGE_PIXELS
    and uses warnings.catch_warnings, which is not thread-safe: run it from
    one thread per process, as the media pool's workers do.
    """
    ensure_plugins()
    head = fp.read(_HEAD_BYTES)
    fp.seek(0)
    fmt = sniff_format(head)
    if fmt is None:
        raise MediaError("unsupported", "not a JPEG, PNG, WebP or HEIC image")
    if fmt not in ACCEPTED:
        raise MediaError("unsupported", f"{fmt.upper()} images are not accepted")

    # A truncated file must fail, never decode into a half-grey picture.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    # Make Pillow's own bomb check agree with ours: it warns above the limit
    # and raises above twice the limit; both mean 'too_many_pixels' here, and
    # a lower Pillow default must not reject images our limit allows.
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(fp, formats=[_FORMATS[fmt][0]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(
            "too_many_pixels", f"image has too many pixels (limit {max_pixels})"
        ) from exc
    except MemoryError:
        raise
    except Exception as exc:
        # The magic bytes matched but the header is unreadable.
        raise MediaError("corrupt", f"cannot read the {fmt.upper()} header") from exc

    width, height = image.size
    if width < 1 or height < 1:
        image.close()
        raise MediaError("corrupt", "image has no pixels")
    if width * height > max_pixels:
        image.close()
        raise MediaError(
            "too_many_pixels", f"image is {width}x{height}, more than {max_pixels} pixels"
        )
    return fmt, image


def load_checked(image: ImageFile.ImageFile) -> None:
    """Decode the (first frame of the) image; any failure becomes MediaError('corrupt')."""
    try:
        image.load()
    except Image.DecompressionBombError as exc:  # not raised by load() today; cheap to keep
        raise MediaError("too_many_pixels", "image has too many pixels") from exc
    except MemoryError:
        raise
    except Exception as exc:
        # Truncated data, bad CRC, broken entropy coding, a decoder error from
        # libheif...: the upload is damaged, whatever the exact exception.
        raise MediaError("corrupt", "image data is truncated or damaged") from exc


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) of an opened image; 1 when absent or unreadable.

    For HEIC, pillow_heif already applies the container's rotation on decode
    and resets the EXIF tag to 1, so nothing is rotated twice.
    """
    try:
        with warnings.catch_warnings():
            # EXIF is untrusted input; Pillow warns about odd IFDs, which is
            # noise for us: a broken tag just means "no orientation".
            warnings.simplefilter("ignore")
            value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except MemoryError:
        raise
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """Size as displayed: orientations 5-8 turn the picture by 90 degrees."""
    width, height = size
    return (height, width) if orientation >= 5 else (width, height)


def probe_image(path: str, max_pixels: int) -> ProbeResult:
    """Identify, limit-check and fully verify the image at ``path``.

    Raises MediaError: 'unsupported' (not an accepted image type),
    'too_many_pixels' (more than ``max_pixels``, found before decoding) or
    'corrupt' (the header or pixel data cannot be decoded).
    """
    with open(path, "rb") as fp:
        fmt, image = open_checked(fp, max_pixels)
        with image:
            size = image.size
            if fmt == "jpeg":
                # DCT scaling to 1/8: every entropy-coded byte is still read
                # (so truncation is caught) but the IDCT and colour work is
                # ~64x smaller.
                image.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
            load_checked(image)
            # After load: a PNG may carry its eXIf chunk after the pixel data.
            orientation = exif_orientation(image)
    width, height = oriented_size(size, orientation)
    return ProbeResult(format=fmt, mime=_FORMATS[fmt][1], width=width, height=height)
