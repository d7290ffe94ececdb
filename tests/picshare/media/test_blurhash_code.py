"""encode_blurhash: the strings halcy's blurhash package makes, from a small sample."""

from __future__ import annotations

import blurhash
import pytest
from PIL import Image

from picshare.media import encode_blurhash
from tests import imaging


def reference(image: Image.Image, side: int = 20) -> str:
    """blurhash.encode of the same 20 px sample encode_blurhash takes."""
    width, height = image.size
    scale = side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    sample = image.resize(size, Image.Resampling.BOX).convert("RGB")
    data = sample.tobytes()
    w, h = sample.size
    rows = [[data[(y * w + x) * 3 : (y * w + x) * 3 + 3] for x in range(w)] for y in range(h)]
    return str(blurhash.encode(rows, components_x=4, components_y=3))


@pytest.mark.parametrize(
    "image",
    [
        *(imaging.photo_like(640, 480, seed=seed) for seed in range(6)),
        imaging.photo_like(480, 640, seed=9),
        imaging.picture(64, 48),
        imaging.picture(30, 200, corner=imaging.CORNER),
        Image.new("RGB", (5, 5)),  # black: no AC energy at all
        Image.new("RGB", (1, 1), (255, 255, 255)),
    ],
)
def test_same_string_as_the_reference_encoder(image: Image.Image) -> None:
    assert encode_blurhash(image) == reference(image)


def test_ycbcr_input_is_converted() -> None:
    image = imaging.photo_like(640, 480, seed=3)
    assert encode_blurhash(image.convert("YCbCr")) == reference(image.convert("YCbCr"))
