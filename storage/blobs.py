"""The blob store interface. The local content-addressed store is the first
implementation; S3 comes later behind the same Protocol.

Keys are content-addressed (`uploads/<sha256>` for uploads as received,
`r/<sha256>.jpg` for served renditions), so an object never changes once
written and two writers of one key write the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

KEY_PATTERN = re.compile(r"^(uploads|r)/[0-9a-f]{64}(\.[a-z0-9]{1,5})?$")
# Only renditions are public; uploads keep the sender's metadata (GPS...).
PUBLIC_KEY_PATTERN = re.compile(r"^r/[0-9a-f]{64}\.jpg$")


class InvalidKey(ValueError):
    pass


def check_key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise InvalidKey(key)
    return key


@dataclass(frozen=True, slots=True)
class BlobInfo:
    size: int


class BlobStore(Protocol):
    """Where photos' bytes live. Every method is safe to call concurrently."""

    def spool_dir(self) -> Path:
        """A local folder for streaming uploads into before they get their key."""
        ...

    async def put_file(self, key: str, path: Path) -> bool:
        """Move the local file at `path` under `key`; True if the key was new."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> bool: ...

    async def stat(self, key: str) -> BlobInfo | None: ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncGenerator[bytes, None]:
        """Yield the bytes [start, end) in chunks."""
        ...

    async def local_copy(self, key: str) -> Path:
        """A local file with the blob's bytes, for the image workers to open."""
        ...

    async def delete(self, key: str) -> None: ...

    async def ping(self) -> None:
        """Raise if the store is not usable (readiness probe)."""
        ...
