"""Rendition speed: render_three against the image library's own full decode.

render_three decodes a JPEG at a reduced DCT scale (draft mode), so making
large/medium/thumb should cost less than merely decoding the file at full
size: the target is render_three <= 0.6 x full decode. render_renditions adds
the full-size 'original' re-encode, so its ratio is shown separately.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from PIL import Image

from bench._common import (
    Options,
    Row,
    median_seconds,
    photo_like,
    save_jpeg,
    say,
    wait_quiet,
)
from picshare.media import RenditionSpec, render_renditions, render_three

TARGET = 0.6
SIZES = ((4000, 3000), (6000, 4000))  # 12 MP and 24 MP, a phone's and a camera's
QUICK_SIZES = ((2000, 1500), (3000, 2000))


def _full_decode(path: str) -> None:
    with Image.open(path) as image:
        image.load()


async def run(opts: Options) -> list[Row]:
    runs = 2 if opts.quick else 5
    spec = RenditionSpec()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="picshare-bench-") as tmp:
        for seed, size in enumerate(QUICK_SIZES if opts.quick else SIZES):
            mp = size[0] * size[1] / 1e6
            path = save_jpeg(photo_like(size, seed), Path(tmp) / f"{size[0]}x{size[1]}.jpg")
            name = str(path)
            label = f"{mp:.0f} MP {size[0]}x{size[1]} JPEG q90 ({path.stat().st_size / 1e6:.1f} MB)"
            await wait_quiet()
            decode, three, four = median_seconds(
                [
                    functools.partial(_full_decode, name),
                    functools.partial(render_three, name, spec),
                    functools.partial(render_renditions, name, spec),
                ],
                runs,
            )
            ratio = three / decode
            verdict = "ok" if ratio <= TARGET else f"OVER target {TARGET}"
            say(
                f"  {label}: full decode {decode * 1000:.0f} ms, render_three"
                f" {three * 1000:.0f} ms, ratio {ratio:.3f} ({verdict});"
                f" render_renditions incl. original {four * 1000:.0f} ms,"
                f" ratio {four / decode:.2f}  [medians of {runs}, interleaved]"
            )
            rows += [
                (f"{mp:.0f} MP full decode (Image.open+load)", f"{decode * 1000:.0f} ms"),
                (f"{mp:.0f} MP render_three", f"{three * 1000:.0f} ms"),
                (
                    f"{mp:.0f} MP render_three / decode (target <= {TARGET})",
                    f"{ratio:.3f} {verdict}",
                ),
                (f"{mp:.0f} MP render_renditions (incl. original)", f"{four * 1000:.0f} ms"),
                (
                    f"{mp:.0f} MP render_renditions / decode (incl. original)",
                    f"{four / decode:.2f}",
                ),
            ]
    return rows
