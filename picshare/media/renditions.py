"""Turning an accepted upload into the JPEGs the site serves.

This module owns the pixel pipeline: decode (JPEG at reduced size via libjpeg
DCT scaling), flatten to RGB (alpha on white, palette, 16-bit, CMYK), convert
to sRGB when an ICC profile is embedded, apply the EXIF orientation, resize,
and encode without any metadata. Nothing from the upload's metadata (EXIF,
GPS, XMP, comments, ICC) reaches the output files.

For a JPEG source the three small renditions come from one decode at the
smallest DCT scale that still covers them ('large' drives the size, 'thumb'
adds a minimum for very wide images). A YCbCr JPEG stays in YCbCr from the
decoder to the encoder (both colour conversions skipped) unless an embedded
profile needs converting. ``render_display`` is what a photo needs to be
shown; the full-size original is made apart (``picshare.media.original``),
or here by ``render_renditions`` when all four are wanted at once.
"""

from __future__ import annotations

import concurrent.futures
import functools
import io
import math
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageCms, ImageOps

from picshare.media.blurhash_code import encode_blurhash
from picshare.media.probe import (
    exif_orientation,
    load_checked,
    open_checked,
    oriented_size,
)

__all__ = [
    "DisplayResult",
    "RenderResult",
    "RenditionSpec",
    "converts_colour",
    "encode_original",
    "render_display",
    "render_renditions",
    "render_three",
]

# 'large' is cut from the decoded image, the one big resize of the pipeline:
# BICUBIC is ~30% cheaper than LANCZOS there and, since Pillow widens its
# filters when downscaling (no aliasing), looks the same at 1080 px. The
# smaller renditions are cheap whatever the filter, so they get LANCZOS.
_RESAMPLE_LARGE = Image.Resampling.BICUBIC
_RESAMPLE = Image.Resampling.LANCZOS
# Lets a huge non-JPEG source be box-reduced first (cheap) as long as at
# least 3x oversampling is left for the real filter.
_REDUCING_GAP = 3.0

# Huffman optimisation re-runs the entropy coder: ~4 ms on a 1080 px JPEG
# (~15% of render_three) for 1-5% fewer bytes, so only the tiny thumb (where
# it is free and saves ~5%) gets it. The original is progressive, which
# always uses optimised tables.
_OPTIMIZE_MAX_PIXELS = 300 * 300

# Modes written as they are (a YCbCr image is stored without conversion).
_ENCODABLE = frozenset({"RGB", "YCbCr"})

_WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

# EXIF orientation -> the transpose that shows the picture upright (the same
# table as ImageOps.exif_transpose).
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class RenditionSpec:
    large_width: int = 1080
    medium_width: int = 640
    thumb_size: int = 150
    jpeg_quality: int = 85
    original_quality: int = 92
    max_pixels: int = 89_478_485


@dataclass(frozen=True, slots=True)
class RenderResult:
    width: int  # of the oriented original
    height: int
    blurhash: str
    renditions: dict[str, bytes]  # 'original', 'large', 'medium', 'thumb' -> JPEG bytes


@dataclass(frozen=True, slots=True)
class DisplayResult:
    width: int  # of the oriented original
    height: int
    blurhash: str
    renditions: dict[str, bytes]  # 'large', 'medium', 'thumb' -> JPEG bytes


def render_three(path: str, spec: RenditionSpec) -> dict[str, bytes]:
    """The 'large', 'medium' and 'thumb' JPEGs of the image at ``path``."""
    with open(path, "rb") as fp:
        source = _decode_reduced(fp, spec)
    return _render_small(source, spec)[1]


def render_display(path: str, spec: RenditionSpec) -> DisplayResult:
    """What a photo needs to be shown: the three small JPEGs, its BlurHash and size.

    One reduced decode, no full-size work. Raises MediaError like ``probe_image``.
    """
    with open(path, "rb") as fp:
        source = _decode_reduced(fp, spec)
    images, jpegs = _render_small(source, spec)
    width, height = source.full_size
    return DisplayResult(
        width=width,
        height=height,
        blurhash=encode_blurhash(images["medium"]),
        renditions=jpegs,
    )


def render_renditions(path: str, spec: RenditionSpec) -> RenderResult:
    """All four renditions, the BlurHash and the displayed size of the image at ``path``.

    Raises MediaError like ``probe_image`` if the file is not an acceptable image.
    """
    with open(path, "rb") as fp:
        source = _decode_reduced(fp, spec)
        images, small = _render_small(source, spec)
        blurhash = encode_blurhash(images["medium"])
        if source.is_full_size:
            full = source.oriented()
        else:
            # Free the reduced decode before the big one to lower the peak.
            del images, source
            fp.seek(0)
            full = _decode_full(fp, spec).oriented()
    original = _encode(full, spec.original_quality, progressive=True)
    width, height = full.size
    return RenderResult(
        width=width,
        height=height,
        blurhash=blurhash,
        renditions={"original": original, **small},
    )


def encode_original(path: str, spec: RenditionSpec) -> bytes:
    """The whole image, upright sRGB, re-encoded (progressive) without metadata."""
    with open(path, "rb") as fp:
        full = _decode_full(fp, spec).oriented()
    return _encode(full, spec.original_quality, progressive=True)


def converts_colour(icc: bytes | None, mode: str) -> bool:
    """Would the renditions convert pixels of this mode with this profile to sRGB?"""
    return bool(icc) and _icc_transform(icc, mode) is not None


class _Source:
    """A decoded image in its stored orientation, plus how to make it upright sRGB.

    Resizing happens before the colour transform and the transpose, so those
    run on the small renditions rather than on the decoded image.
    """

    def __init__(
        self, base: Image.Image, icc: bytes | None, orientation: int, full_size: tuple[int, int]
    ) -> None:
        self.base = _flatten(base)  # mode L, RGB, YCbCr or CMYK
        # A YCbCr base is only decoded when its profile needs no conversion.
        convert = icc and self.base.mode != "YCbCr"
        self.transform = _icc_transform(icc, self.base.mode) if convert else None
        self.orientation = orientation
        self.full_size = oriented_size(full_size, orientation)  # the original, as displayed
        self.is_full_size = self.base.size == full_size
        self._oriented: Image.Image | None = None

    def stored(self, size: tuple[int, int]) -> tuple[int, int]:
        """A displayed size expressed in the stored orientation."""
        return oriented_size(size, self.orientation)

    def finish(self, image: Image.Image) -> Image.Image:
        """``image`` (cut from base) as upright sRGB RGB."""
        if image is self.base:
            return self.oriented()
        return self._finish(image)

    def oriented(self) -> Image.Image:
        """The whole base, upright sRGB RGB (computed once)."""
        if self._oriented is None:
            self._oriented = self._finish(self.base)
        return self._oriented

    def _finish(self, image: Image.Image) -> Image.Image:
        if self.transform is not None:
            image = self.transform.apply(image)
        elif image.mode not in _ENCODABLE:
            image = image.convert("RGB")
        if self.orientation in _TRANSPOSE:
            image = image.transpose(_TRANSPOSE[self.orientation])
        return image


def _decode_reduced(fp: IO[bytes], spec: RenditionSpec) -> _Source:
    """Decode just big enough for large/medium/thumb (JPEG); other formats decode fully."""
    fmt, image = open_checked(fp, spec.max_pixels)
    stored_size = image.size
    icc = image.info.get("icc_profile")
    if fmt == "jpeg":
        # JPEG keeps EXIF in APP1, before the pixels: the orientation is
        # known before decoding, which the draft size depends on.
        orientation = exif_orientation(image)
        need = _decode_target(oriented_size(stored_size, orientation), spec)
        # Without a profile to convert from, YCbCr pixels go from the
        # decoder to the encoder as they are: no conversion either way.
        keep_ycbcr = _is_ycbcr(image) and not converts_colour(icc, "RGB")
        # draft picks the largest 1/1, 1/2, 1/4, 1/8 scale whose result is
        # still at least `need`, so nothing is ever upscaled afterwards.
        image.draft("YCbCr" if keep_ycbcr else "RGB", oriented_size(need, orientation))
        scale = image.decoderconfig[0] if image.decoderconfig else 1
        if scale > 1:
            # Reduced anyway and then resized down: libjpeg's plain chroma
            # upsampling is enough (its "draft" flag), ~8% of the decode.
            image.decoderconfig = (scale, 1)
        load_checked(image)
    else:
        load_checked(image)
        orientation = exif_orientation(image)
        icc = image.info.get("icc_profile")  # some formats carry it after the pixels
    return _Source(image, icc, orientation, stored_size)


def _is_ycbcr(image: Image.Image) -> bool:
    """Does libjpeg see a YCbCr JPEG? (The rules of its default_decompress_parms.)"""
    layer = getattr(image, "layer", [])
    if image.mode != "RGB" or len(layer) != 3:
        return False
    info = image.info
    if "jfif" in info:
        return True
    if "adobe" in info:
        return info.get("adobe_transform") == 1
    return tuple(component[0] for component in layer) != (ord("R"), ord("G"), ord("B"))


def _decode_full(fp: IO[bytes], spec: RenditionSpec) -> _Source:
    _fmt, image = open_checked(fp, spec.max_pixels)
    load_checked(image)
    orientation = exif_orientation(image)
    return _Source(image, image.info.get("icc_profile"), orientation, image.size)


def _fit_width(size: tuple[int, int], max_width: int) -> tuple[int, int]:
    """At most ``max_width`` wide, same aspect ratio, never upscaled."""
    width, height = size
    new_width = min(width, max_width)
    return new_width, max(1, round(height * new_width / width))


def _decode_target(size: tuple[int, int], spec: RenditionSpec) -> tuple[int, int]:
    """Smallest displayed size every small rendition can be cut from without upscaling."""
    width, height = size
    need_w, need_h = _fit_width(size, max(spec.large_width, spec.medium_width))
    short = min(width, height)
    if short > spec.thumb_size:
        # The thumb is a centre crop, so it needs the short side >= thumb_size;
        # for a panorama that is more than the 'large' height.
        scale = spec.thumb_size / short
        need_w = max(need_w, math.ceil(width * scale))
        need_h = max(need_h, math.ceil(height * scale))
    else:
        need_w, need_h = width, height
    return min(width, need_w), min(height, need_h)


def _resize(
    image: Image.Image, size: tuple[int, int], resample: Image.Resampling = _RESAMPLE
) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, resample, reducing_gap=_REDUCING_GAP)


def _render_small(
    source: _Source, spec: RenditionSpec
) -> tuple[dict[str, Image.Image], dict[str, bytes]]:
    """large, medium and thumb, as images and as JPEGs.

    Pillow lets go of the GIL while it encodes, so 'large' (half of the
    encoding work) is written on a second thread while the main one makes
    and writes medium and thumb: ~10% off the whole render.
    """
    large = _large(source, spec)
    large.info = {}  # what _encode does, done before two threads share the image
    pending = _encoder().submit(_encode, large, spec.jpeg_quality)
    try:
        smaller = _smaller(source, spec, large)
        jpegs = {name: _encode(image, spec.jpeg_quality) for name, image in smaller.items()}
    finally:
        large_jpeg = pending.result()  # both threads only read `large`
    return {"large": large, **smaller}, {"large": large_jpeg, **jpegs}


@functools.cache
def _encoder() -> concurrent.futures.ThreadPoolExecutor:
    # Made on first use, so in each worker process after it has started.
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jpeg-encode")


def _large(source: _Source, spec: RenditionSpec) -> Image.Image:
    """'large', from the decoded base: the one big resize of the pipeline."""
    large_size = _fit_width(source.full_size, spec.large_width)
    return source.finish(_resize(source.base, source.stored(large_size), _RESAMPLE_LARGE))


def _smaller(source: _Source, spec: RenditionSpec, large: Image.Image) -> dict[str, Image.Image]:
    """medium from large, thumb from the smallest image that covers it."""
    medium_size = _fit_width(source.full_size, spec.medium_width)
    if medium_size[0] <= large.width:
        medium = _resize(large, medium_size)
    else:  # a spec with medium wider than large
        medium = source.finish(_resize(source.base, source.stored(medium_size)))
    thumb_from = next(
        (im for im in (medium, large) if min(im.size) >= spec.thumb_size),
        source.oriented(),
    )
    side = spec.thumb_size
    thumb = ImageOps.fit(thumb_from, (side, side), method=_RESAMPLE, centering=(0.5, 0.5))
    return {"medium": medium, "thumb": thumb}


def _encode(image: Image.Image, quality: int, *, progressive: bool = False) -> bytes:
    """Baseline (or progressive) JPEG with no metadata segment beyond the JFIF header."""
    if image.mode not in _ENCODABLE:
        image = image.convert("RGB")
    # Pillow copies .info through convert/resize/transpose and the JPEG
    # writer re-emits info['comment']; start from nothing.
    image.info = {}
    out = io.BytesIO()
    optimize = image.width * image.height <= _OPTIMIZE_MAX_PIXELS
    image.save(out, format="JPEG", quality=quality, optimize=optimize, progressive=progressive)
    return out.getvalue()


# --- colour -----------------------------------------------------------------


def _flatten(image: Image.Image) -> Image.Image:
    """The image as L, RGB or CMYK: alpha composited on white, palette/16-bit resolved."""
    mode = image.mode
    has_alpha = mode in _ALPHA_MODES or "transparency" in image.info
    if mode in ("L", "RGB", "YCbCr", "CMYK") and not has_alpha:
        return image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I"):
        # 16-bit greyscale PNG: Pillow's convert("L") would clip at 255,
        # turning nearly everything white; scale 0-65535 down instead.
        return image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if has_alpha:
        if mode in ("L", "LA", "La"):
            grey = image.convert("LA")
            background = Image.new("L", grey.size, 255)
            background.paste(grey.getchannel("L"), mask=grey.getchannel("A"))
            return background
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.lru_cache(maxsize=16)
def _icc_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """A transform from the embedded profile to sRGB, or None when not needed or not usable.

    Cached: a camera or phone embeds the same few profiles in every photo.
    """
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(profile).strip().lower()
        if mode == "RGB" and description.startswith("srgb"):
            return None  # already sRGB: the pixels are right as they are
        return ImageCms.buildTransform(profile, _srgb_profile(), mode, "RGB")
    except MemoryError:
        raise
    except Exception:
        # A broken profile, or one that does not match the pixels (a grey
        # profile on an RGB image...): fall back to the plain pixel values,
        # as most browsers do.
        return None
