"""BlurHash placeholder strings (https://blurha.sh) for a rendered image.

``blurhash`` (halcy's package) is pure Python and costs O(pixels x
components), so the image is shrunk to a few hundred pixels first; a BlurHash
only carries a handful of cosine components anyway.
"""

from __future__ import annotations

import blurhash
from PIL import Image

__all__ = ["encode_blurhash"]

# Longest side of the image handed to the pure-Python encoder, whose cost is
# pixels x components cosines: 20x15 pixels take ~2 ms (32x24 took ~6, on
# the path to `ready`) and still sample each of 4x3 components 5 times over.
_SAMPLE_SIDE = 20


def encode_blurhash(image: Image.Image, x_components: int = 4, y_components: int = 3) -> str:
    """BlurHash of ``image`` (any size; it keeps its aspect ratio in the sample)."""
    width, height = image.size
    scale = _SAMPLE_SIDE / max(width, height)
    sample_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # BOX is a plain area average: exactly what a blur placeholder needs.
    # Shrunk first, so only the few sample pixels are converted (from YCbCr).
    sample = image.resize(sample_size, Image.Resampling.BOX).convert("RGB")
    data = sample.tobytes()
    w, h = sample.size
    row_bytes = w * 3
    # blurhash wants rows of [r, g, b] sequences of 0-255 ints; slices of a
    # bytes object index as ints, so no per-pixel tuple building is needed.
    rows = [
        [data[y * row_bytes + x * 3 : y * row_bytes + x * 3 + 3] for x in range(w)]
        for y in range(h)
    ]
    return str(blurhash.encode(rows, components_x=x_components, components_y=y_components))
