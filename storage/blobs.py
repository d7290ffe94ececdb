"""The blob store interface and its key rules. Implementations: the local
content-addressed files (`local_blobs.py`) and S3 (`s3_blobs.py`), chosen
once in the app factory from `blobs.backend`.

Keys are content-addressed (`uploads/<sha256>` for uploads as received,
`r/<sha256>.jpg` for served renditions), so an object never changes once
written and two writers of one key write the same bytes.

Nothing here assumes a local file system: an upload is streamed into a
`BlobWriter` (hashed and counted by the caller), read back as chunks, and
only then named by its hash.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

KEY_PATTERN = re.compile(r"^(uploads|r)/[0-9a-f]{64}(\.[a-z0-9]{1,5})?$")
# Only renditions are public; uploads keep the sender's metadata (GPS...).
PUBLIC_KEY_PATTERN = re.compile(r"^r/[0-9a-f]{64}\.jpg$")
# A key names its content, so what is under it may be cached forever.
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"


class InvalidKey(ValueError):
    """Not a key of the store's own form (storage/blobs.py, KEY_PATTERN)."""


class BlobNotFound(FileNotFoundError):
    """No object under that key."""


class BlobStoreUnavailable(ConnectionError):
    """The store did not answer (or answered with a server error): try again later."""


def check_key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise InvalidKey(key)
    return key


@dataclass(frozen=True, slots=True)
class BlobInfo:
    size: int


class BlobWriter(Protocol):
    """An upload on its way into the store, before its key (its hash) is known.

    `write` ... `finish`, then `read` back if needed, then `commit` under the
    key or `abort`. Whatever happens, `abort` leaves nothing behind (it is a
    no-op after `commit`)."""

    async def write(self, chunk: bytes) -> None:
        """Append bytes; memory use stays bounded whatever the total size."""

    async def finish(self) -> None:
        """Every byte written is durably stored (not yet under a key)."""

    def read(self) -> AsyncGenerator[bytes, None]:
        """The finished bytes, in chunks (to check what they are)."""

    async def commit(self, key: str) -> bool:
        """Store the finished bytes under `key`; True if the key was new."""

    async def abort(self) -> None:
        """Drop whatever was written; safe to call more than once."""


class BlobStore(Protocol):
    """Where photos' bytes live. Every method is safe to call concurrently;
    `BlobStoreUnavailable` says the store could not be reached."""

    def writer(self) -> BlobWriter:
        """A new writer for streaming an upload in."""

    async def put_bytes(self, key: str, data: bytes) -> bool:
        """Store small bytes (a rendition) under `key`; True if the key was new."""

    async def stat(self, key: str) -> BlobInfo | None:
        """The object's size, or None when there is none under `key`."""

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncGenerator[bytes, None]:
        """Yield the bytes [start, end) in chunks; `BlobNotFound` if missing."""

    async def delete(self, key: str) -> None:
        """Remove the object (nothing if there is none)."""

    async def presigned_url(self, key: str, expires_in: int) -> str | None:
        """A URL the store itself serves the object at, valid `expires_in`
        seconds; None when the store has none (local files)."""

    async def ping(self) -> None:
        """Raise if the store is not usable (readiness probe)."""
