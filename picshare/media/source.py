"""A blob's bytes as a local file, for the media worker processes to open.

The blob store may be remote (S3): its bytes are streamed into a temporary
file of this machine for as long as a worker needs them, then removed. The
store itself never hands out a local path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path


@contextlib.asynccontextmanager
async def local_file(chunks: AsyncGenerator[bytes, None]) -> AsyncIterator[Path]:
    """A temporary file holding `chunks`, removed on the way out."""
    fd, name = tempfile.mkstemp(prefix="picshare-media-")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            async with contextlib.aclosing(chunks) as stream:
                async for chunk in stream:
                    await asyncio.to_thread(fh.write, chunk)
        yield path
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
