"""BlurHash placeholder strings (https://blurha.sh) for a rendered image.

A BlurHash is a handful of cosine components of the image in linear light,
quantised and written in base 83. The image is shrunk to a few hundred
pixels first (the components need no more), and the components are summed
separably (rows first, then columns): ~0.5 ms on the path to `ready`,
where the per-pixel, per-component loop of halcy's pure-Python ``blurhash``
took several. Its quantisation and base-83 helpers are reused, so the
strings are the ones it makes.
"""

from __future__ import annotations

import math

from blurhash import blurhash as reference
from PIL import Image

__all__ = ["encode_blurhash"]

# Longest side of the sample: 20x15 pixels still sample each of 4x3
# components 5 times over.
_SAMPLE_SIDE = 20

# sRGB byte -> linear light, the conversion BlurHash defines.
_LINEAR = [reference.srgb_to_linear(v) for v in range(256)]


def encode_blurhash(image: Image.Image, x_components: int = 4, y_components: int = 3) -> str:
    """BlurHash of ``image`` (any size; it keeps its aspect ratio in the sample)."""
    width, height = image.size
    scale = _SAMPLE_SIDE / max(width, height)
    sample_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # BOX is a plain area average: exactly what a blur placeholder needs.
    # Shrunk first, so only the few sample pixels are converted (from YCbCr).
    sample = image.resize(sample_size, Image.Resampling.BOX).convert("RGB")
    return _encode(sample, x_components, y_components)


def _encode(sample: Image.Image, nx: int, ny: int) -> str:
    w, h = sample.size
    data = sample.tobytes()
    cos_x = [[math.cos(math.pi * i * x / w) for x in range(w)] for i in range(nx)]
    cos_y = [[math.cos(math.pi * j * y / h) for y in range(h)] for j in range(ny)]
    # rows[y][i]: row y weighted by the i-th horizontal cosine, per channel.
    rows: list[list[tuple[float, float, float]]] = []
    for y in range(h):
        line = data[y * w * 3 : (y + 1) * w * 3]
        red = [_LINEAR[v] for v in line[0::3]]
        green = [_LINEAR[v] for v in line[1::3]]
        blue = [_LINEAR[v] for v in line[2::3]]
        rows.append(
            [
                (
                    sum(c * v for c, v in zip(basis, red, strict=True)),
                    sum(c * v for c, v in zip(basis, green, strict=True)),
                    sum(c * v for c, v in zip(basis, blue, strict=True)),
                )
                for basis in cos_x
            ]
        )
    components: list[tuple[float, float, float]] = []
    for j in range(ny):
        for i in range(nx):
            norm = (1.0 if i == 0 and j == 0 else 2.0) / (w * h)
            weights = cos_y[j]
            components.append(
                (
                    norm * sum(weights[y] * rows[y][i][0] for y in range(h)),
                    norm * sum(weights[y] * rows[y][i][1] for y in range(h)),
                    norm * sum(weights[y] * rows[y][i][2] for y in range(h)),
                )
            )
    return _quantised(components, nx, ny)


def _quantised(components: list[tuple[float, float, float]], nx: int, ny: int) -> str:
    """The string, exactly as blurhash.encode writes the same components."""
    dc, ac = components[0], components[1:]
    dc_value = (
        (reference.linear_to_srgb(dc[0]) << 16)
        + (reference.linear_to_srgb(dc[1]) << 8)
        + reference.linear_to_srgb(dc[2])
    )
    max_ac = max((abs(v) for component in ac for v in component), default=0.0)
    quant_max_ac = int(max(0, min(82, math.floor(max_ac * 166 - 0.5))))
    ac_norm = (quant_max_ac + 1) / 166.0

    def quant(value: float) -> int:
        return int(
            max(0.0, min(18.0, math.floor(reference.sign_pow(value / ac_norm, 0.5) * 9.0 + 9.5)))
        )

    parts = [
        reference.base83_encode((nx - 1) + (ny - 1) * 9, 1),
        reference.base83_encode(quant_max_ac, 1),
        reference.base83_encode(dc_value, 4),
    ]
    parts += [
        reference.base83_encode(quant(r) * 19 * 19 + quant(g) * 19 + quant(b), 2) for r, g, b in ac
    ]
    return "".join(parts)
