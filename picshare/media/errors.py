"""MediaError: the one exception the media package raises for a bad upload.

It crosses the worker-process boundary (pickled by concurrent.futures), so
its state lives in ``args`` and the default ``BaseException.__reduce__``
rebuilds it as ``MediaError(kind, message)`` on the other side.
"""

from __future__ import annotations

__all__ = ["KINDS", "MediaError"]

# kind -> the HTTP status the web layer maps it to (documentation only).
KINDS: frozenset[str] = frozenset({"unsupported", "corrupt", "too_many_pixels"})


class MediaError(Exception):
    """An uploaded file that cannot become a photo.

    kind is one of: 'unsupported' (not an image / format not accepted -> HTTP 415),
    'corrupt' (truncated/undecodable -> 422), 'too_many_pixels' (decompression bomb -> 422).
    """

    kind: str
    message: str

    def __init__(self, kind: str, message: str) -> None:
        if kind not in KINDS:
            # A typo here would silently become a 500 in the web layer.
            raise ValueError(f"unknown MediaError kind {kind!r}")
        # Both values go to Exception.__init__ so that pickling (which calls
        # cls(*self.args)) restores the same kind and message in the parent.
        super().__init__(kind, message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"
