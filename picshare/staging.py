"""An upload being received: streamed to a spool file while hashed and counted.

The body is never held whole in memory. Passing the size limit raises
`TooLarge` at once and removes the spool file; so does `abort()`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from picshare.errors import TooLarge


class StagedUpload:
    __slots__ = ("_fh", "_hash", "_limit", "path", "size")

    def __init__(self, spool_dir: Path, *, limit: int) -> None:
        fd, name = tempfile.mkstemp(dir=spool_dir, prefix="upload-")
        self._fh: BinaryIO | None = os.fdopen(fd, "wb")
        self.path = Path(name)
        self._hash = hashlib.sha256()
        self._limit = limit
        self.size = 0

    def __repr__(self) -> str:
        return f"<StagedUpload {self.path.name} {self.size} bytes>"

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._limit:
            await self.abort()
            raise TooLarge(f"the file is larger than {self._limit} bytes", field="file")
        # Hashing and writing a chunk both release the GIL: one thread hop for both.
        await asyncio.to_thread(self._write, chunk)

    def _write(self, chunk: bytes) -> None:
        assert self._fh is not None
        self._hash.update(chunk)
        self._fh.write(chunk)

    async def finish(self) -> None:
        """Close the spool file, durably: fsynced here, before any database
        transaction, so storing it later is only a rename."""
        if self._fh is not None:
            fh, self._fh = self._fh, None
            await asyncio.to_thread(_close_synced, fh)

    async def abort(self) -> None:
        await self.finish()
        await asyncio.to_thread(self.path.unlink, missing_ok=True)

    async def __aenter__(self) -> StagedUpload:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever happened, the spool file goes: on success it was moved away.
        await self.abort()


def _close_synced(fh: BinaryIO) -> None:
    try:
        fh.flush()
        os.fsync(fh.fileno())
    finally:
        fh.close()
