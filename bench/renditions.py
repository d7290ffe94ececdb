"""Rendition speed against the image library's own full decode, and against libvips.

``render_three`` decodes a JPEG once at a reduced DCT scale (draft mode) and
makes large/medium/thumb from it, so it should cost less than merely
decoding the file at full size: target <= 0.7 x a full Pillow decode at
12 MP. libvips (pyvips, ``thumbnail`` with shrink-on-load, the same three
sizes and quality, no metadata) is timed beside it as the outside
reference, on one thread as our one worker process per core is, and with
its own thread pool. Also shown: ``render_display`` (the three plus the
BlurHash: what a photo waits for to be `ready`), ``make_original`` (the
follow-up job) and ``render_renditions`` (all four at once with a re-encoded
original, what the photo used to wait for).
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import pyvips
from PIL import Image

from bench._common import (
    PHOTO_SIZES,
    QUICK_PHOTO_SIZES,
    Options,
    Row,
    median_seconds,
    photo_like,
    save_jpeg,
    say,
    wait_quiet,
)
from picshare.media import (
    RenditionSpec,
    make_original,
    render_display,
    render_renditions,
    render_three,
)

TARGET = 0.7
# No vips-vs-Pillow figure is worth a cached result.
pyvips.cache_set_max(0)


def _full_decode(path: str) -> None:
    with Image.open(path) as image:
        image.load()


def _vips_three(path: str, spec: RenditionSpec, threads: int) -> list[bytes]:
    """large, medium and thumb the way a libvips user makes them."""
    pyvips.concurrency_set(threads)
    # Shrink-on-load from the file, then the two small ones from 'large' in memory.
    large = pyvips.Image.thumbnail(path, spec.large_width, height=10_000_000, size="down")
    large = large.copy_memory()
    medium = large.thumbnail_image(spec.medium_width, height=10_000_000, size="down")
    side = spec.thumb_size
    thumb = large.thumbnail_image(side, height=side, crop="centre")
    keep = pyvips.enums.ForeignKeep.NONE
    return [
        image.jpegsave_buffer(Q=spec.jpeg_quality, keep=keep) for image in (large, medium, thumb)
    ]


async def run(opts: Options) -> list[Row]:
    runs = 2 if opts.quick else 7
    spec = RenditionSpec()
    cores = os.cpu_count() or 1
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="picshare-bench-") as tmp:
        for seed, size in enumerate(QUICK_PHOTO_SIZES if opts.quick else PHOTO_SIZES):
            mp = size[0] * size[1] / 1e6
            path = save_jpeg(photo_like(size, seed), Path(tmp) / f"{size[0]}x{size[1]}.jpg")
            name = str(path)
            label = f"{mp:.0f} MP {size[0]}x{size[1]} JPEG q90 ({path.stat().st_size / 1e6:.1f} MB)"
            await wait_quiet()
            decode, three, display, vips1, vips_n, original, four = median_seconds(
                [
                    functools.partial(_full_decode, name),
                    functools.partial(render_three, name, spec),
                    functools.partial(render_display, name, spec),
                    functools.partial(_vips_three, name, spec, 1),
                    functools.partial(_vips_three, name, spec, cores),
                    functools.partial(make_original, name, spec),
                    functools.partial(render_renditions, name, spec),
                ],
                runs,
            )
            ratio = three / decode
            verdict = "ok" if ratio <= TARGET else f"OVER target {TARGET}"
            if mp < 12:
                # Under 2160 px wide no DCT scale is left over 'large': a smoke run only.
                verdict = "(the target is for 12 MP and more)"
            say(
                f"  {label}: full decode {decode * 1000:.0f} ms; render_three"
                f" {three * 1000:.0f} ms, ratio {ratio:.2f} ({verdict}); pyvips thumbnail"
                f" {vips1 * 1000:.0f} ms on 1 thread, ratio {vips1 / decode:.2f},"
                f" {vips_n * 1000:.0f} ms on {cores}, ratio {vips_n / decode:.2f};"
                f" render_display {display * 1000:.0f} ms ({display / decode:.2f});"
                f" make_original {original * 1000:.0f} ms; render_renditions"
                f" {four * 1000:.0f} ms ({four / decode:.2f})  [medians of {runs}, interleaved]"
            )
            rows += [
                (f"{mp:.0f} MP full decode (Image.open+load)", f"{decode * 1000:.0f} ms"),
                (f"{mp:.0f} MP render_three (large, medium, thumb)", f"{three * 1000:.0f} ms"),
                (
                    f"{mp:.0f} MP render_three / decode (target <= {TARGET})",
                    f"{ratio:.2f} {verdict}",
                ),
                (f"{mp:.0f} MP pyvips thumbnail x3, 1 thread / decode", f"{vips1 / decode:.2f}"),
                (
                    f"{mp:.0f} MP pyvips thumbnail x3, {cores} threads / decode",
                    f"{vips_n / decode:.2f}",
                ),
                (
                    f"{mp:.0f} MP render_display (+ BlurHash) / decode",
                    f"{display / decode:.2f}",
                ),
                (f"{mp:.0f} MP make_original (lossless copy)", f"{original * 1000:.0f} ms"),
                (
                    f"{mp:.0f} MP render_renditions (re-encoded original) / decode",
                    f"{four / decode:.2f}",
                ),
            ]
    return rows
