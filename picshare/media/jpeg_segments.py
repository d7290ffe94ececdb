"""Lossless metadata removal from a JPEG: the bytes of the pixels, without EXIF.

A JPEG is a list of marker segments; the pixels live in the tables (DQT,
DHT, SOF, DRI) and the entropy-coded scans (SOS and the data after it).
Copying those and dropping the metadata segments (APP1 EXIF and XMP, APP2
ICC and MPF, APP13 IPTC, COM, ...) and anything after EOI (MPF secondary
images, motion-photo videos, vendor trailers) gives a file that decodes to
exactly the same pixels, at the cost of a copy instead of a decode and
re-encode. Two APP segments describe how to decode rather than what was
shot, and stay: JFIF (APP0) and Adobe (APP14, the colour transform).
"""

from __future__ import annotations

import re

__all__ = ["MalformedJpeg", "strip_metadata"]

_SOI = b"\xff\xd8"
_EOI = 0xD9
_SOS = 0xDA
_COM = 0xFE
_APP0 = 0xE0
_APP14 = 0xEE
# Markers without a length field (TEM, RST0-7); SOI/EOI are handled apart.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
# The frame headers: a scan before one of them is malformed.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Inside entropy-coded data 0xFF is followed by 0x00 (stuffing), an RSTn, or
# another 0xFF (fill); anything else is the marker that ends the scan.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


class MalformedJpeg(ValueError):
    """The segment structure is not one this module can copy faithfully."""


def strip_metadata(data: bytes) -> bytes:
    """``data`` without its metadata segments; MalformedJpeg if it is not a well-formed JPEG."""
    if not data.startswith(_SOI):
        raise MalformedJpeg("no SOI marker")
    out = [_SOI]
    pos = 2
    seen_frame = seen_scan = False
    while True:
        if pos >= len(data) or data[pos] != 0xFF:
            raise MalformedJpeg(f"expected a marker at byte {pos}")
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= len(data):
            raise MalformedJpeg("file ends inside a marker")
        marker = data[pos]
        pos += 1
        if marker == _EOI:
            if not seen_scan:
                raise MalformedJpeg("no scan before EOI")
            out.append(b"\xff\xd9")
            return b"".join(out)  # what follows EOI is not part of this image
        if marker in _STANDALONE:
            out.append(bytes((0xFF, marker)))
            continue
        if pos + 2 > len(data):
            raise MalformedJpeg("file ends inside a segment length")
        length = int.from_bytes(data[pos : pos + 2], "big")
        end = pos + length
        if length < 2 or end > len(data):
            raise MalformedJpeg(f"segment {marker:#04x} at byte {pos} overruns the file")
        if _keep(marker, data[pos + 2 : end]):
            out.append(data[pos - 2 : end])
        pos = end
        if marker in _SOF:
            seen_frame = True
        elif marker == _SOS:
            if not seen_frame:
                raise MalformedJpeg("scan before the frame header")
            seen_scan = True
            found = _SCAN_END.search(data, pos)
            if found is None:
                raise MalformedJpeg("scan without an end")
            out.append(data[pos : found.start()])
            pos = found.start()


def _keep(marker: int, payload: bytes) -> bool:
    if marker == _APP0:
        return payload.startswith(b"JFIF\x00")  # not JFXX (a thumbnail) or others
    if marker == _APP14:
        return payload.startswith(b"Adobe")
    return not (0xE0 <= marker <= 0xEF or marker == _COM)
