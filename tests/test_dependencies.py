"""The image library is the Pillow-SIMD build the project installs, not plain Pillow."""

from __future__ import annotations

import importlib.metadata

import PIL
from PIL import features


def test_pil_is_pillow_simd() -> None:
    # Anything depending on "pillow" would have installed plain Pillow over it.
    assert importlib.metadata.version("pillow-simd") == PIL.__version__
    assert ".post" in PIL.__version__
    for name in ("pillow", "Pillow"):
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        raise AssertionError("plain Pillow is installed beside Pillow-SIMD")


def test_codecs_present() -> None:
    assert features.check("jpg")
    assert features.check("webp")
    assert features.check("zlib")
