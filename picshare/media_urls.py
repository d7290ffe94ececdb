"""Media URLs: plain and immutable for public photos; signed and expiring for
private accounts' photos (and unready ones), so a URL that leaks or outlives
a follow stops working.

The expiry is rounded up to a bucket, so every view within a bucket gets the
same URL and browsers can still cache it.

With a CDN base URL (media.cdn_url), public URLs point at it: `<cdn>/<key>`,
the key being the object's name in the bucket and its path under the
server's own prefix alike, so the CDN's origin may be either. Signed URLs
stay PicShare's own: only this server can check them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time


class MediaUrls:
    __slots__ = ("_bucket", "_prefix", "_public", "_secret", "_ttl")

    def __init__(
        self, *, prefix: str, secret: bytes, ttl: int, bucket: int = 600, cdn_url: str = ""
    ) -> None:
        self._prefix = prefix
        self._public = cdn_url.rstrip("/") or prefix
        self._secret = hashlib.sha256(b"picshare-media:" + secret).digest()
        self._ttl = ttl
        self._bucket = bucket

    def __repr__(self) -> str:
        return f"<MediaUrls {self._public} signed={self._prefix} ttl={self._ttl}s>"

    def url(self, key: str | None, *, signed: bool, now: float | None = None) -> str | None:
        if key is None:
            return None
        if not signed:
            return f"{self._public}/{key}"
        expires = math.ceil(((now or time.time()) + self._ttl) / self._bucket) * self._bucket
        return f"{self._prefix}/{key}?exp={expires}&sig={self._sign(key, expires)}"

    def verify(self, key: str, exp: str | None, sig: str | None, now: float | None = None) -> int:
        """Seconds the signature stays valid, or 0 when it is missing, wrong or expired."""
        if not exp or not sig or not exp.isascii() or not exp.isdigit() or len(exp) > 12:
            return 0
        expires = int(exp)
        remaining = expires - int(now or time.time())
        if remaining <= 0 or not hmac.compare_digest(sig, self._sign(key, expires)):
            return 0
        return remaining

    def _sign(self, key: str, expires: int) -> str:
        mac = hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18]).decode()
