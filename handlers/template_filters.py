"""Jinja filters the pages use."""

from __future__ import annotations

_B83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def blurhash_color(blurhash: str | None) -> str:
    """The blurhash's average colour (its DC component) as `#rrggbb`: a placeholder
    that costs no JavaScript. Chars 2-5 of a blurhash are the sRGB colour in base 83."""
    if not blurhash or len(blurhash) < 6:
        return "#e9eaee"
    value = 0
    for ch in blurhash[2:6]:
        index = _B83.find(ch)
        if index < 0:
            return "#e9eaee"
        value = value * 83 + index
    return f"#{value & 0xFFFFFF:06x}"
