"""An upload being received: streamed into the blob store while hashed and counted.

The body is never held whole in memory. Passing the size limit raises
`TooLarge` at once and drops what was written; so does `abort()`, which
every way out of the `async with` takes unless the upload was committed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator
from types import TracebackType

from picshare.errors import TooLarge
from storage.blobs import BlobWriter


class StagedUpload:
    __slots__ = ("_done", "_hash", "_limit", "_writer", "size")

    def __init__(self, writer: BlobWriter, *, limit: int) -> None:
        self._writer = writer
        self._hash = hashlib.sha256()
        self._limit = limit
        self._done = False
        self.size = 0

    def __repr__(self) -> str:
        return f"<StagedUpload {self.size} bytes via {self._writer!r}>"

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._limit:
            await self.abort()
            raise TooLarge(f"the file is larger than {self._limit} bytes", field="file")
        # Hashing releases the GIL on large chunks: off the loop.
        await asyncio.to_thread(self._hash.update, chunk)
        await self._writer.write(chunk)

    async def finish(self) -> None:
        """Every byte is stored (not yet under its key): before any database transaction."""
        await self._writer.finish()

    def read(self) -> AsyncGenerator[bytes, None]:
        """The finished bytes, to check what they are."""
        return self._writer.read()

    async def commit(self, key: str) -> bool:
        created = await self._writer.commit(key)
        self._done = True
        return created

    async def abort(self) -> None:
        if not self._done:
            self._done = True
            # Shielded: a client hanging up must not leave a half-written upload.
            await asyncio.shield(self._writer.abort())

    async def __aenter__(self) -> StagedUpload:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever happened, an uncommitted upload goes.
        await self.abort()
